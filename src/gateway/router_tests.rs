//! The router driven without a socket (`tower::ServiceExt::oneshot`): which status, error code,
//! content type and headers every route answers with. The socket-level behaviour (slow clients,
//! connection caps, TLS) is tested against the real binary in `tests/`.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::response::Response;
use tower::ServiceExt;

use super::headers::CONTENT_SECURITY_POLICY;
use super::{prepare, router, AppState};
use crate::config::GatewayConfig;

struct Gateway {
    state: Arc<AppState>,
    _dir: tempfile::TempDir,
}

/// The embedded default (demo keys) on a fresh data directory; `adjust` changes the config.
fn gateway(adjust: impl FnOnce(&mut GatewayConfig)) -> Gateway {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = GatewayConfig::embedded_default();
    config.data_dir = dir.path().join("data");
    adjust(&mut config);
    let validated = config.validate(true).expect("the default config is valid");
    let (state, _) = prepare(&validated).expect("state");
    Gateway { state, _dir: dir }
}

impl Gateway {
    async fn send(&self, tls: bool, request: Request<Body>) -> Response {
        router(self.state.clone(), tls)
            .oneshot(request)
            .await
            .expect("the router answers every request")
    }

    async fn get(&self, uri: &str) -> Response {
        self.send(false, request(Method::GET, uri, None, Body::empty()))
            .await
    }
}

fn request(method: Method, uri: &str, content_type: Option<&str>, body: Body) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(t) = content_type {
        builder = builder.header(header::CONTENT_TYPE, t);
    }
    builder.body(body).expect("request")
}

fn header_of<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

async fn json_of(response: Response) -> serde_json::Value {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    serde_json::from_slice(&bytes).expect("a JSON body")
}

/// One request to each route, and to what is not a route.
fn one_of_each() -> Vec<(Method, String, Option<&'static str>)> {
    let app_js = format!("{}/app.js", crate::assets::versioned_prefix());
    vec![
        (Method::GET, "/".into(), None),
        (Method::GET, "/?lang=en".into(), None),
        (Method::GET, "/api/v1/keys".into(), None),
        (Method::GET, "/api/v1/challenge".into(), None),
        (Method::GET, "/healthz".into(), None),
        (Method::GET, "/api/v1/courier/challenge".into(), None),
        (
            Method::GET,
            "/api/v1/courier/triage?since=2026-01-01".into(),
            None,
        ),
        (Method::POST, "/api/v1/courier/batches".into(), None),
        (
            Method::GET,
            "/api/v1/courier/batches/0123456789abcdef0123456789abcdef?offset=0".into(),
            None,
        ),
        (Method::GET, "/api/v1/courier/batches".into(), None),
        (Method::POST, "/api/v1/courier/copies".into(), None),
        (
            Method::GET,
            "/api/v1/courier/copies?ids=0123456789abcdef0123456789abcdef&offset=0".into(),
            None,
        ),
        (Method::POST, "/api/v1/courier/purge".into(), None),
        (Method::GET, "/api/v1/courier/chain?since=0".into(), None),
        (Method::GET, "/style.css".into(), None),
        (Method::GET, app_js, None),
        (Method::GET, "/nothing-here".into(), None),
        (Method::GET, "/templates/page.html".into(), None),
        (Method::GET, "/api/v1/submissions".into(), None),
        (Method::DELETE, "/api/v1/keys".into(), None),
        (
            Method::POST,
            "/api/v1/submissions".into(),
            Some("text/plain"),
        ),
        (
            Method::POST,
            "/submit".into(),
            Some("multipart/form-data; boundary=x"),
        ),
    ]
}

#[tokio::test]
async fn every_route_sends_the_security_headers_and_never_a_cookie() {
    let gw = gateway(|_| {});
    for tls in [false, true] {
        for (method, uri, content_type) in one_of_each() {
            let what = format!("{method} {uri} (tls {tls})");
            let response = gw
                .send(tls, request(method, &uri, content_type, Body::empty()))
                .await;
            let expected = [
                ("content-security-policy", CONTENT_SECURITY_POLICY),
                ("referrer-policy", "no-referrer"),
                ("x-content-type-options", "nosniff"),
                ("x-frame-options", "DENY"),
                ("cross-origin-opener-policy", "same-origin"),
                ("cross-origin-resource-policy", "same-origin"),
            ];
            for (name, value) in expected {
                assert_eq!(header_of(&response, name), Some(value), "{what}: {name}");
            }
            assert!(
                header_of(&response, "permissions-policy").is_some_and(|p| p.contains("camera=()")),
                "{what}"
            );
            assert!(
                response.headers().get(header::SET_COOKIE).is_none(),
                "{what}"
            );
            assert_eq!(
                header_of(&response, "strict-transport-security").is_some(),
                tls,
                "{what}: HSTS only over TLS"
            );
        }
    }
}

#[tokio::test]
async fn only_versioned_files_may_be_cached() {
    let gw = gateway(|_| {});
    for (method, uri, content_type) in one_of_each() {
        let versioned = uri.starts_with("/v/");
        let unversioned_file = uri == "/style.css";
        let response = gw
            .send(
                false,
                request(method.clone(), &uri, content_type, Body::empty()),
            )
            .await;
        let cache = header_of(&response, "cache-control").unwrap_or_default();
        let expected = if versioned {
            "public, max-age=31536000, immutable"
        } else if unversioned_file {
            "no-cache"
        } else {
            "no-store"
        };
        assert_eq!(cache, expected, "{method} {uri}");
    }
}

#[tokio::test]
async fn text_files_are_gzipped_only_for_clients_that_accept_it() {
    let gw = gateway(|_| {});
    let uri = format!("{}/app.js", crate::assets::versioned_prefix());
    for (accept, gzipped) in [
        (Some("gzip, deflate"), true),
        (Some("*"), true),
        (Some("gzip;q=0"), false),
        (Some("br"), false),
        (None, false),
    ] {
        let mut builder = Request::builder().uri(&uri);
        if let Some(accept) = accept {
            builder = builder.header(header::ACCEPT_ENCODING, accept);
        }
        let response = gw.send(false, builder.body(Body::empty()).unwrap()).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            header_of(&response, "content-encoding") == Some("gzip"),
            gzipped,
            "{accept:?}"
        );
        assert_eq!(header_of(&response, "vary"), Some("Accept-Encoding"));
        assert!(header_of(&response, "content-type").is_some_and(|t| t.contains("javascript")));
    }
}

/// Every refusal of the API: its status, its code (one of `tests/vectors/error-codes.json`) and
/// a JSON body with the code and a sentence, nothing else.
#[tokio::test]
async fn api_refusals_have_their_status_code_and_json_body() {
    let known: Vec<String> =
        serde_json::from_str(include_str!("../../tests/vectors/error-codes.json")).unwrap();
    let with_pow = gateway(|_| {});
    let without_pow = gateway(|c| c.proof_of_work.enabled = false);
    let sealed = Some("application/pgp-encrypted");
    let cases: Vec<(&Gateway, Request<Body>, StatusCode, &str)> = vec![
        (
            &with_pow,
            request(
                Method::GET,
                "/api/v1/courier/triage?since=2026-01-01",
                None,
                Body::empty(),
            ),
            StatusCode::UNAUTHORIZED,
            "courier_credentials_missing",
        ),
        (
            &with_pow,
            request(
                Method::GET,
                "/api/v1/courier/chain?since=0",
                None,
                Body::empty(),
            ),
            StatusCode::UNAUTHORIZED,
            "courier_credentials_missing",
        ),
        (
            &with_pow,
            request(
                Method::POST,
                "/api/v1/courier/batches",
                None,
                Body::from("{}"),
            ),
            StatusCode::UNAUTHORIZED,
            "courier_credentials_missing",
        ),
        (
            &with_pow,
            request(
                Method::GET,
                "/api/v1/courier/batches/x",
                None,
                Body::empty(),
            ),
            StatusCode::UNAUTHORIZED,
            "courier_credentials_missing",
        ),
        (
            &with_pow,
            request(
                Method::POST,
                "/api/v1/courier/purge",
                None,
                Body::from("{}"),
            ),
            StatusCode::UNAUTHORIZED,
            "courier_credentials_missing",
        ),
        (
            &with_pow,
            request(
                Method::POST,
                "/api/v1/courier/challenge",
                None,
                Body::empty(),
            ),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            &with_pow,
            request(Method::GET, "/api/v1/courier/purge", None, Body::empty()),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            &with_pow,
            {
                let mut r = request(Method::POST, "/api/v1/submissions", sealed, Body::from("x"));
                r.headers_mut()
                    .insert("resguardo-triage", "not base64!".parse().unwrap());
                r
            },
            StatusCode::BAD_REQUEST,
            "bad_triage",
        ),
        (
            &with_pow,
            request(Method::GET, "/nothing-here", None, Body::empty()),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            &with_pow,
            request(Method::GET, "/templates/page.html", None, Body::empty()),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            &with_pow,
            request(Method::GET, "/api/v1/submissions", None, Body::empty()),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            &with_pow,
            request(Method::DELETE, "/api/v1/keys", None, Body::empty()),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            &with_pow,
            request(Method::PUT, "/healthz", None, Body::empty()),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            &with_pow,
            request(
                Method::POST,
                "/api/v1/submissions",
                Some("text/plain"),
                Body::from("hello"),
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            &with_pow,
            request(
                Method::POST,
                "/api/v1/submissions",
                None,
                Body::from("hello"),
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            &with_pow,
            request(Method::POST, "/api/v1/submissions", sealed, Body::from("x")),
            StatusCode::BAD_REQUEST,
            "pow_missing",
        ),
        (
            &with_pow,
            {
                let mut r = request(Method::POST, "/api/v1/submissions", sealed, Body::from("x"));
                r.headers_mut()
                    .insert(crate::pow::HEADER, "not a solution".parse().unwrap());
                r
            },
            StatusCode::BAD_REQUEST,
            "pow_malformed",
        ),
        (
            &without_pow,
            request(Method::POST, "/api/v1/submissions", sealed, Body::empty()),
            StatusCode::BAD_REQUEST,
            "empty_body",
        ),
        (
            &without_pow,
            request(
                Method::POST,
                "/api/v1/submissions",
                sealed,
                Body::from("Dear reviewers, in the clear"),
            ),
            StatusCode::BAD_REQUEST,
            "not_openpgp",
        ),
    ];
    for (gw, request, status, code) in cases {
        let what = format!("{} {}", request.method(), request.uri());
        let response = gw.send(false, request).await;
        assert_eq!(response.status(), status, "{what}");
        assert_eq!(
            header_of(&response, "content-type"),
            Some("application/json"),
            "{what}"
        );
        let body = json_of(response).await;
        let object = body.as_object().expect("an object");
        assert_eq!(
            object.get("error").and_then(|e| e.as_str()),
            Some(code),
            "{what}"
        );
        assert!(
            known.iter().any(|k| k == code),
            "{code} is in error-codes.json"
        );
        let message = object.get("message").and_then(|m| m.as_str()).unwrap_or("");
        assert!(message.len() > 10, "{what}: a sentence for the reporter");
        assert!(
            object
                .keys()
                .all(|k| k == "error" || k == "message" || k == "retry_after"),
            "{what}: {body}"
        );
    }
    assert!(
        without_pow.state.store.records().unwrap().is_empty(),
        "nothing refused was stored"
    );
}

#[tokio::test]
async fn the_api_answers_json_and_the_page_html() {
    let gw = gateway(|_| {});
    let keys = gw.get("/api/v1/keys").await;
    assert_eq!(keys.status(), StatusCode::OK);
    let keys = json_of(keys).await;
    let reviewers = keys["reviewers"].as_array().expect("reviewers");
    assert_eq!(reviewers.len(), 2, "the two demo reviewers");
    assert!(reviewers.iter().all(|r| r["cert"]
        .as_str()
        .unwrap_or("")
        .contains("BEGIN PGP PUBLIC KEY")));
    assert!(keys["max_submission_bytes"].as_u64().unwrap_or(0) > 0);

    let challenge = json_of(gw.get("/api/v1/challenge").await).await;
    assert_eq!(challenge["required"], true);
    assert!(challenge["difficulty"].as_u64().unwrap_or(0) >= 1);

    assert_eq!(json_of(gw.get("/healthz").await).await["status"], "ok");

    for uri in ["/", "/?lang=en", "/?lang=xx"] {
        let page = gw.get(uri).await;
        assert_eq!(page.status(), StatusCode::OK, "{uri}");
        assert!(header_of(&page, "content-type").is_some_and(|t| t.starts_with("text/html")));
        let html = axum::body::to_bytes(page.into_body(), 1 << 22)
            .await
            .unwrap();
        let html = String::from_utf8_lossy(&html);
        assert!(
            html.contains("<form") && html.contains("action=\"/submit?t="),
            "{uri}"
        );
    }
}

/// The form without JavaScript answers in HTML, never in JSON, even when it refuses.
#[tokio::test]
async fn form_refusals_are_pages() {
    let gw = gateway(|_| {});
    let multipart = Some("multipart/form-data; boundary=x");
    let no_token = gw
        .send(
            false,
            request(Method::POST, "/submit", multipart, Body::from("--x--\r\n")),
        )
        .await;
    assert_eq!(no_token.status(), StatusCode::CONFLICT);
    assert!(header_of(&no_token, "content-type").is_some_and(|t| t.starts_with("text/html")));

    let disabled = gateway(|c| c.form.server_sealing = false);
    let refused = disabled
        .send(
            false,
            request(Method::POST, "/submit", multipart, Body::from("--x--\r\n")),
        )
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(header_of(&refused, "content-type").is_some_and(|t| t.starts_with("text/html")));
}

/// A courier challenge answered after its time is refused as expired (the gateway's own TTL is
/// minutes; this gateway's is one second).
#[tokio::test]
async fn an_expired_courier_challenge_is_refused_with_its_code() {
    let mut gw = gateway(|_| {});
    Arc::get_mut(&mut gw.state)
        .expect("not shared yet")
        .courier_challenges = super::form_token::FormTokens::with_key(&[7; 32], 0, 1);
    let challenge = json_of(gw.get("/api/v1/courier/challenge").await).await["challenge"]
        .as_str()
        .expect("a challenge")
        .to_string();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let mut request = request(
        Method::GET,
        "/api/v1/courier/triage?since=2026-01-01",
        None,
        Body::empty(),
    );
    request
        .headers_mut()
        .insert("resguardo-challenge", challenge.parse().unwrap());
    request
        .headers_mut()
        .insert("resguardo-signature", "AAAA".parse().unwrap());
    let response = gw.send(false, request).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        json_of(response).await["error"],
        "courier_challenge_expired"
    );
}

/// Regression: a purge body (up to tens of MiB) was read before the signature was checked, so
/// anyone could make the gateway read it. The signature covers the announced body hash and is
/// checked first; a refused request's body is never polled.
#[tokio::test]
async fn a_courier_body_is_not_read_before_the_signature_is_checked() {
    let gw = gateway(|_| {});
    let challenge = json_of(gw.get("/api/v1/courier/challenge").await).await["challenge"]
        .as_str()
        .expect("a challenge")
        .to_string();
    let polled = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = polled.clone();
    let body = futures_util::stream::poll_fn(move |_| {
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
        std::task::Poll::Ready(Some(Ok::<_, std::io::Error>(axum::body::Bytes::from(
            vec![b'x'; 1 << 20],
        ))))
    });
    let mut request = request(
        Method::POST,
        "/api/v1/courier/purge",
        Some("application/json"),
        Body::from_stream(body),
    );
    for (name, value) in [
        ("resguardo-challenge", challenge.as_str()),
        ("resguardo-signature", "AAAA"),
        (
            "resguardo-body-sha256",
            "00000000000000000000000000000000000000000000000000000000000000ff",
        ),
    ] {
        request.headers_mut().insert(name, value.parse().unwrap());
    }
    let response = gw.send(false, request).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_of(response).await["error"], "courier_malformed");
    assert!(
        !polled.load(std::sync::atomic::Ordering::SeqCst),
        "the body was read before the signature was checked"
    );
}

/// A wrong receipt and a conversation with nothing new get the same status and the same length
/// (and the same decoy for the same wrong locator every time): nothing to tell them apart but
/// the receipt itself.
#[tokio::test]
async fn a_wrong_receipt_and_an_empty_conversation_answer_alike() {
    use crate::replies::{Locator, BOX_BYTES};
    let gw = gateway(|c| c.proof_of_work.enabled = false);
    let real = Locator([1; 32]);
    let mut incoming = gw.state.store.begin(Some(4)).expect("begin");
    std::io::Write::write_all(&mut incoming, b"aaaa").expect("write");
    gw.state
        .store
        .commit_with(
            incoming,
            crate::submission::Sealing::BySender,
            None,
            Some((&real, &vec![9; BOX_BYTES])),
        )
        .expect("commit");
    let check = |locator: Locator| {
        let body = format!("{{\"locator\":\"{locator}\"}}");
        request(
            Method::POST,
            "/api/v1/conversations/check",
            Some("application/json"),
            Body::from(body),
        )
    };
    let mut answers = Vec::new();
    for locator in [real, Locator([2; 32]), Locator([2; 32])] {
        let response = gw.send(false, check(locator)).await;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        answers.push((status, bytes));
    }
    assert_eq!(answers[0].0, StatusCode::OK);
    assert_eq!(answers[1].0, StatusCode::OK);
    assert_eq!(answers[0].1.len(), answers[1].1.len(), "one size class");
    assert_ne!(answers[0].1, answers[1].1);
    assert_eq!(answers[1].1, answers[2].1, "the same decoy each time");
    // Malformed locators are refused with a reason.
    let bad = gw
        .send(
            false,
            request(
                Method::POST,
                "/api/v1/conversations/check",
                Some("application/json"),
                Body::from("{\"locator\":\"XYZ\"}"),
            ),
        )
        .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_of(bad).await["error"], "bad_body");
}

/// Check-ins without proof of work are refused before they take a turn (a flood of them cannot
/// use up the budget reporters need), and solved check-ins do not make submitting harder.
#[tokio::test]
async fn check_ins_pay_in_work_before_taking_a_turn_and_do_not_raise_the_difficulty() {
    let gw = gateway(|c| {
        c.proof_of_work.base_difficulty = 4;
        c.rate_limits.check_burst = 2;
        c.rate_limits.checks_per_minute = 1;
        c.rate_limits.submissions_per_minute = 1;
    });
    let check = |solution: Option<String>| {
        let mut r = request(
            Method::POST,
            "/api/v1/conversations/check",
            Some("application/json"),
            Body::from(format!("{{\"locator\":\"{}\"}}", "ab".repeat(32))),
        );
        if let Some(s) = solution {
            r.headers_mut()
                .insert(crate::pow::HEADER, s.parse().expect("header"));
        }
        r
    };
    for _ in 0..20 {
        let refused = gw.send(false, check(None)).await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        assert_eq!(json_of(refused).await["error"], "pow_missing");
    }
    let solved = || {
        let challenge = gw.state.pow.issue();
        crate::pow::solve(&challenge.challenge, challenge.difficulty).expect("solved")
    };
    let before = gw.state.pow.current_difficulty();
    for _ in 0..2 {
        assert_eq!(
            gw.send(false, check(Some(solved()))).await.status(),
            StatusCode::OK
        );
    }
    // The burst of two is spent by the two solved check-ins, not by the twenty without work.
    let third = gw.send(false, check(Some(solved()))).await;
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(gw.state.pow.current_difficulty(), before);
}
