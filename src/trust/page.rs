//! The page watch (`docs/trust-v1.md`, part 3): checks a served page against the page manifest of
//! a verified key list, fetching it the way a browser does.
//!
//! [`check_page`] fetches `/` and `/check` with the headers Chromium sends for a navigation,
//! reads their HTML with a small strict scanner, then fetches every resource the HTML names and
//! every file of the manifest under `/v/<release>/`, with the headers Chromium sends for that
//! kind of resource, and compares each SHA-256 (after gzip decoding) with the manifest's. Every
//! difference is listed ([`PageDifference`]); a network failure is an error, not a difference.
//!
//! The scanner is a tokenizer, not an HTML tree builder. It never sees fewer tags than a browser:
//! it switches to raw text at every element that can hold raw text (a browser sometimes does
//! not), scans the page twice (with scripting on, where `<noscript>` is raw text, and off), and
//! calls any markup it finds inside raw text or an unexpected element (`<svg>`, `<iframe>`, …) a
//! difference. The genuine page has none of those, so strictness costs nothing.
//!
//! The fetching is behind [`PageFetcher`] (one method: a GET with given headers), so tests plug a
//! fake; `resguardo-submit verify-page` and `watch --org` use the ureq client of
//! [`crate::submit`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Read;

pub use super::keylist::{PageFile, PageManifest};

/// Largest answer read for a page or a file (the biggest file, openpgp.js, is about 400 KiB).
pub const MAX_BODY: u64 = 32 * 1024 * 1024;

/// Most differences listed in one report (a hostile page could make millions).
pub const MAX_DIFFERENCES: usize = 100;

/// The two pages a reporter's browser loads.
pub const PAGES: [&str; 2] = ["/", "/check"];

/// The Chromium version whose headers the check sends (Debian's Chromium, desktop Linux).
pub const CHROMIUM_MAJOR: &str = "140";

const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
     Chrome/140.0.0.0 Safari/537.36";
const SEC_CH_UA: &str = "\"Chromium\";v=\"140\", \"Not=A?Brand\";v=\"24\"";
const ACCEPT_LANGUAGE: &str = "es-419,es;q=0.9";
const ACCEPT_DOCUMENT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,\
     image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7";
const ACCEPT_IMAGE: &str = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";

/// What a request is for: it decides the headers a browser sends ([`browser_headers`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// A page opened by typing its address (`/`).
    Navigation,
    /// A page opened from a link on the site (`/check`).
    LinkNavigation,
    /// A `<script>`; `module` for `type="module"` and for the modules it imports.
    Script {
        /// Fetched in CORS mode.
        module: bool,
    },
    /// A stylesheet.
    Style,
    /// An image or icon.
    Image,
    /// A worker script.
    Worker,
    /// `fetch()` from the page's script (JSON files, `/api/v1/keys`).
    Fetch,
    /// Anything else a page can load (a font, a preload).
    Other,
}

impl Destination {
    /// What a browser would load a manifest file as, judged by its name.
    pub fn of_file(path: &str) -> Destination {
        let ext = path.rsplit('.').next().unwrap_or("");
        match ext {
            "js" | "mjs" if path.contains("worker") => Destination::Worker,
            "js" | "mjs" => Destination::Script { module: true },
            "css" => Destination::Style,
            "json" => Destination::Fetch,
            "png" | "svg" | "ico" | "jpg" | "jpeg" | "gif" | "webp" | "avif" => Destination::Image,
            _ => Destination::Other,
        }
    }
}

/// The headers Chromium on desktop Linux sends for `destination`, in its order (without `Host`,
/// which the fetcher puts first). `secure` is true for an https or loopback origin (where
/// Chromium adds client hints and `Sec-Fetch-*`); over plain http to an onion it sends neither,
/// and offers only gzip and deflate.
pub fn browser_headers(
    destination: Destination,
    secure: bool,
) -> Vec<(&'static str, &'static str)> {
    let encoding = if secure {
        "gzip, deflate, br, zstd"
    } else {
        "gzip, deflate"
    };
    let mut h: Vec<(&'static str, &'static str)> = vec![("Connection", "keep-alive")];
    let navigation = matches!(
        destination,
        Destination::Navigation | Destination::LinkNavigation
    );
    if navigation {
        if secure {
            h.push(("sec-ch-ua", SEC_CH_UA));
            h.push(("sec-ch-ua-mobile", "?0"));
            h.push(("sec-ch-ua-platform", "\"Linux\""));
        }
        h.push(("Upgrade-Insecure-Requests", "1"));
        h.push(("User-Agent", USER_AGENT));
        h.push(("Accept", ACCEPT_DOCUMENT));
        if secure {
            let site = if destination == Destination::Navigation {
                "none"
            } else {
                "same-origin"
            };
            h.push(("Sec-Fetch-Site", site));
            h.push(("Sec-Fetch-Mode", "navigate"));
            h.push(("Sec-Fetch-User", "?1"));
            h.push(("Sec-Fetch-Dest", "document"));
        }
    } else {
        if secure {
            h.push(("sec-ch-ua-platform", "\"Linux\""));
        }
        h.push(("User-Agent", USER_AGENT));
        if secure {
            h.push(("sec-ch-ua", SEC_CH_UA));
            h.push(("sec-ch-ua-mobile", "?0"));
        }
        let accept = match destination {
            Destination::Style => "text/css,*/*;q=0.1",
            Destination::Image => ACCEPT_IMAGE,
            _ => "*/*",
        };
        h.push(("Accept", accept));
        if secure {
            let (mode, dest) = match destination {
                Destination::Script { module: true } => ("cors", "script"),
                Destination::Script { module: false } => ("no-cors", "script"),
                Destination::Style => ("no-cors", "style"),
                Destination::Image => ("no-cors", "image"),
                Destination::Worker => ("same-origin", "worker"),
                Destination::Fetch => ("cors", "empty"),
                _ => ("no-cors", "empty"),
            };
            h.push(("Sec-Fetch-Site", "same-origin"));
            h.push(("Sec-Fetch-Mode", mode));
            h.push(("Sec-Fetch-Dest", dest));
        }
        // No Referer: the page's Referrer-Policy is no-referrer.
    }
    h.push(("Accept-Encoding", encoding));
    h.push(("Accept-Language", ACCEPT_LANGUAGE));
    h
}

/// One answer, as it came (body not decoded).
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    /// The HTTP status.
    pub status: u16,
    /// The headers, names lowercase.
    pub headers: Vec<(String, String)>,
    /// The body as sent (possibly gzipped), at most [`MAX_BODY`] + 1 bytes (one more tells a
    /// body over the bound).
    pub body: Vec<u8>,
}

impl Fetched {
    fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Fetches from the gateway being checked.
pub trait PageFetcher {
    /// GETs `path` (absolute path and query on the gateway's origin) sending exactly `headers`
    /// in this order (after `Host`), following no redirect. An error is a network failure (no
    /// answer, or an answer cut short), never an HTTP status.
    fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> Result<Fetched, String>;
}

/// Why the page could not be checked (nothing was found wrong; try again later).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageCheckError {
    /// No answer (or an answer cut short) for this path.
    #[error("{path}: the gateway did not answer: {reason}")]
    Unreachable {
        /// What was asked for.
        path: String,
        /// The network error.
        reason: String,
    },
}

/// One way the served page differs from what the organisation released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageDifference {
    /// A page answered with another status than 200 (a redirect included).
    PageNotServed {
        /// `/` or `/check`.
        page: String,
        /// The status.
        status: u16,
    },
    /// A manifest file (or a resource the page names) was not served.
    FileMissing {
        /// The manifest path.
        path: String,
        /// What was fetched.
        url: String,
        /// The status.
        status: u16,
    },
    /// A file's SHA-256 is not the released one.
    FileDiffers {
        /// The manifest path.
        path: String,
        /// What was fetched.
        url: String,
        /// Lowercase hex SHA-256 served (or a note when too large).
        served: String,
    },
    /// The page names files of another release.
    OtherRelease {
        /// The page.
        page: String,
        /// The release in its URLs.
        found: String,
    },
    /// A `<script>` with code in the page (not inert `type="application/json"` data).
    InlineScript {
        /// The page.
        page: String,
    },
    /// An inline event handler (`onclick=…`).
    EventHandler {
        /// The page.
        page: String,
        /// The element.
        element: String,
        /// The attribute.
        attribute: String,
    },
    /// A resource (or a link, or a form's target) on another origin.
    ForeignResource {
        /// The page.
        page: String,
        /// The element.
        element: String,
        /// The URL (cut to 200 characters).
        url: String,
    },
    /// A resource of this site that the manifest does not list.
    UnlistedResource {
        /// The page.
        page: String,
        /// The element.
        element: String,
        /// Its path (cut to 200 characters).
        path: String,
    },
    /// Anything else that can run or load code: a `javascript:` URL, `srcdoc`, `<iframe>`,
    /// `<svg>`, `<base>`, `<meta http-equiv>`, an inline `<style>`, markup hidden in raw text, a
    /// URL the check cannot read unambiguously.
    ActiveContent {
        /// The page.
        page: String,
        /// What was found.
        what: String,
    },
    /// The Content-Security-Policy header is not the released one (missing, other, or twice).
    PolicyDiffers {
        /// The page or file.
        path: String,
        /// What was served (`None`: no header).
        served: Option<String>,
    },
    /// A body in an encoding the check does not decode (a browser might decode it otherwise).
    Undecodable {
        /// What was fetched.
        url: String,
        /// The `Content-Encoding`.
        encoding: String,
    },
}

fn cut(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

impl fmt::Display for PageDifference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PageDifference::PageNotServed { page, status } => {
                write!(f, "{page}: the page answered {status} instead of 200")
            }
            PageDifference::FileMissing { path, url, status } => {
                write!(f, "{path}: not served ({status} for {})", cut(url, 200))
            }
            PageDifference::FileDiffers { path, url, served } => write!(
                f,
                "{path}: the served file is not the released one ({} has SHA-256 {served})",
                cut(url, 200)
            ),
            PageDifference::OtherRelease { page, found } => write!(
                f,
                "{page}: the page loads files of release {} instead of the released one",
                cut(found, 80)
            ),
            PageDifference::InlineScript { page } => {
                write!(
                    f,
                    "{page}: the page holds a script of its own (inline code)"
                )
            }
            PageDifference::EventHandler {
                page,
                element,
                attribute,
            } => write!(
                f,
                "{page}: an inline event handler ({} on <{}>)",
                cut(attribute, 60),
                cut(element, 40)
            ),
            PageDifference::ForeignResource { page, element, url } => write!(
                f,
                "{page}: <{}> points to another site: {}",
                cut(element, 40),
                cut(url, 200)
            ),
            PageDifference::UnlistedResource {
                page,
                element,
                path,
            } => write!(
                f,
                "{page}: <{}> loads {} which the organisation did not release",
                cut(element, 40),
                cut(path, 200)
            ),
            PageDifference::ActiveContent { page, what } => {
                write!(f, "{page}: {}", cut(what, 200))
            }
            PageDifference::PolicyDiffers { path, served } => match served {
                Some(s) => write!(
                    f,
                    "{path}: another Content-Security-Policy than the released one: {}",
                    cut(s, 200)
                ),
                None => write!(f, "{path}: no (or more than one) Content-Security-Policy"),
            },
            PageDifference::Undecodable { url, encoding } => write!(
                f,
                "{}: served in an encoding the check does not read ({})",
                cut(url, 200),
                cut(encoding, 40)
            ),
        }
    }
}

impl PageDifference {
    /// A short stable name of the problem (the kind and where), without what was served: the
    /// watch rings once per key, however the served content varies.
    pub fn key(&self) -> String {
        match self {
            PageDifference::PageNotServed { page, .. } => format!("page-not-served:{page}"),
            PageDifference::FileMissing { path, .. } => format!("file-missing:{path}"),
            PageDifference::FileDiffers { path, .. } => format!("file-differs:{path}"),
            PageDifference::OtherRelease { page, .. } => format!("other-release:{page}"),
            PageDifference::InlineScript { page } => format!("inline-script:{page}"),
            PageDifference::EventHandler { page, .. } => format!("event-handler:{page}"),
            PageDifference::ForeignResource { page, .. } => format!("foreign:{page}"),
            PageDifference::UnlistedResource { page, .. } => format!("unlisted:{page}"),
            PageDifference::ActiveContent { page, .. } => format!("active:{page}"),
            PageDifference::PolicyDiffers { path, .. } => format!("policy:{}", cut(path, 100)),
            PageDifference::Undecodable { .. } => "undecodable".into(),
        }
    }
}

/// What [`check_page`] found.
#[derive(Debug, Clone, Default)]
pub struct PageReport {
    /// Every difference found (at most [`MAX_DIFFERENCES`]).
    pub differences: Vec<PageDifference>,
    /// Differences not listed, over [`MAX_DIFFERENCES`].
    pub more: usize,
    /// Files fetched and compared with the manifest (pages not counted).
    pub files_checked: usize,
}

impl PageReport {
    /// True when the served page is the released one.
    pub fn is_genuine(&self) -> bool {
        self.differences.is_empty() && self.more == 0
    }

    fn add(&mut self, d: PageDifference) {
        if self.differences.contains(&d) {
            return;
        }
        if self.differences.len() < MAX_DIFFERENCES {
            self.differences.push(d);
        } else {
            self.more += 1;
        }
    }
}

/// A resource of this site that a page names and the manifest lists.
#[derive(Debug, Clone)]
struct Reference {
    /// Exactly what the browser would fetch (path and query).
    url: String,
    /// The manifest path.
    file: String,
    destination: Destination,
}

/// Checks the page served through `fetcher` against `manifest`. `secure` tells the fetcher's
/// origin is https or loopback (see [`browser_headers`]).
pub fn check_page(
    fetcher: &mut dyn PageFetcher,
    manifest: &PageManifest,
    secure: bool,
) -> Result<PageReport, PageCheckError> {
    let files: BTreeMap<&str, &str> = manifest
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.sha256.as_str()))
        .collect();
    let mut report = PageReport::default();
    let mut fetched_urls: BTreeSet<String> = BTreeSet::new();
    let mut checked_files: BTreeSet<String> = BTreeSet::new();
    for (i, page) in PAGES.iter().enumerate() {
        let destination = if i == 0 {
            Destination::Navigation
        } else {
            Destination::LinkNavigation
        };
        let answer = get(fetcher, page, destination, secure)?;
        if answer.status != 200 {
            report.add(PageDifference::PageNotServed {
                page: page.to_string(),
                status: answer.status,
            });
            continue;
        }
        check_policy(&answer, page, manifest, &mut report);
        let Some(body) = decode(&answer, page, &mut report) else {
            continue;
        };
        let html = String::from_utf8_lossy(&body);
        let mut references = Vec::new();
        for scripting in [true, false] {
            let scan = scan(&html, scripting);
            judge(page, &scan, manifest, &files, &mut report, &mut references);
        }
        // What this page loads, in its order, each once, before the next page.
        for r in references {
            if fetched_urls.insert(r.url.clone()) {
                check_file(fetcher, &r, &files, manifest, secure, &mut report)?;
                checked_files.insert(r.file.clone());
            }
        }
    }
    // Then every file of the release, at its versioned URL.
    for file in &manifest.files {
        let url = format!("/v/{}{}", manifest.release, file.path);
        if fetched_urls.contains(&url) {
            continue;
        }
        fetched_urls.insert(url.clone());
        let r = Reference {
            url,
            file: file.path.clone(),
            destination: Destination::of_file(&file.path),
        };
        check_file(fetcher, &r, &files, manifest, secure, &mut report)?;
        checked_files.insert(file.path.clone());
    }
    report.files_checked = fetched_urls.len();
    Ok(report)
}

fn get(
    fetcher: &mut dyn PageFetcher,
    path: &str,
    destination: Destination,
    secure: bool,
) -> Result<Fetched, PageCheckError> {
    fetcher
        .get(path, &browser_headers(destination, secure))
        .map_err(|reason| PageCheckError::Unreachable {
            path: cut(path, 200),
            reason: cut(&reason, 300),
        })
}

fn check_file(
    fetcher: &mut dyn PageFetcher,
    r: &Reference,
    files: &BTreeMap<&str, &str>,
    manifest: &PageManifest,
    secure: bool,
    report: &mut PageReport,
) -> Result<(), PageCheckError> {
    let answer = get(fetcher, &r.url, r.destination, secure)?;
    if answer.status != 200 {
        report.add(PageDifference::FileMissing {
            path: r.file.clone(),
            url: r.url.clone(),
            status: answer.status,
        });
        return Ok(());
    }
    check_policy(&answer, &r.file, manifest, report);
    let Some(body) = decode(&answer, &r.url, report) else {
        return Ok(());
    };
    let served = if body.len() as u64 > MAX_BODY {
        "(over 32 MiB)".to_string()
    } else {
        hex::encode(ring::digest::digest(&ring::digest::SHA256, &body).as_ref())
    };
    let expected = files.get(r.file.as_str()).copied().unwrap_or("");
    if !served.eq_ignore_ascii_case(expected) {
        report.add(PageDifference::FileDiffers {
            path: r.file.clone(),
            url: r.url.clone(),
            served,
        });
    }
    Ok(())
}

fn check_policy(answer: &Fetched, path: &str, manifest: &PageManifest, report: &mut PageReport) {
    let values = answer.header_values("content-security-policy");
    let ok = values.len() == 1 && values[0] == manifest.content_security_policy;
    if !ok {
        report.add(PageDifference::PolicyDiffers {
            path: path.to_string(),
            served: (values.len() == 1).then(|| values[0].to_string()),
        });
    }
}

/// The body as a browser reads it: identity, or one gzip member (nothing after it). Any other
/// encoding, or a damaged stream, is a difference.
fn decode(answer: &Fetched, url: &str, report: &mut PageReport) -> Option<Vec<u8>> {
    let encodings = answer.header_values("content-encoding");
    let encoding = encodings.join(",").trim().to_ascii_lowercase();
    let undecodable = |report: &mut PageReport, what: &str| {
        report.add(PageDifference::Undecodable {
            url: url.to_string(),
            encoding: what.to_string(),
        });
        None
    };
    match encoding.as_str() {
        "" | "identity" => Some(answer.body.clone()),
        "gzip" | "x-gzip" => {
            let mut decoder = flate2::bufread::GzDecoder::new(&answer.body[..]);
            let mut out = Vec::new();
            let read = (&mut decoder).take(MAX_BODY + 1).read_to_end(&mut out);
            if read.is_err() {
                return undecodable(report, "damaged gzip");
            }
            if out.len() as u64 <= MAX_BODY && !decoder.into_inner().is_empty() {
                return undecodable(report, "data after the gzip stream");
            }
            Some(out)
        }
        other => undecodable(report, other),
    }
}

/// One start tag.
#[derive(Debug, Clone)]
struct Tag {
    name: String,
    /// Names lowercase, values with character references decoded; the first of a name only
    /// (as browsers keep it).
    attrs: Vec<(String, String)>,
}

impl Tag {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Default)]
struct Scan {
    tags: Vec<Tag>,
    /// Raw-text elements whose text holds markup (`<` and a letter, `!`, `/` or `?`).
    hidden: Vec<String>,
}

/// Elements whose content a browser reads as text up to their end tag.
const RAW_TEXT: &[&str] = &[
    "script", "style", "xmp", "iframe", "noembed", "noframes", "textarea", "title",
];

fn is_space(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | b'\x0c' | b'\r' | b' ')
}

fn find_from(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    if from >= hay.len() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// Tokenizes `html` as a browser with scripting on or off: start tags with their attributes,
/// and markup found inside raw text.
fn scan(html: &str, scripting: bool) -> Scan {
    let b = html.as_bytes();
    let mut out = Scan::default();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'<' {
            i += 1;
            continue;
        }
        let rest = &b[i..];
        if rest.starts_with(b"<!--") {
            let body = i + 4;
            if b[body..].starts_with(b">") {
                i = body + 1;
            } else if b[body..].starts_with(b"->") {
                i = body + 2;
            } else {
                let a = find_from(b, body, b"-->").map(|p| p + 3);
                let c = find_from(b, body, b"--!>").map(|p| p + 4);
                i = match (a, c) {
                    (Some(a), Some(c)) => a.min(c),
                    (Some(x), None) | (None, Some(x)) => x,
                    (None, None) => b.len(),
                };
            }
            continue;
        }
        let next = rest.get(1).copied().unwrap_or(0);
        if next == b'!' || next == b'?' {
            i = find_from(b, i + 2, b">").map_or(b.len(), |p| p + 1);
            continue;
        }
        if next == b'/' {
            let after = rest.get(2).copied().unwrap_or(0);
            if after.is_ascii_alphabetic() {
                let (_, end) = parse_tag(b, i + 2);
                i = end;
            } else if after == b'>' {
                i += 3;
            } else {
                i = find_from(b, i + 2, b">").map_or(b.len(), |p| p + 1);
            }
            continue;
        }
        if !next.is_ascii_alphabetic() {
            i += 1;
            continue;
        }
        let (tag, end) = parse_tag(b, i + 1);
        i = end;
        let name = tag.name.clone();
        out.tags.push(tag);
        if name == "plaintext" {
            break;
        }
        let raw = RAW_TEXT.contains(&name.as_str()) || (scripting && name == "noscript");
        if raw {
            let close = raw_text_end(b, i, &name);
            let text = &b[i..close];
            // <noscript> is read as markup by the scan with scripting off.
            if name != "noscript" && holds_markup(text) {
                out.hidden.push(name);
            }
            i = close;
        }
    }
    out
}

/// Where the raw text from `from` ends: at `</name` followed by a space, `/` or `>`.
fn raw_text_end(b: &[u8], from: usize, name: &str) -> usize {
    let mut j = from;
    while let Some(p) = find_from(b, j, b"</") {
        let candidate = &b[p + 2..];
        if candidate.len() >= name.len()
            && candidate[..name.len()].eq_ignore_ascii_case(name.as_bytes())
            && candidate
                .get(name.len())
                .is_none_or(|&c| is_space(c) || c == b'/' || c == b'>')
        {
            return p;
        }
        j = p + 2;
    }
    b.len()
}

fn holds_markup(text: &[u8]) -> bool {
    text.windows(2)
        .any(|w| w[0] == b'<' && (w[1].is_ascii_alphabetic() || matches!(w[1], b'!' | b'/' | b'?')))
}

/// Parses a tag from its name (at `start`) to after its `>`, as the HTML tokenizer does.
fn parse_tag(b: &[u8], start: usize) -> (Tag, usize) {
    let mut i = start;
    while i < b.len() && !is_space(b[i]) && b[i] != b'/' && b[i] != b'>' {
        i += 1;
    }
    let name = String::from_utf8_lossy(&b[start..i]).to_ascii_lowercase();
    let mut attrs: Vec<(String, String)> = Vec::new();
    loop {
        while i < b.len() && (is_space(b[i]) || b[i] == b'/') {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        if b[i] == b'>' {
            i += 1;
            break;
        }
        let name_start = i;
        i += 1; // the first character may be '='
        while i < b.len() && !is_space(b[i]) && !matches!(b[i], b'/' | b'>' | b'=') {
            i += 1;
        }
        let attr = String::from_utf8_lossy(&b[name_start..i]).to_ascii_lowercase();
        while i < b.len() && is_space(b[i]) {
            i += 1;
        }
        let mut value = String::new();
        if i < b.len() && b[i] == b'=' {
            i += 1;
            while i < b.len() && is_space(b[i]) {
                i += 1;
            }
            if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                let quote = b[i];
                let v_start = i + 1;
                let v_end = find_from(b, v_start, &[quote]).unwrap_or(b.len());
                value = String::from_utf8_lossy(&b[v_start..v_end]).into_owned();
                i = (v_end + 1).min(b.len());
            } else {
                let v_start = i;
                while i < b.len() && !is_space(b[i]) && b[i] != b'>' {
                    i += 1;
                }
                value = String::from_utf8_lossy(&b[v_start..i]).into_owned();
            }
        }
        if !attrs.iter().any(|(n, _)| *n == attr) {
            attrs.push((attr, decode_references(&value)));
        }
    }
    (Tag { name, attrs }, i)
}

/// Decodes numeric character references and the five basic named ones. Any other named
/// reference is left as it is (a URL holding one is then refused as ambiguous).
fn decode_references(value: &str) -> String {
    if !value.contains('&') {
        return value.to_string();
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(p) = rest.find('&') {
        out.push_str(&rest[..p]);
        let tail = &rest[p + 1..];
        let named = [
            ("amp;", '&'),
            ("lt;", '<'),
            ("gt;", '>'),
            ("quot;", '"'),
            ("apos;", '\''),
        ];
        if let Some((n, c)) = named.iter().find(|(n, _)| tail.starts_with(n)) {
            out.push(*c);
            rest = &tail[n.len()..];
            continue;
        }
        if let Some(num) = tail.strip_prefix('#') {
            let (hex, digits) = match num.strip_prefix(['x', 'X']) {
                Some(h) => (true, h),
                None => (false, num),
            };
            let len = digits
                .bytes()
                .take_while(|c| {
                    if hex {
                        c.is_ascii_hexdigit()
                    } else {
                        c.is_ascii_digit()
                    }
                })
                .count();
            if len > 0 {
                let code = u32::from_str_radix(&digits[..len.min(8)], if hex { 16 } else { 10 })
                    .ok()
                    .and_then(char::from_u32)
                    .unwrap_or('\u{fffd}');
                out.push(code);
                let consumed = 1 + usize::from(hex) + len;
                let after = &tail[consumed..];
                rest = after.strip_prefix(';').unwrap_or(after);
                continue;
            }
        }
        out.push('&');
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// Elements the genuine page never has and that can hold or load code, or change how URLs or
/// markup are read.
const UNEXPECTED: &[&str] = &[
    "iframe",
    "frame",
    "frameset",
    "object",
    "embed",
    "applet",
    "svg",
    "math",
    "base",
    "xmp",
    "plaintext",
    "noembed",
    "noframes",
    "portal",
    "fencedframe",
    "style",
];

/// Attributes that hold a URL.
const URL_ATTRS: &[&str] = &[
    "src",
    "href",
    "xlink:href",
    "srcset",
    "imagesrcset",
    "poster",
    "data",
    "action",
    "formaction",
    "background",
    "ping",
    "manifest",
    "codebase",
    "cite",
    "longdesc",
    "lowsrc",
    "dynsrc",
    "icon",
    "archive",
    "classid",
    "itemtype",
];

/// Where a URL leads, for the check.
enum Target {
    /// A path on this origin (query and fragment cut off) and what the browser would request.
    Local { path: String, request: String },
    /// `#…`: the page itself.
    Fragment,
    /// `tel:` or `mailto:` (a link only).
    Harmless,
    /// Another origin (or a `data:`/`blob:` URL).
    Foreign,
    /// `javascript:`.
    Script,
    /// Something the check refuses to guess about.
    Ambiguous,
}

/// A named character reference left undecoded (`&colon;`, `&Tab;`…): browsers decode every
/// such name followed by `;` (and only Latin-1 ones without it, which cannot change how a URL
/// reads), so a URL holding one may read otherwise in a browser.
fn has_named_reference(url: &str) -> bool {
    url.split('&').skip(1).any(|tail| {
        let name = tail
            .bytes()
            .take_while(|c| c.is_ascii_alphanumeric())
            .count();
        name > 0 && tail.as_bytes()[0].is_ascii_alphabetic() && tail[name..].starts_with(';')
    })
}

fn classify(raw: &str, page: &str) -> Target {
    // As the URL parser: strip leading and trailing C0 controls and spaces, remove tabs and
    // newlines anywhere, and read '\' as '/'.
    let trimmed = raw.trim_matches(|c: char| c <= ' ');
    let url: String = trimmed
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .map(|c| if c == '\\' { '/' } else { c })
        .collect();
    if has_named_reference(&url) || url.chars().any(|c| c.is_control()) {
        return Target::Ambiguous;
    }
    if url.starts_with("//") {
        return Target::Foreign;
    }
    let scheme_len = url
        .find(':')
        .filter(|&p| {
            p > 0
                && url.as_bytes()[0].is_ascii_alphabetic()
                && url[..p]
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
        })
        .filter(|&p| !url[..p].contains(['/', '?', '#']));
    if let Some(p) = scheme_len {
        return match url[..p].to_ascii_lowercase().as_str() {
            "javascript" | "vbscript" => Target::Script,
            "tel" | "mailto" => Target::Harmless,
            _ => Target::Foreign,
        };
    }
    if url.is_empty() || url.starts_with('#') {
        return Target::Fragment;
    }
    let absolute = if url.starts_with('/') {
        url.clone()
    } else if url.starts_with('?') {
        format!("{page}{url}")
    } else {
        // Both pages are at the top: relative paths resolve against '/'.
        format!("/{url}")
    };
    let request = absolute.split('#').next().unwrap_or("").to_string();
    let path = request.split('?').next().unwrap_or("").to_string();
    if path.contains('%')
        || path
            .split('/')
            .any(|segment| segment == "." || segment == "..")
    {
        return Target::Ambiguous;
    }
    Target::Local { path, request }
}

/// What a resource-loading element loads its URL as.
fn destination_of(tag: &Tag) -> Destination {
    match tag.name.as_str() {
        "script" => Destination::Script {
            module: tag
                .attr("type")
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("module")),
        },
        "img" | "picture" | "source" | "input" | "image" => Destination::Image,
        "link" => {
            let rel = tag.attr("rel").unwrap_or("").to_ascii_lowercase();
            if rel.split_whitespace().any(|r| r == "stylesheet") {
                Destination::Style
            } else if rel.split_whitespace().any(|r| r == "modulepreload") {
                Destination::Script { module: true }
            } else if rel.split_whitespace().any(|r| r.contains("icon")) {
                Destination::Image
            } else {
                Destination::Other
            }
        }
        _ => Destination::Other,
    }
}

/// Links and form targets: only their origin matters (they load nothing by themselves).
fn is_navigation(element: &str, attribute: &str) -> bool {
    matches!(
        (element, attribute),
        ("a" | "area", "href" | "ping")
            | ("form", "action")
            | ("button" | "input", "formaction")
            | ("blockquote" | "q" | "del" | "ins", "cite")
    )
}

fn judge(
    page: &str,
    scan: &Scan,
    manifest: &PageManifest,
    files: &BTreeMap<&str, &str>,
    report: &mut PageReport,
    references: &mut Vec<Reference>,
) {
    let page_s = page.to_string();
    for name in &scan.hidden {
        report.add(PageDifference::ActiveContent {
            page: page_s.clone(),
            what: format!("markup hidden inside <{}> text", cut(name, 40)),
        });
    }
    for tag in &scan.tags {
        let element = tag.name.as_str();
        if UNEXPECTED.contains(&element) {
            report.add(PageDifference::ActiveContent {
                page: page_s.clone(),
                what: format!("an element the page never has: <{}>", cut(element, 40)),
            });
        }
        if element == "meta" && tag.attr("http-equiv").is_some() {
            report.add(PageDifference::ActiveContent {
                page: page_s.clone(),
                what: "a <meta http-equiv> (a refresh or a policy in the page)".into(),
            });
        }
        if element == "script" && tag.attr("src").is_none() {
            let data = tag
                .attr("type")
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
            if !data {
                report.add(PageDifference::InlineScript {
                    page: page_s.clone(),
                });
            }
        }
        for (attribute, value) in &tag.attrs {
            if attribute.starts_with("on") {
                report.add(PageDifference::EventHandler {
                    page: page_s.clone(),
                    element: element.to_string(),
                    attribute: attribute.clone(),
                });
            }
            if attribute == "srcdoc" {
                report.add(PageDifference::ActiveContent {
                    page: page_s.clone(),
                    what: format!("a srcdoc document on <{}>", cut(element, 40)),
                });
            }
            if !URL_ATTRS.contains(&attribute.as_str()) {
                continue;
            }
            // <html manifest>, <a href>… A link only has to stay on this site.
            let navigation = is_navigation(element, attribute);
            let urls: Vec<&str> = if attribute.ends_with("srcset") {
                value
                    .split(',')
                    .filter_map(|c| c.split_whitespace().next())
                    .collect()
            } else {
                vec![value.as_str()]
            };
            for url in urls {
                judge_url(
                    page, tag, url, navigation, manifest, files, report, references,
                );
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn judge_url(
    page: &str,
    tag: &Tag,
    url: &str,
    navigation: bool,
    manifest: &PageManifest,
    files: &BTreeMap<&str, &str>,
    report: &mut PageReport,
    references: &mut Vec<Reference>,
) {
    let element = tag.name.clone();
    match classify(url, page) {
        Target::Script => report.add(PageDifference::ActiveContent {
            page: page.to_string(),
            what: format!("a javascript: URL on <{}>", cut(&element, 40)),
        }),
        Target::Ambiguous => report.add(PageDifference::ActiveContent {
            page: page.to_string(),
            what: format!(
                "a URL the check cannot read unambiguously on <{}>: {}",
                cut(&element, 40),
                cut(url, 200)
            ),
        }),
        Target::Foreign => report.add(PageDifference::ForeignResource {
            page: page.to_string(),
            element,
            url: cut(url, 200),
        }),
        Target::Harmless if navigation => {}
        Target::Harmless => report.add(PageDifference::ForeignResource {
            page: page.to_string(),
            element,
            url: cut(url, 200),
        }),
        Target::Fragment if navigation => {}
        Target::Fragment => report.add(PageDifference::UnlistedResource {
            page: page.to_string(),
            element,
            path: page.to_string(),
        }),
        Target::Local { .. } if navigation => {}
        Target::Local { path, request } => {
            let file = match path.strip_prefix("/v/") {
                Some(rest) => {
                    let (release, file) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
                    if release != manifest.release {
                        report.add(PageDifference::OtherRelease {
                            page: page.to_string(),
                            found: release.to_string(),
                        });
                        return;
                    }
                    file.to_string()
                }
                None => path.clone(),
            };
            if !files.contains_key(file.as_str()) {
                report.add(PageDifference::UnlistedResource {
                    page: page.to_string(),
                    element,
                    path: cut(&path, 200),
                });
                return;
            }
            if !references.iter().any(|r| r.url == request) {
                references.push(Reference {
                    url: request,
                    file,
                    destination: destination_of(tag),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests;
