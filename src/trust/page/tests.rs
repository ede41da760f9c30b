//! The page check against the gateway's own router (the genuine page, served as a browser gets
//! it) and against the same answers altered one way at a time.

use std::collections::HashSet;
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
        let paths: Vec<&str> = f.requests.iter().map(|(p, _)| p.as_str()).collect();
        // Every file of the release once, each page once.
        assert_eq!(report.files_checked, m.files.len(), "{paths:?}");
        let unique: HashSet<&str> = paths.iter().copied().collect();
        assert_eq!(unique.len(), paths.len(), "{paths:?}");
        // As a browser with scripting on: the page, then what it loads in document order
        // (not nojs.css, inside <noscript>), then the modules app.js imports, the icon.
        assert_eq!(paths[0], "/");
        assert_eq!(paths[1], versioned("/style.css"));
        assert_eq!(paths[2], versioned("/app.js"));
        assert_eq!(paths[3], versioned("/vendor/openpgp.min.mjs"));
        let favicon = paths
            .iter()
            .position(|p| *p == "/favicon.ico")
            .expect("icon");
        let nojs = paths
            .iter()
            .position(|p| *p == versioned("/nojs.css"))
            .expect("nojs.css in the rest session");
        let check = paths.iter().position(|p| *p == "/check").expect("/check");
        assert!(favicon < check && check < nojs, "{paths:?}");
        // The pages the page links to, in their languages.
        for page in ["/?lang=en", "/?lang=es", "/check?lang=es"] {
            assert!(paths.contains(&page), "{page}: {paths:?}");
        }
        assert!(report.pages_checked <= MAX_PAGES);
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
        d.iter().any(|d| matches!(d, PageDifference::FileDiffers { path, url, .. } if path == "/style.css" && url == "/style.css")),
        "{d:?}"
    );
    // And it is a load the released page does not have.
    assert!(
        d.iter().any(|d| matches!(d, PageDifference::LoadsDiffer { url, missing: false, .. } if url == "/style.css")),
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

/// Regression (finding 4): digits past the eighth were cut, so `&#x0000002F0;` read as `/` for
/// the scanner and as U+02F0 in a browser.
#[test]
fn references_with_more_than_eight_digits_decode_as_browsers_decode_them() {
    assert_eq!(decode_references("&#x0000002F0;"), "\u{2F0}");
    assert_eq!(
        decode_references("&#x0000002F0;&#x0000002F0;x"),
        "\u{2F0}\u{2F0}x"
    );
    assert_eq!(decode_references("&#0000000000047;"), "/");
    assert_eq!(decode_references("&#x110000;"), "\u{FFFD}");
    assert_eq!(decode_references("&#99999999999999999999999;"), "\u{FFFD}");
    assert_eq!(decode_references("&#xD800;"), "\u{FFFD}");
    assert_eq!(decode_references("&#0;"), "\u{FFFD}");
    assert_eq!(decode_references("&#x80;&#x9F;"), "\u{20AC}\u{178}");
    // In a page: a link that a browser reads as a path of this site, not another site.
    let d = differences(in_head(
        "/",
        "<a href=\"&#x0000002F0;&#x0000002F0;evil.example/\">x</a>",
    ));
    assert!(
        !d.iter()
            .any(|d| matches!(d, PageDifference::ForeignResource { .. })),
        "{d:?}"
    );
    assert!(
        d.iter()
            .any(|d| matches!(d, PageDifference::UnlistedTarget { .. })),
        "{d:?}"
    );
}

fn set_header(page: &'static str, name: &'static str, value: &'static str) -> RouterFetcher {
    fetcher(move |path, answer| {
        if path == page {
            answer
                .headers
                .retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            answer.headers.push((name.into(), value.into()));
        }
    })
}

fn header_differs(d: &[PageDifference], name: &str) -> bool {
    d.iter()
        .any(|d| matches!(d, PageDifference::HeaderDiffers { header, .. } if header == name))
}

/// Regression (finding 1): a page in UTF-16 (with a byte-order mark) hid a `<script>` from the
/// scanner.
#[test]
fn a_utf16_page_with_a_byte_order_mark_is_refused() {
    let f = edit_page("/", |html| html.to_string());
    let f = RouterFetcher {
        alter: Box::new(|path: &str, answer: &mut Fetched| {
            if path == "/" {
                let html = String::from_utf8(answer.body.clone()).unwrap();
                let mut body = vec![0xff, 0xfe];
                for unit in html.encode_utf16() {
                    body.extend_from_slice(&unit.to_le_bytes());
                }
                answer.body = body;
            }
        }),
        ..f
    };
    let d = differences(f);
    assert!(
        d.iter()
            .any(|d| matches!(d, PageDifference::Encoding { page, .. } if page == "/")),
        "{d:?}"
    );
}

/// Regression (finding 1): a charset in the Content-Type (ISO-2022-JP, whose escapes hide
/// markup), an XHTML type, or no `nosniff` let a browser read the page otherwise.
#[test]
fn a_page_of_another_type_or_charset_is_refused() {
    let d = differences(set_header(
        "/",
        "content-type",
        "text/html; charset=iso-2022-jp",
    ));
    assert!(header_differs(&d, "content-type"), "{d:?}");
    let d = differences(set_header(
        "/check",
        "content-type",
        "application/xhtml+xml",
    ));
    assert!(header_differs(&d, "content-type"), "{d:?}");
    // The same value in other case is the same type.
    assert!(differences(set_header("/", "content-type", "TEXT/HTML; Charset=UTF-8")).is_empty());
    let f = fetcher(|path, answer| {
        if path == "/" {
            answer
                .headers
                .retain(|(n, _)| n != "x-content-type-options");
        }
    });
    assert!(header_differs(&differences(f), "x-content-type-options"));
    // ISO-2022-JP's escape, a NUL, bytes that are not UTF-8, a <meta charset> of another kind.
    for bad in [&b"\x1b$B"[..], b"\0", b"\xff\xfe\xfd"] {
        let bad = bad.to_vec();
        let f = fetcher(move |path, answer| {
            if path == "/" {
                answer.body.extend_from_slice(&bad);
            }
        });
        let d = differences(f);
        assert!(
            d.iter()
                .any(|d| matches!(d, PageDifference::Encoding { .. })),
            "{d:?}"
        );
    }
    let d = differences(in_head("/", "<meta charset=\"windows-1252\">"));
    assert!(
        d.iter()
            .any(|d| matches!(d, PageDifference::Encoding { .. })),
        "{d:?}"
    );
}

#[test]
fn a_file_of_another_type_is_refused() {
    let app: &'static str = Box::leak(versioned("/app.js").into_boxed_str());
    let d = differences(set_header(app, "content-type", "text/html; charset=utf-8"));
    assert!(header_differs(&d, "content-type"), "{d:?}");
}

/// Regression (finding 2): a page without its script passed (the check flagged extras, never
/// absences), and the reporter's form then posted the report in clear to /submit.
#[test]
fn a_page_without_its_script_is_refused() {
    let d = differences(edit_page("/", |html| {
        let start = html.find("<script type=\"module\"").expect("the script");
        let end = start + html[start..].find("</script>").unwrap() + "</script>".len();
        format!("{}{}", &html[..start], &html[end..])
    }));
    assert!(
        d.iter().any(
            |d| matches!(d, PageDifference::LoadsDiffer { missing: true, url, element, .. }
            if url.ends_with("/app.js") && element == "script-module")
        ),
        "{d:?}"
    );
    // Loaded as a classic script, or only without scripting, it is not the same load.
    let d = differences(edit_page("/check", |html| {
        html.replacen("<script type=\"module\"", "<script", 1)
    }));
    assert!(
        d.iter()
            .any(|d| matches!(d, PageDifference::LoadsDiffer { missing: true, .. })),
        "{d:?}"
    );
    let d = differences(edit_page("/", |html| {
        let start = html.find("<script type=\"module\"").expect("the script");
        let end = start + html[start..].find("</script>").unwrap() + "</script>".len();
        let script = &html[start..end];
        format!(
            "{}<noscript>{script}</noscript>{}",
            &html[..start],
            &html[end..]
        )
    }));
    assert!(
        d.iter()
            .any(|d| matches!(d, PageDifference::LoadsDiffer { missing: true, .. })),
        "{d:?}"
    );
    // The stylesheet twice is one load too many.
    let d = differences(edit_page("/", |html| {
        let start = html.find("<link rel=\"stylesheet\"").expect("the style");
        let end = start + html[start..].find('>').unwrap() + 1;
        format!("{}{}{}", &html[..end], &html[start..end], &html[end..])
    }));
    assert!(
        d.iter()
            .any(|d| matches!(d, PageDifference::LoadsDiffer { missing: false, .. })),
        "{d:?}"
    );
}

#[test]
fn the_manifest_says_what_each_page_loads() {
    let m = manifest();
    let root = m.pages.iter().find(|p| p.path == "/").expect("/");
    let loads: Vec<(&str, &str)> = root
        .loads
        .iter()
        .map(|l| (l.element.as_str(), l.path.as_str()))
        .collect();
    assert!(loads.contains(&("script-module", "/app.js")), "{loads:?}");
    assert!(loads.contains(&("stylesheet", "/style.css")), "{loads:?}");
    assert!(
        loads.contains(&("noscript-stylesheet", "/nojs.css")),
        "{loads:?}"
    );
    assert_eq!(root.forms, vec!["/submit".to_string()]);
    let check = m.pages.iter().find(|p| p.path == "/check").expect("/check");
    assert!(check
        .loads
        .iter()
        .any(|l| l.element == "script-module" && l.path == "/check.js"));
    assert_eq!(check.forms, vec!["/check".to_string()]);
    m.check().expect("a valid manifest");
    // A manifest that does not say (a list from before) cannot pass.
    let mut old = m.clone();
    old.pages.clear();
    let report = check_page(&mut genuine(), &old, true).expect("reached");
    assert!(
        report
            .differences
            .iter()
            .any(|d| matches!(d, PageDifference::PageUndescribed { .. })),
        "{:?}",
        report.differences
    );
}

#[test]
fn forms_post_only_to_the_release_paths() {
    let d = differences(edit_page("/", |html| {
        html.replacen("action=\"/submit?", "action=\"/api/v1/collect?", 1)
    }));
    assert!(
        d.iter().any(
            |d| matches!(d, PageDifference::UnlistedTarget { element, .. } if element == "form")
        ),
        "{d:?}"
    );
    let d = differences(in_head("/", "<form method=post></form>"));
    assert!(
        d.iter()
            .any(|d| matches!(d, PageDifference::UnlistedTarget { .. })),
        "{d:?}"
    );
    let d = differences(in_head("/", "<button formaction=\"/x\">x</button>"));
    assert!(
        d.iter()
            .any(|d| matches!(d, PageDifference::UnlistedTarget { .. })),
        "{d:?}"
    );
}

/// Regression (finding 3): `Refresh`, `Link` (Firefox and Tor Browser apply a stylesheet in it)
/// and `Set-Cookie` passed: only the CSP was looked at.
#[test]
fn headers_the_gateway_does_not_send_are_refused() {
    for (name, value) in [
        ("refresh", "0; url=/evil"),
        ("link", "</v/x/evil.css>; rel=stylesheet"),
        ("set-cookie", "id=1"),
        ("content-disposition", "attachment"),
    ] {
        let d = differences(set_header("/", name, value));
        assert!(header_differs(&d, name), "{name}: {d:?}");
        let d = differences(set_header("/check?lang=es", name, value));
        assert!(header_differs(&d, name), "{name}: {d:?}");
    }
    // The security headers at their values.
    let d = differences(set_header("/", "x-frame-options", "ALLOWALL"));
    assert!(header_differs(&d, "x-frame-options"), "{d:?}");
    let d = differences(set_header("/", "cache-control", "public, max-age=31536000"));
    assert!(header_differs(&d, "cache-control"), "{d:?}");
    let app: &'static str = Box::leak(versioned("/app.js").into_boxed_str());
    let d = differences(set_header(app, "link", "</x>; rel=preload"));
    assert!(header_differs(&d, "link"), "{d:?}");
    // What the transport adds is not a difference.
    assert!(differences(set_header("/", "date", "Mon, 01 Dec 2025 00:00:00 GMT")).is_empty());
}

/// Regression (finding 5): past the fetch bound the page was scanned in part (32 MiB, or a gzip
/// bomb of spaces, then a script).
#[test]
fn a_page_over_its_bound_is_refused_not_scanned_in_part() {
    let d = differences(edit_page("/", |html| {
        format!(
            "{html}{}<script src=\"https://evil.example/a.js\"></script>",
            " ".repeat(1 << 20)
        )
    }));
    assert!(
        d.iter()
            .any(|d| matches!(d, PageDifference::TooLarge { url } if url == "/")),
        "{d:?}"
    );
    // A gzip bomb: 64 MiB of spaces in a small body; decoding stops past the bound.
    let f = fetcher(|path, answer| {
        if path == "/check" {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            gz.write_all(&answer.body).unwrap();
            let chunk = vec![b' '; 1 << 20];
            for _ in 0..64 {
                gz.write_all(&chunk).unwrap();
            }
            answer.body = gz.finish().unwrap();
            answer
                .headers
                .push(("content-encoding".into(), "gzip".into()));
        }
    });
    let started = std::time::Instant::now();
    let d = differences(f);
    assert!(
        d.iter()
            .any(|d| matches!(d, PageDifference::TooLarge { url } if url == "/check")),
        "{d:?}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

/// Regression (finding 6): the pages a page links to (`/?lang=en`…) were never fetched, and a
/// link to any path of the site passed.
#[test]
fn every_page_the_page_links_to_is_checked_and_no_other_link_passes() {
    // Only the English page is altered.
    let f = fetcher(|path, answer| {
        if path == "/?lang=en" {
            let html = String::from_utf8(answer.body.clone()).unwrap();
            answer.body = html
                .replacen("</head>", "<script>steal()</script></head>", 1)
                .into_bytes();
        }
    });
    let d = differences(f);
    assert_eq!(
        d,
        vec![PageDifference::InlineScript {
            page: "/?lang=en".into()
        }]
    );
    for link in [
        "/api/v1/keys",
        "/?lang=xx",
        "/check?lang=en&x=1",
        "/v/x/app.js",
        "https://evil.example/",
    ] {
        let markup = Box::leak(format!("<a href=\"{link}\">x</a>").into_boxed_str());
        let d = differences(in_head("/", markup));
        assert!(
            d.iter().any(|d| matches!(
                d,
                PageDifference::UnlistedTarget { .. } | PageDifference::ForeignResource { .. }
            )),
            "{link}: {d:?}"
        );
    }
}

/// Regression (finding 10): 2000 `<img>` made 2016 requests (96 s); attributes and references
/// were de-duplicated in quadratic time; millions of tags took hundreds of MB.
#[test]
fn a_hostile_page_costs_few_requests_and_linear_time() {
    let started = std::time::Instant::now();
    let mut f = edit_page("/", |html| {
        let mut imgs = String::new();
        for n in 0..2000 {
            imgs.push_str(&format!(
                "<img src=\"/v/x/app.js?{n}\"><img src=\"/style.css?{n}\">"
            ));
        }
        html.replacen("</head>", &format!("{imgs}</head>"), 1)
    });
    let report = check_page(&mut f, &manifest(), true).expect("reached");
    assert!(!report.is_genuine());
    // At most 32 loads of the first page before the manifest is known, then only released files.
    assert!(
        f.requests.len() <= manifest().files.len() + MAX_PAGES + 32 + 1,
        "{}",
        f.requests.len()
    );
    // A tag with thirty thousand attributes, and a page of tags only.
    let d = differences(edit_page("/check", |html| {
        let mut attrs = String::from("<p");
        for n in 0..30_000 {
            attrs.push_str(&format!(" a{n}"));
        }
        attrs.push('>');
        html.replacen(
            "</head>",
            &format!("{attrs}{}</head>", "<a>".repeat(200_000)),
            1,
        )
    }));
    assert!(
        d.iter()
            .any(|d| matches!(d, PageDifference::TooMuch { .. })),
        "{d:?}"
    );
    // Comments that end far away, in one pass.
    let d = differences(in_head(
        "/",
        Box::leak("<!-- -- -- -->".repeat(50_000).into_boxed_str()),
    ));
    assert!(d.is_empty(), "{d:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn static_imports_are_followed_as_a_browser_does() {
    let js = "import * as a from './vendor/x.mjs';\nimport{b}from\"../y.js\";\nimport './z.js';\nconst c = import('./lazy.js');\nexport { d } from './d.js';\nx.from('./no.js');";
    assert_eq!(
        static_imports(js),
        vec!["./vendor/x.mjs", "../y.js", "./z.js", "./d.js"]
    );
    assert_eq!(
        resolve("/v/r/app.js", "./js/a.js").as_deref(),
        Some("/v/r/js/a.js")
    );
    assert_eq!(
        resolve("/v/r/js/a.js", "../b.js").as_deref(),
        Some("/v/r/b.js")
    );
    assert_eq!(resolve("/a.js", "../../b.js"), None);
    assert_eq!(resolve("/a.js", "https://x/b.js"), None);
}
