//! The page check against the gateway's own router (the genuine page, served as a browser gets
//! it) and against the same answers altered one way at a time.

use std::io::Write as _;
use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use tower::ServiceExt;

use super::*;
use crate::config::GatewayConfig;
use crate::gateway::{prepare, router, AppState};

/// A request the check made: its path and headers.
type Sent = (String, Vec<(String, String)>);

/// What a test changes in an answer.
type Alter = Box<dyn Fn(&str, &mut Fetched)>;

/// The gateway's router (embedded default, fresh data directory), driven without a socket;
/// `alter` changes an answer (its body decoded, sent without encoding) before the check reads
/// it.
struct RouterFetcher {
    state: Arc<AppState>,
    runtime: tokio::runtime::Runtime,
    alter: Alter,
    requests: Vec<Sent>,
    _dir: tempfile::TempDir,
}

fn fetcher(alter: impl Fn(&str, &mut Fetched) + 'static) -> RouterFetcher {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = GatewayConfig::embedded_default();
    config.data_dir = dir.path().join("data");
    let validated = config.validate(true).expect("the default config is valid");
    let (state, _) = prepare(&validated).expect("state");
    RouterFetcher {
        state,
        runtime: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime"),
        alter: Box::new(alter),
        requests: Vec::new(),
        _dir: dir,
    }
}

fn genuine() -> RouterFetcher {
    fetcher(|_, _| {})
}

impl PageFetcher for RouterFetcher {
    fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> Result<Fetched, String> {
        self.requests.push((
            path.to_string(),
            headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        ));
        let mut builder = Request::builder().uri(path);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder.body(Body::empty()).map_err(|e| e.to_string())?;
        let app = router(self.state.clone(), false);
        let mut fetched = self.runtime.block_on(async move {
            let response = app.oneshot(request).await.expect("answers");
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .map(|(n, v)| (n.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
                .collect();
            let body = axum::body::to_bytes(response.into_body(), MAX_BODY as usize + 1)
                .await
                .expect("body")
                .to_vec();
            Fetched {
                status,
                headers,
                body,
            }
        });
        let before = fetched.clone();
        let mut plain = fetched.clone();
        if plain.header_values("content-encoding") == ["gzip"] {
            let mut d = flate2::read::GzDecoder::new(&plain.body[..]);
            let mut out = Vec::new();
            d.read_to_end(&mut out).expect("gzip");
            plain.body = out;
            plain
                .headers
                .retain(|(n, _)| !n.eq_ignore_ascii_case("content-encoding"));
        }
        let untouched = plain.clone();
        (self.alter)(path, &mut plain);
        if plain.body != untouched.body
            || plain.headers != untouched.headers
            || plain.status != untouched.status
        {
            fetched = plain;
        } else {
            fetched = before;
        }
        Ok(fetched)
    }
}

fn manifest() -> PageManifest {
    PageManifest::embedded()
}

fn versioned(path: &str) -> String {
    format!("/v/{}{path}", manifest().release)
}

/// Runs the check (loopback-style headers) and returns its differences.
fn differences(mut f: RouterFetcher) -> Vec<PageDifference> {
    let report = check_page(&mut f, &manifest(), true).expect("reached");
    report.differences
}

fn edit_page(page: &'static str, edit: impl Fn(&str) -> String + 'static) -> RouterFetcher {
    fetcher(move |path, answer| {
        if path == page {
            let html = String::from_utf8(answer.body.clone()).expect("utf-8");
            answer.body = edit(&html).into_bytes();
        }
    })
}

/// Adds `markup` at the end of the page's `<head>`.
fn in_head(page: &'static str, markup: &'static str) -> RouterFetcher {
    edit_page(page, move |html| {
        html.replacen("</head>", &format!("{markup}</head>"), 1)
    })
}

#[test]
fn the_genuine_page_passes_and_every_file_is_checked() {
    let m = manifest();
    for secure in [true, false] {
        let mut f = genuine();
        let report = check_page(&mut f, &m, secure).expect("reached");
        assert!(report.is_genuine(), "{:?}", report.differences);
        assert_eq!(report.files_checked, m.files.len());
        // The pages first, then what they load, then the rest of the release.
        assert_eq!(f.requests[0].0, "/");
        assert_eq!(f.requests[1].0, versioned("/style.css"));
        assert_eq!(f.requests.len(), m.files.len() + 2);
        // Every request asked for gzip, and the files came gzipped (so decoding is tested).
        assert!(f.requests.iter().all(|(_, h)| h
            .iter()
            .any(|(n, v)| n == "Accept-Encoding" && v.contains("gzip"))));
    }
}

#[test]
fn browser_headers_are_chromiums() {
    let nav = browser_headers(Destination::Navigation, true);
    let names: Vec<&str> = nav.iter().map(|(n, _)| *n).collect();
    assert_eq!(names[0], "Connection");
    assert!(names.contains(&"Sec-Fetch-Dest"));
    assert!(nav.contains(&("Sec-Fetch-Mode", "navigate")));
    assert!(nav
        .iter()
        .any(|(n, v)| *n == "User-Agent" && v.contains("Chrome/") && v.contains("Linux")));
    let script = browser_headers(Destination::Script { module: true }, true);
    assert!(script.contains(&("Sec-Fetch-Dest", "script")));
    assert!(script.contains(&("Sec-Fetch-Mode", "cors")));
    assert!(script.contains(&("Accept", "*/*")));
    let style = browser_headers(Destination::Style, true);
    assert!(style.contains(&("Accept", "text/css,*/*;q=0.1")));
    // Plain http to an onion: no client hints, no Sec-Fetch-*, gzip and deflate only.
    let onion = browser_headers(Destination::Navigation, false);
    assert!(!onion
        .iter()
        .any(|(n, _)| n.starts_with("Sec-") || n.starts_with("sec-")));
    assert!(onion.contains(&("Accept-Encoding", "gzip, deflate")));
    assert!(!browser_headers(Destination::Fetch, true)
        .iter()
        .any(|(n, _)| *n == "Referer" || *n == "Origin"));
}

#[test]
fn a_changed_script_is_named() {
    let app = versioned("/app.js");
    let f = fetcher(move |path, answer| {
        if path == app {
            answer
                .body
                .extend_from_slice(b"\nfetch('/x?'+document.body.innerHTML);\n");
        }
    });
    let d = differences(f);
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(matches!(&d[0], PageDifference::FileDiffers { path, .. } if path == "/app.js"));
    assert!(d[0].to_string().contains("/app.js"), "{}", d[0]);
    assert_eq!(d[0].key(), "file-differs:/app.js");
}

#[test]
fn a_missing_file_is_named() {
    let check = versioned("/check.js");
    let f = fetcher(move |path, answer| {
        if path == check {
            answer.status = 404;
        }
    });
    let d = differences(f);
    assert!(
        d.iter()
            .any(|d| matches!(d, PageDifference::FileMissing { path, status: 404, .. } if path == "/check.js")),
        "{d:?}"
    );
}

#[test]
fn a_page_that_is_not_served_is_a_difference() {
    let f = fetcher(|path, answer| {
        if path == "/check" {
            answer.status = 302;
            answer
                .headers
                .push(("location".into(), "https://evil.example/".into()));
        }
    });
    let d = differences(f);
    assert_eq!(
        d,
        vec![PageDifference::PageNotServed {
            page: "/check".into(),
            status: 302
        }]
    );
}

#[test]
fn inline_code_is_refused_and_inert_data_is_not() {
    let d = differences(in_head("/", "<script>fetch('/x')</script>"));
    assert_eq!(d, vec![PageDifference::InlineScript { page: "/".into() }]);
    let d = differences(in_head("/", "<SCRIPT type=text/javascript >x()</SCRIPT >"));
    assert_eq!(d, vec![PageDifference::InlineScript { page: "/".into() }]);
    assert!(differences(in_head(
        "/check",
        "<script type=\" Application/JSON \">{}</script>"
    ))
    .is_empty());
}

#[test]
fn event_handlers_are_refused() {
    for markup in [
        "<img src=x onerror=alert(1)>",
        "<body ONLOAD=\"go()\">",
        "<div/onclick='x'>",
        "<a href=\"/\"\tonmouseover=x>",
    ] {
        let d = differences(in_head("/", markup));
        assert!(
            d.iter()
                .any(|d| matches!(d, PageDifference::EventHandler { .. })),
            "{markup}: {d:?}"
        );
    }
}

#[test]
fn resources_from_another_origin_are_refused() {
    for markup in [
        "<script type=module src=\"https://evil.example/a.js\"></script>",
        "<script src=\"//evil.example/a.js\"></script>",
        "<link rel=stylesheet href=\"\\\\evil.example/a.css\">",
        "<img src=\" /\t/evil.example/p.png\">",
        "<img srcset=\"/v/x/a.png 1x, https://evil.example/b.png 2x\">",
        "<form action=\"https://evil.example/collect\"></form>",
        "<link rel=preload href=\"HTTPS://evil.example/x\">",
    ] {
        let d = differences(in_head("/", markup));
        assert!(
            d.iter()
                .any(|d| matches!(d, PageDifference::ForeignResource { .. })),
            "{markup}: {d:?}"
        );
    }
    // A link to the other page, a phone number or a fragment are not resources.
    assert!(differences(in_head(
        "/",
        "<a href=\"/check?lang=es\">x</a><a href=\"tel:105\">105</a><a href=\"#f\">f</a>"
    ))
    .is_empty());
}

#[test]
fn unlisted_and_other_release_resources_are_refused() {
    let extra = Box::leak(
        format!("<link rel=stylesheet href=\"{}\">", versioned("/extra.css")).into_boxed_str(),
    );
    let d = differences(in_head("/", extra));
    assert!(
        matches!(&d[..], [PageDifference::UnlistedResource { path, .. }] if path.ends_with("/extra.css")),
        "{d:?}"
    );
    let d = differences(in_head(
        "/check",
        "<script type=module src=\"/v/0123456789abcdef/app.js\"></script>",
    ));
    assert_eq!(
        d,
        vec![PageDifference::OtherRelease {
            page: "/check".into(),
            found: "0123456789abcdef".into()
        }]
    );
    let d = differences(in_head("/", "<script src=\"/api/v1/x.js\"></script>"));
    assert!(
        matches!(&d[..], [PageDifference::UnlistedResource { .. }]),
        "{d:?}"
    );
    let d = differences(in_head("/", "<script src=\"/v/../../app.js\"></script>"));
    assert!(
        matches!(&d[..], [PageDifference::ActiveContent { .. }]),
        "{d:?}"
    );
}

#[test]
fn a_listed_file_under_another_url_is_fetched_there() {
    // The bare path is a manifest file too, but the gateway may serve it differently: it is
    // fetched where the page points, and compared.
    let f = fetcher(|path, answer| {
        if path == "/style.css" {
            answer.body = b"body{background:url(https://evil.example/t)}".to_vec();
        }
    });
    let f = RouterFetcher {
        alter: Box::new({
            let inner = f.alter;
            move |path: &str, answer: &mut Fetched| {
                inner(path, answer);
                if path == "/" {
                    let html = String::from_utf8(answer.body.clone()).expect("utf-8");
                    answer.body = html
                        .replacen(
                            "</head>",
                            "<link rel=stylesheet href=\"/style.css\"></head>",
                            1,
                        )
                        .into_bytes();
                }
            }
        }),
        ..f
    };
    let d = differences(f);
    assert!(
        matches!(&d[..], [PageDifference::FileDiffers { path, url, .. }] if path == "/style.css" && url == "/style.css"),
        "{d:?}"
    );
}

#[test]
fn another_policy_is_refused() {
    let f = fetcher(|path, answer| {
        if path == "/" {
            for (n, v) in &mut answer.headers {
                if n == "content-security-policy" {
                    *v = "default-src *".into();
                }
            }
        }
    });
    let d = differences(f);
    assert_eq!(
        d,
        vec![PageDifference::PolicyDiffers {
            path: "/".into(),
            served: Some("default-src *".into())
        }]
    );
    let app = versioned("/app.js");
    let f = fetcher(move |path, answer| {
        if path == app {
            answer
                .headers
                .retain(|(n, _)| n != "content-security-policy");
        }
    });
    let d = differences(f);
    assert_eq!(
        d,
        vec![PageDifference::PolicyDiffers {
            path: "/app.js".into(),
            served: None
        }]
    );
}

#[test]
fn encodings_the_check_cannot_read_are_differences() {
    let app = versioned("/app.js");
    let app2 = app.clone();
    let f = fetcher(move |path, answer| {
        if path == app {
            answer
                .headers
                .push(("content-encoding".into(), "br".into()));
        }
    });
    let d = differences(f);
    assert!(
        matches!(&d[..], [PageDifference::Undecodable { encoding, .. }] if encoding == "br"),
        "{d:?}"
    );
    // A second gzip member after the first (a browser might read either).
    let f = fetcher(move |path, answer| {
        if path == app2 {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&answer.body).unwrap();
            let mut body = gz.finish().unwrap();
            let mut more = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            more.write_all(b";evil()").unwrap();
            body.extend(more.finish().unwrap());
            answer.body = body;
            answer
                .headers
                .push(("content-encoding".into(), "gzip".into()));
        }
    });
    let d = differences(f);
    assert!(
        matches!(&d[..], [PageDifference::Undecodable { .. }]),
        "{d:?}"
    );
}

#[test]
fn markup_hidden_from_the_scanner_is_refused() {
    for markup in [
        // Inside raw text the scanner reads as text, a browser may read as markup.
        "<title><script src=\"https://evil.example/a.js\"></script></title>",
        "<select><textarea><img src=x onerror=y></textarea></select>",
        // Elements the page never has.
        "<svg><script href=\"/v/x/app.js\"></script></svg>",
        "<iframe srcdoc=\"&lt;script&gt;x()&lt;/script&gt;\"></iframe>",
        "<base href=\"https://evil.example/\">",
        "<meta http-equiv=refresh content=\"0;url=https://evil.example/\">",
        "<style>body{background:url(//evil.example/)}</style>",
        "<a href=\"javascript:go()\">x</a>",
        "<a href=\"java&#x09;script:go()\">x</a>",
        "<a href=\"jav&Tab;ascript:go()\">x</a>",
    ] {
        let d = differences(in_head("/", markup));
        assert!(!d.is_empty(), "{markup}: not noticed");
    }
    // With scripting on, <noscript> is raw text: what follows its end is markup again.
    let d = differences(in_head(
        "/",
        "<noscript><textarea></noscript><script src=\"https://evil.example/a.js\"></script></textarea></noscript>",
    ));
    assert!(
        d.iter()
            .any(|d| matches!(d, PageDifference::ForeignResource { .. })),
        "{d:?}"
    );
    // A comment closed the way browsers close it ("--!>") hides nothing.
    let d = differences(in_head(
        "/",
        "<!-- x --!><script src=\"https://evil.example/a.js\"></script><!-- -->",
    ));
    assert!(
        d.iter()
            .any(|d| matches!(d, PageDifference::ForeignResource { .. })),
        "{d:?}"
    );
}

#[test]
fn a_network_failure_is_an_error_not_a_difference() {
    struct Down;
    impl PageFetcher for Down {
        fn get(&mut self, _: &str, _: &[(&str, &str)]) -> Result<Fetched, String> {
            Err("connection refused".into())
        }
    }
    assert!(matches!(
        check_page(&mut Down, &manifest(), false),
        Err(PageCheckError::Unreachable { .. })
    ));
}

#[test]
fn references_decode_as_browsers_decode_them() {
    assert_eq!(decode_references("a&amp;b&#47;&#x2F;c&lt;"), "a&b//c<");
    assert_eq!(decode_references("&#106avascript"), "javascript");
    assert_eq!(decode_references("&Tab;"), "&Tab;");
}
