//! The page watch (`docs/trust-v1.md`, part 3): checks a served page against the page manifest of
//! a verified key list, fetching it the way a browser does.
//!
//! A check has two sessions. The **browser session** ([`Browser`]) opens `/` with the headers
//! Chromium sends for a navigation, then what the page loads in document order and the modules
//! those import (as a browser with scripting on would), `/favicon.ico`, and then (the caller's
//! part) `/api/v1/keys` as the page's script does; with the manifest of the verified key list it
//! judges every page (`/`, every link of the page to `/` or `/check` with a `lang=` query, and
//! `/check`, at most [`MAX_PAGES`]). The **rest session** ([`check_rest`]) fetches every other
//! file of the release under `/v/<release>/` (the worker, `nojs.css`, the language files, which
//! a browser with scripting on does not load with the page). Every fetched file's SHA-256 (after
//! gzip decoding) is compared with the manifest's; every difference is listed
//! ([`PageDifference`]); a network failure or the deadline is an error, not a difference.
//!
//! Each page must be served as `text/html; charset=utf-8` with `nosniff`, as valid UTF-8 without
//! a byte-order mark, NUL or ESC, with no response header but the ones the gateway sends (and
//! those at their values), and must load exactly the elements the manifest lists for it
//! ([`PageEntry`]), post its forms only to the manifest's paths, and link only to its pages.
//!
//! The scanner is a tokenizer, not an HTML tree builder. It never sees fewer tags than a browser:
//! it switches to raw text at every element that can hold raw text (a browser sometimes does
//! not), scans the page twice (with scripting on, where `<noscript>` is raw text, and off), and
//! calls any markup it finds inside raw text or an unexpected element (`<svg>`, `<iframe>`, …) a
//! difference. The genuine page has none of those, so strictness costs nothing. Everything it
//! does is linear in the page's size, and bounded ([`MAX_TAGS`], [`MAX_ATTRIBUTES`],
//! [`MAX_URLS`], [`MAX_FETCHES`], [`DEADLINE`]).
//!
//! The fetching is behind [`PageFetcher`] (one method: a GET with given headers), so tests plug a
//! fake; `resguardo-submit verify-page` and `watch --org` use the ureq client of
//! [`crate::submit`].

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;
use std::io::Read;
use std::time::{Duration, Instant};

pub use super::keylist::{PageEntry, PageFile, PageLoad, PageManifest};

/// Largest answer read for a page or a file, as sent (before decoding).
pub const MAX_BODY: u64 = MAX_FILE;

/// Largest page (decoded): the genuine pages are about 40 KiB. A larger one is a difference.
pub const MAX_PAGE: u64 = 1024 * 1024;

/// Largest file of the release (decoded; the biggest, openpgp.js, is about 400 KiB). A larger one
/// is a difference.
pub const MAX_FILE: u64 = 16 * 1024 * 1024;

/// Most differences listed in one report (a hostile page could make millions).
pub const MAX_DIFFERENCES: usize = 100;

/// The pages a reporter opens by typing their address: `/`, and `/check` (which the result page
/// names).
pub const PAGES: [&str; 2] = ["/", "/check"];

/// Most pages checked in one check (each `lang=` variant counts); more links is a difference.
pub const MAX_PAGES: usize = 12;

/// Most tags read in one page; more is a difference (the genuine page has a few hundred).
pub const MAX_TAGS: usize = 20_000;

/// Most attributes of one tag; more is a difference.
pub const MAX_ATTRIBUTES: usize = 64;

/// Most URLs (in URL attributes) of one page; more is a difference.
pub const MAX_URLS: usize = 2_000;

/// Most requests of one browser session (pages, files, `/favicon.ico`); more is a difference.
pub const MAX_FETCHES: usize = 128;

/// Longest one session may take; after it the check has failed to complete.
pub const DEADLINE: Duration = Duration::from_secs(90);

/// The headers the gateway sends with a page or a file (`gateway::headers`, `api::asset`) and
/// what only the transport adds; any other header is a difference.
const TRANSPORT_HEADERS: &[&str] = &["content-length", "date", "connection", "keep-alive"];

/// Security headers and their exact values (`gateway::headers`), besides the policy.
const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("referrer-policy", "no-referrer"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    (
        "permissions-policy",
        "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()",
    ),
];

/// HSTS, only over TLS.
const HSTS: (&str, &str) = (
    "strict-transport-security",
    "max-age=31536000; includeSubDomains",
);

/// The `Content-Type` the gateway sends for a file (`build.rs`, by its extension).
pub fn content_type_of(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or("");
    let ext = name.rsplit_once('.').map_or("", |(_, e)| e);
    crate::content_type::for_extension(ext)
}

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

    /// No answer is waited for after `deadline` (the session's [`DEADLINE`]).
    fn set_deadline(&mut self, _deadline: Instant) {}
}

/// Why the page could not be checked (nothing was found wrong, but nothing was verified either:
/// do not rely on the page).
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
    /// The session took longer than [`DEADLINE`].
    #[error("the check did not finish within {} seconds", DEADLINE.as_secs())]
    Deadline,
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
    /// The page does not load what the release's page loads: `missing` is a load of the release
    /// the page lacks (its script taken out), otherwise one the page adds or has elsewhere.
    LoadsDiffer {
        /// The page.
        page: String,
        /// The kind of element (`script-module`, `stylesheet`…).
        element: String,
        /// The URL.
        url: String,
        /// True when the page lacks it.
        missing: bool,
    },
    /// A link to a page that is not one of the release's (`/`, `/check`, with at most a
    /// `lang=` query), or a form posting to a path the manifest does not list.
    UnlistedTarget {
        /// The page.
        page: String,
        /// The element.
        element: String,
        /// Where it leads (cut to 200 characters).
        url: String,
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
    /// A response header the gateway does not send, or one of its headers at another value (or
    /// missing, or twice).
    HeaderDiffers {
        /// The page or file.
        path: String,
        /// The header's name.
        header: String,
        /// What was served (`None`: no header, or more than one).
        served: Option<String>,
    },
    /// A body in an encoding the check does not decode (a browser might decode it otherwise).
    Undecodable {
        /// What was fetched.
        url: String,
        /// The `Content-Encoding`.
        encoding: String,
    },
    /// A page whose text a browser might read otherwise than the check: a byte-order mark, a
    /// NUL or ESC byte, bytes that are not UTF-8, a `<meta charset>` other than utf-8.
    Encoding {
        /// The page.
        page: String,
        /// What was found.
        what: String,
    },
    /// A page or file over its bound ([`MAX_PAGE`], [`MAX_FILE`]).
    TooLarge {
        /// What was fetched.
        url: String,
    },
    /// More of something than the check reads ([`MAX_TAGS`], [`MAX_PAGES`], [`MAX_FETCHES`]…).
    TooMuch {
        /// The page (or `session`).
        page: String,
        /// What.
        what: String,
    },
    /// The manifest says nothing of what this page loads (a list from before it did): the page
    /// cannot be checked against it.
    PageUndescribed {
        /// The page.
        page: String,
    },
    /// `/` does not hand its script the organisation's fingerprint as the genuine page does
    /// (`<script type="application/json" id="organisation-key">`): without it the script takes
    /// the keys as served instead of checking them against the key list.
    OrganisationBlock {
        /// The fingerprint the block must name (uppercase hex).
        expected: String,
    },
}

/// A second `id="organisation-key"` anywhere (the script reads the first element with that id).
fn text_mentions_block_twice(html: Option<&[u8]>) -> bool {
    html.and_then(|b| std::str::from_utf8(b).ok())
        .is_some_and(|text| text.matches("organisation-key").count() > 1)
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
            PageDifference::LoadsDiffer {
                page,
                element,
                url,
                missing: true,
            } => write!(
                f,
                "{page}: the page does not load {} ({}) as the released page does",
                cut(url, 200),
                cut(element, 40)
            ),
            PageDifference::LoadsDiffer {
                page,
                element,
                url,
                missing: false,
            } => write!(
                f,
                "{page}: the page loads {} ({}) where the released page does not",
                cut(url, 200),
                cut(element, 40)
            ),
            PageDifference::UnlistedTarget { page, element, url } => write!(
                f,
                "{page}: <{}> leads to {}, which is not a page or form target of the release",
                cut(element, 40),
                cut(url, 200)
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
            PageDifference::HeaderDiffers {
                path,
                header,
                served,
            } => match served {
                Some(s) => write!(
                    f,
                    "{}: a response header the gateway does not send: {}: {}",
                    cut(path, 200),
                    cut(header, 60),
                    cut(s, 200)
                ),
                None => write!(
                    f,
                    "{}: the {} header is missing or sent more than once",
                    cut(path, 200),
                    cut(header, 60)
                ),
            },
            PageDifference::Undecodable { url, encoding } => write!(
                f,
                "{}: served in an encoding the check does not read ({})",
                cut(url, 200),
                cut(encoding, 40)
            ),
            PageDifference::Encoding { page, what } => write!(
                f,
                "{}: the page's text may read otherwise in a browser: {}",
                cut(page, 200),
                cut(what, 200)
            ),
            PageDifference::TooLarge { url } => write!(
                f,
                "{}: larger than the check reads (a page {} KiB, a file {} MiB)",
                cut(url, 200),
                MAX_PAGE / 1024,
                MAX_FILE / (1024 * 1024)
            ),
            PageDifference::TooMuch { page, what } => {
                write!(f, "{}: {}", cut(page, 200), cut(what, 200))
            }
            PageDifference::PageUndescribed { page } => write!(
                f,
                "{}: the key list's manifest does not say what this page loads (a list from an \
                 older version): the page cannot be checked against it",
                cut(page, 200)
            ),
            PageDifference::OrganisationBlock { expected } => write!(
                f,
                "/: the page does not give its script the organisation's fingerprint {} (its \
                 script would then encrypt to the keys as served, unchecked)",
                cut(expected, 80)
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
            PageDifference::LoadsDiffer { page, missing, .. } => {
                format!(
                    "loads-{}:{page}",
                    if *missing { "missing" } else { "extra" }
                )
            }
            PageDifference::UnlistedTarget { page, .. } => format!("target:{page}"),
            PageDifference::ActiveContent { page, .. } => format!("active:{page}"),
            PageDifference::PolicyDiffers { path, .. } => format!("policy:{}", cut(path, 100)),
            PageDifference::HeaderDiffers { path, .. } => format!("header:{}", cut(path, 100)),
            PageDifference::Undecodable { .. } => "undecodable".into(),
            PageDifference::Encoding { page, .. } => format!("encoding:{}", cut(page, 100)),
            PageDifference::TooLarge { url } => format!("too-large:{}", cut(url, 100)),
            PageDifference::TooMuch { page, .. } => format!("too-much:{}", cut(page, 100)),
            PageDifference::PageUndescribed { .. } => "undescribed".into(),
            PageDifference::OrganisationBlock { .. } => "organisation-block".into(),
        }
    }
}

/// What a check found.
#[derive(Debug, Clone, Default)]
pub struct PageReport {
    /// Every difference found (at most [`MAX_DIFFERENCES`]).
    pub differences: Vec<PageDifference>,
    /// Differences not listed, over [`MAX_DIFFERENCES`].
    pub more: usize,
    /// Files fetched and compared with the manifest (pages not counted).
    pub files_checked: usize,
    /// Pages checked.
    pub pages_checked: usize,
    /// The manifest paths checked (the rest session checks the others).
    pub checked: BTreeSet<String>,
}

impl PageReport {
    /// True when the served page is the released one.
    pub fn is_genuine(&self) -> bool {
        self.differences.is_empty() && self.more == 0
    }

    fn add(&mut self, d: PageDifference) {
        // At most MAX_DIFFERENCES compared: linear in what is added.
        if self.differences.contains(&d) {
            return;
        }
        if self.differences.len() < MAX_DIFFERENCES {
            self.differences.push(d);
        } else {
            self.more += 1;
        }
    }

    /// Adds what `other` found (the rest session's report to the browser session's).
    pub fn merge(&mut self, other: PageReport) {
        for d in other.differences {
            self.add(d);
        }
        self.more += other.more;
        self.files_checked += other.files_checked;
        self.pages_checked += other.pages_checked;
        self.checked.extend(other.checked);
    }
}

/// A resource a page loads (a URL attribute that is not a link, a form target or a citation).
#[derive(Debug, Clone)]
struct Load {
    /// The kind of element ([`PageLoad::element`], without `noscript-`).
    kind: String,
    /// Exactly what the browser would fetch (path and query).
    url: String,
    /// The manifest path it names (versioned or not), when it names one.
    file: Option<String>,
    destination: Destination,
}

/// What a page's tags say, beyond the differences: what it loads and where it links.
#[derive(Debug, Default)]
struct Facts {
    loads: Vec<Load>,
    /// Pages of the release it links to (path and `lang=` query), in order.
    links: Vec<String>,
}

/// Most bytes of answers a session keeps in memory (to answer a second ask as a cache would).
const MAX_KEPT: usize = 32 * 1024 * 1024;

/// A browser session on the gateway: each URL fetched once (a second ask is answered from
/// memory, as from a browser's cache), at most [`MAX_FETCHES`] requests, all before
/// [`DEADLINE`].
pub struct Browser<'a> {
    fetcher: &'a mut dyn PageFetcher,
    secure: bool,
    deadline: Instant,
    answers: HashMap<String, Fetched>,
    kept: usize,
    fetches: usize,
    cap: usize,
    over_cap: bool,
    answered: usize,
    /// URLs judged in this check (each once).
    judged: HashSet<String>,
}

impl<'a> Browser<'a> {
    /// A session on `fetcher`; `secure` tells an https or loopback origin (see
    /// [`browser_headers`]). Its deadline starts now.
    pub fn new(fetcher: &'a mut dyn PageFetcher, secure: bool) -> Self {
        let deadline = Instant::now() + DEADLINE;
        fetcher.set_deadline(deadline);
        Browser {
            fetcher,
            secure,
            deadline,
            answers: HashMap::new(),
            kept: 0,
            fetches: 0,
            cap: MAX_FETCHES,
            over_cap: false,
            answered: 0,
            judged: HashSet::new(),
        }
    }

    /// How many answers came in this session (none: the gateway was not reached at all).
    pub fn answered(&self) -> usize {
        self.answered
    }

    /// True for an https or loopback origin.
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// GETs `url` as `destination`, from memory if this session has it. `None` over
    /// [`MAX_FETCHES`].
    fn get(
        &mut self,
        url: &str,
        destination: Destination,
    ) -> Result<Option<Fetched>, PageCheckError> {
        if let Some(answer) = self.answers.get(url) {
            return Ok(Some(answer.clone()));
        }
        let Some(answer) = self.fetch(url, destination)? else {
            return Ok(None);
        };
        if self.kept + answer.body.len() <= MAX_KEPT {
            self.kept += answer.body.len();
            self.answers.insert(url.to_string(), answer.clone());
        }
        Ok(Some(answer))
    }

    /// GETs `url` as `destination` (never from memory: `/api/v1/keys`, which the page's script
    /// asks for with `cache: 'no-store'`). `None` over [`MAX_FETCHES`].
    pub fn fetch(
        &mut self,
        url: &str,
        destination: Destination,
    ) -> Result<Option<Fetched>, PageCheckError> {
        if Instant::now() >= self.deadline {
            return Err(PageCheckError::Deadline);
        }
        if self.fetches >= self.cap {
            self.over_cap = true;
            return Ok(None);
        }
        self.fetches += 1;
        let answer = self
            .fetcher
            .get(url, &browser_headers(destination, self.secure))
            .map_err(|reason| {
                if Instant::now() >= self.deadline {
                    PageCheckError::Deadline
                } else {
                    PageCheckError::Unreachable {
                        path: cut(url, 200),
                        reason: cut(&reason, 300),
                    }
                }
            })?;
        self.answered += 1;
        Ok(Some(answer))
    }

    /// Opens `/` as a browser with scripting on does, before anything is known of the release:
    /// the page, what it loads in document order (not what is inside `<noscript>`), the modules
    /// those import, then `/favicon.ico` (unless the page names an icon). Nothing is judged yet
    /// ([`Browser::check`] does, from memory).
    pub fn open_first_page(&mut self) -> Result<(), PageCheckError> {
        let Some(answer) = self.get("/", Destination::Navigation)? else {
            return Ok(());
        };
        let mut scratch = PageReport::default();
        let body = match answer.status {
            200 => decode(&answer, "/", MAX_PAGE, &mut scratch),
            _ => None,
        };
        let Some(html) = body.as_deref().and_then(|b| std::str::from_utf8(b).ok()) else {
            return Ok(());
        };
        let scan = scan(html, true);
        let mut icon = false;
        let mut modules: VecDeque<String> = VecDeque::new();
        let mut asked: HashSet<String> = HashSet::new();
        for (tag, attribute, url) in scan.urls() {
            if role(&tag.name, attribute) != Role::Load {
                continue;
            }
            let Target::Local { request, .. } = classify(url, "/") else {
                continue;
            };
            let kind = load_kind(tag, attribute);
            icon |= kind == "icon";
            if asked.len() >= 32 || !asked.insert(request.clone()) {
                continue;
            }
            let destination = destination_of(tag);
            self.get(&request, destination)?;
            if destination == (Destination::Script { module: true }) {
                modules.push_back(request);
            }
        }
        // The module graph, breadth first.
        while let Some(url) = modules.pop_front() {
            let Some(answer) = self.answers.get(&url).cloned() else {
                continue;
            };
            let mut scratch = PageReport::default();
            let Some(body) = decode(&answer, &url, MAX_FILE, &mut scratch) else {
                continue;
            };
            let Ok(text) = std::str::from_utf8(&body) else {
                continue;
            };
            for spec in static_imports(text) {
                let Some(next) = resolve(&url, &spec) else {
                    continue;
                };
                if asked.len() >= 32 || !asked.insert(next.clone()) {
                    continue;
                }
                self.get(&next, Destination::Script { module: true })?;
                modules.push_back(next);
            }
        }
        if !icon {
            self.get("/favicon.ico", Destination::Image)?;
        }
        Ok(())
    }

    /// After [`Browser::check`]: `/` must carry, exactly once, the data block that hands the
    /// page's script the organisation's fingerprint (`organisation`, uppercase hex), as the
    /// gateway renders it; else [`PageDifference::OrganisationBlock`].
    pub fn check_organisation_block(&self, organisation: &str, report: &mut PageReport) {
        let expected = format!(
            "<script type=\"application/json\" id=\"organisation-key\">{{\"fingerprint\":\"{organisation}\"}}</script>"
        );
        let mut scratch = PageReport::default();
        let html = self
            .answers
            .get("/")
            .filter(|answer| answer.status == 200)
            .and_then(|answer| decode(answer, "/", MAX_PAGE, &mut scratch));
        let found = html
            .as_deref()
            .and_then(|b| std::str::from_utf8(b).ok())
            .map_or(0, |text| text.matches(&expected).count());
        if found != 1 || text_mentions_block_twice(html.as_deref()) {
            report.add(PageDifference::OrganisationBlock {
                expected: organisation.to_string(),
            });
        }
    }

    /// Judges every page against `manifest` (`/`, the release's pages it links to, `/check`),
    /// fetching what this session has not fetched yet: each page, what it loads and the modules
    /// those import, compared with the manifest.
    pub fn check(&mut self, manifest: &PageManifest) -> Result<PageReport, PageCheckError> {
        let release = Release::of(manifest);
        let mut report = PageReport::default();
        let mut queue: VecDeque<String> = VecDeque::from(["/".to_string()]);
        let mut queued: HashSet<String> = HashSet::from(["/".to_string()]);
        let mut first = true;
        while let Some(page) = queue.pop_front() {
            let destination = if first {
                Destination::Navigation
            } else {
                Destination::LinkNavigation
            };
            first = false;
            let Some(answer) = self.get(&page, destination)? else {
                break;
            };
            report.pages_checked += 1;
            let links = self.judge_page(&page, &answer, &release, &mut report)?;
            for link in links {
                if queued.contains(&link) {
                    continue;
                }
                if queued.len() >= MAX_PAGES {
                    report.add(PageDifference::TooMuch {
                        page: page.clone(),
                        what: format!("links to more than {MAX_PAGES} pages"),
                    });
                    break;
                }
                queued.insert(link.clone());
                queue.push_back(link);
            }
            if queue.is_empty() && queued.len() < MAX_PAGES {
                for p in PAGES {
                    if queued.insert(p.to_string()) {
                        queue.push_back(p.to_string());
                    }
                }
            }
        }
        if self.over_cap {
            report.add(PageDifference::TooMuch {
                page: "session".into(),
                what: format!("the pages need more than {MAX_FETCHES} requests"),
            });
        }
        Ok(report)
    }

    /// Judges one page; returns the release's pages it links to.
    fn judge_page(
        &mut self,
        page: &str,
        answer: &Fetched,
        release: &Release<'_>,
        report: &mut PageReport,
    ) -> Result<Vec<String>, PageCheckError> {
        if answer.status != 200 {
            report.add(PageDifference::PageNotServed {
                page: page.to_string(),
                status: answer.status,
            });
            return Ok(Vec::new());
        }
        check_headers(answer, page, Served::Page, release.manifest, report);
        let Some(body) = decode(answer, page, MAX_PAGE, report) else {
            return Ok(Vec::new());
        };
        let Some(html) = page_text(&body, page, report) else {
            return Ok(Vec::new());
        };
        let path = path_of(page);
        let Some(entry) = release.manifest.pages.iter().find(|p| p.path == path) else {
            report.add(PageDifference::PageUndescribed {
                page: page.to_string(),
            });
            return Ok(Vec::new());
        };
        let on = scan(html, true);
        let off = scan(html, false);
        let facts_on = judge(page, &on, release, entry, report);
        let facts_off = judge(page, &off, release, entry, report);
        // Exactly the release's loads: with scripting on, those outside <noscript>; with
        // scripting off, all of them.
        let expected_on: Vec<(String, String)> = entry
            .loads
            .iter()
            .filter(|l| !l.element.starts_with("noscript-"))
            .map(|l| (l.element.clone(), release.url(&l.path)))
            .collect();
        let expected_off: Vec<(String, String)> = entry
            .loads
            .iter()
            .map(|l| {
                let kind = l.element.strip_prefix("noscript-").unwrap_or(&l.element);
                (kind.to_string(), release.url(&l.path))
            })
            .collect();
        for (facts, expected) in [(&facts_on, expected_on), (&facts_off, expected_off)] {
            let served: Vec<(String, String)> = facts
                .loads
                .iter()
                .filter(|l| l.file.is_some())
                .map(|l| (l.kind.clone(), l.url.clone()))
                .collect();
            compare_loads(page, &expected, &served, report);
        }
        // What a browser with scripting on fetches, in document order, with the modules.
        let mut modules: VecDeque<(String, String)> = VecDeque::new();
        for load in &facts_on.loads {
            let Some(file) = &load.file else { continue };
            if load.url.contains('?') {
                continue;
            }
            let body = self.check_file(&load.url, file, load.destination, release, report)?;
            if let (Some(_), Destination::Script { module: true }) = (&body, load.destination) {
                modules.push_back((load.url.clone(), file.clone()));
            }
        }
        while let Some((url, file)) = modules.pop_front() {
            let Some(text) = self.answers.get(&url).and_then(|a| {
                let mut scratch = PageReport::default();
                decode(a, &url, MAX_FILE, &mut scratch)
            }) else {
                continue;
            };
            let Ok(text) = String::from_utf8(text) else {
                continue;
            };
            for spec in static_imports(&text) {
                let Some(next) = resolve(&file, &spec) else {
                    continue;
                };
                if !release.files.contains_key(next.as_str()) {
                    continue;
                }
                let next_url = release.url(&next);
                if self.judged.contains(&next_url) {
                    continue;
                }
                let module = Destination::Script { module: true };
                if self
                    .check_file(&next_url, &next, module, release, report)?
                    .is_some()
                {
                    modules.push_back((next_url, next));
                }
            }
        }
        let mut links = facts_on.links;
        links.extend(facts_off.links);
        Ok(links)
    }

    /// Fetches one file (once per check) and compares it with the manifest; returns its decoded
    /// body when it is the released one.
    fn check_file(
        &mut self,
        url: &str,
        file: &str,
        destination: Destination,
        release: &Release<'_>,
        report: &mut PageReport,
    ) -> Result<Option<Vec<u8>>, PageCheckError> {
        if !self.judged.insert(url.to_string()) {
            return Ok(None);
        }
        let Some(answer) = self.get(url, destination)? else {
            return Ok(None);
        };
        report.files_checked += 1;
        report.checked.insert(file.to_string());
        if answer.status != 200 {
            report.add(PageDifference::FileMissing {
                path: file.to_string(),
                url: url.to_string(),
                status: answer.status,
            });
            return Ok(None);
        }
        let served = Served::File {
            path: file,
            versioned: url.starts_with("/v/"),
        };
        check_headers(&answer, file, served, release.manifest, report);
        let Some(body) = decode(&answer, url, MAX_FILE, report) else {
            return Ok(None);
        };
        let served = hex::encode(ring::digest::digest(&ring::digest::SHA256, &body).as_ref());
        let expected = release.files.get(file).copied().unwrap_or("");
        if !served.eq_ignore_ascii_case(expected) {
            report.add(PageDifference::FileDiffers {
                path: file.to_string(),
                url: url.to_string(),
                served,
            });
            return Ok(None);
        }
        Ok(Some(body))
    }
}

/// The manifest, indexed for the check.
struct Release<'m> {
    manifest: &'m PageManifest,
    /// Manifest path → SHA-256.
    files: HashMap<&'m str, &'m str>,
    /// The languages of the release (its `/i18n/<lang>.json` files).
    languages: HashSet<&'m str>,
    /// `/v/<release>`.
    prefix: String,
}

impl<'m> Release<'m> {
    fn of(manifest: &'m PageManifest) -> Self {
        Release {
            manifest,
            files: manifest
                .files
                .iter()
                .map(|f| (f.path.as_str(), f.sha256.as_str()))
                .collect(),
            languages: manifest
                .files
                .iter()
                .filter_map(|f| f.path.strip_prefix("/i18n/")?.strip_suffix(".json"))
                .filter(|l| {
                    !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                })
                .collect(),
            prefix: format!("/v/{}", manifest.release),
        }
    }

    /// Where a file of the release is served.
    fn url(&self, file: &str) -> String {
        format!("{}{file}", self.prefix)
    }
}

/// The page's path (its query and fragment cut off).
fn path_of(page: &str) -> &str {
    page.split(['?', '#']).next().unwrap_or("")
}

/// Reports the difference between the loads a page should have and the ones it has (two
/// multisets).
fn compare_loads(
    page: &str,
    expected: &[(String, String)],
    served: &[(String, String)],
    report: &mut PageReport,
) {
    let mut count: HashMap<&(String, String), i64> = HashMap::new();
    for e in expected {
        *count.entry(e).or_default() += 1;
    }
    for s in served {
        *count.entry(s).or_default() -= 1;
    }
    let mut differing: Vec<(&(String, String), i64)> =
        count.into_iter().filter(|(_, n)| *n != 0).collect();
    differing.sort();
    for ((element, url), n) in differing {
        report.add(PageDifference::LoadsDiffer {
            page: page.to_string(),
            element: element.clone(),
            url: url.clone(),
            missing: n > 0,
        });
    }
}

/// Checks the files of the release that the browser session did not (`done`: manifest paths),
/// in a session of its own: the worker, `nojs.css`, the language files…
pub fn check_rest(
    fetcher: &mut dyn PageFetcher,
    manifest: &PageManifest,
    secure: bool,
    done: &BTreeSet<String>,
) -> Result<PageReport, PageCheckError> {
    let release = Release::of(manifest);
    let mut browser = Browser::new(fetcher, secure);
    browser.cap = manifest.files.len();
    let mut report = PageReport::default();
    for file in &manifest.files {
        if done.contains(&file.path) {
            continue;
        }
        let url = release.url(&file.path);
        let destination = Destination::of_file(&file.path);
        browser.check_file(&url, &file.path, destination, &release, &mut report)?;
        // Nothing is kept: no file is asked for twice.
        browser.answers.clear();
        browser.kept = 0;
    }
    Ok(report)
}

/// The whole check in one fetcher (tests, and callers that fetch the key list elsewhere): the
/// browser session ([`Browser::open_first_page`], [`Browser::check`]), then [`check_rest`].
pub fn check_page(
    fetcher: &mut dyn PageFetcher,
    manifest: &PageManifest,
    secure: bool,
) -> Result<PageReport, PageCheckError> {
    let mut report = {
        let mut browser = Browser::new(fetcher, secure);
        browser.open_first_page()?;
        browser.check(manifest)?
    };
    let rest = check_rest(fetcher, manifest, secure, &report.checked)?;
    report.merge(rest);
    Ok(report)
}

/// What an answer is, for its headers.
#[derive(Clone, Copy)]
enum Served<'a> {
    Page,
    File { path: &'a str, versioned: bool },
}

/// The response headers: only the ones the gateway sends (and the transport's), each once, the
/// security headers at their values, the policy the manifest's.
fn check_headers(
    answer: &Fetched,
    path: &str,
    served: Served<'_>,
    manifest: &PageManifest,
    report: &mut PageReport,
) {
    check_policy(answer, path, manifest, report);
    let differs = |report: &mut PageReport, header: &str, value: Option<&str>| {
        report.add(PageDifference::HeaderDiffers {
            path: path.to_string(),
            header: cut(header, 60),
            served: value.map(|v| cut(v, 200)),
        });
    };
    let (content_type, cache) = match served {
        Served::Page => ("text/html; charset=utf-8", "no-store"),
        Served::File { path, versioned } => (
            content_type_of(path),
            if versioned {
                "public, max-age=31536000, immutable"
            } else {
                "no-cache"
            },
        ),
    };
    let mut exact: Vec<(&str, &str)> = SECURITY_HEADERS.to_vec();
    exact.push(("content-type", content_type));
    exact.push(("cache-control", cache));
    for (name, value) in &answer.headers {
        let name = name.to_ascii_lowercase();
        let ok = match name.as_str() {
            "content-security-policy" | "content-encoding" => true,
            n if TRANSPORT_HEADERS.contains(&n) => true,
            "transfer-encoding" => value.eq_ignore_ascii_case("chunked"),
            "vary" => value.eq_ignore_ascii_case("accept-encoding"),
            n if n == HSTS.0 => value.eq_ignore_ascii_case(HSTS.1),
            n => exact.iter().any(|(e, _)| *e == n),
        };
        if !ok {
            differs(report, &name, Some(value));
        }
    }
    for (name, expected) in exact {
        let values = answer.header_values(name);
        match values[..] {
            [value] if value.eq_ignore_ascii_case(expected) => {}
            [value] => differs(report, name, Some(value)),
            _ => differs(report, name, None),
        }
    }
    for once in ["vary", "transfer-encoding", HSTS.0] {
        if answer.header_values(once).len() > 1 {
            differs(report, once, None);
        }
    }
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

/// The body as a browser reads it: identity, or one gzip member (nothing after it), at most
/// `limit` bytes decoded. Any other encoding, a damaged stream or a larger body is a
/// difference.
fn decode(answer: &Fetched, url: &str, limit: u64, report: &mut PageReport) -> Option<Vec<u8>> {
    let too_large = |report: &mut PageReport| {
        report.add(PageDifference::TooLarge {
            url: url.to_string(),
        });
        None
    };
    if answer.body.len() as u64 > MAX_BODY {
        return too_large(report);
    }
    let encodings = answer.header_values("content-encoding");
    let encoding = encodings.join(",").trim().to_ascii_lowercase();
    let undecodable = |report: &mut PageReport, what: &str| {
        report.add(PageDifference::Undecodable {
            url: url.to_string(),
            encoding: what.to_string(),
        });
        None
    };
    let out = match encoding.as_str() {
        "" | "identity" => answer.body.clone(),
        "gzip" | "x-gzip" => {
            let mut decoder = flate2::bufread::GzDecoder::new(&answer.body[..]);
            let mut out = Vec::new();
            // The expansion is bounded: at most one byte past the limit is ever written.
            let read = (&mut decoder).take(limit + 1).read_to_end(&mut out);
            if read.is_err() {
                return undecodable(report, "damaged gzip");
            }
            if out.len() as u64 <= limit && !decoder.into_inner().is_empty() {
                return undecodable(report, "data after the gzip stream");
            }
            out
        }
        other => return undecodable(report, other),
    };
    if out.len() as u64 > limit {
        return too_large(report);
    }
    Some(out)
}

/// The page's text, if a browser can only read it one way: UTF-8 (as its `Content-Type` says,
/// checked with the headers), no byte-order mark (which would override it), no NUL (which
/// browsers read otherwise than the scanner) and no ESC (ISO-2022-JP's escapes).
fn page_text<'b>(body: &'b [u8], page: &str, report: &mut PageReport) -> Option<&'b str> {
    let bad = |report: &mut PageReport, what: &str| {
        report.add(PageDifference::Encoding {
            page: page.to_string(),
            what: what.to_string(),
        });
        None
    };
    if body.starts_with(&[0xef, 0xbb, 0xbf])
        || body.starts_with(&[0xfe, 0xff])
        || body.starts_with(&[0xff, 0xfe])
    {
        return bad(report, "a byte-order mark");
    }
    if body.contains(&0) {
        return bad(report, "a NUL byte");
    }
    if body.contains(&0x1b) {
        return bad(report, "an ESC byte (an ISO-2022 escape)");
    }
    match std::str::from_utf8(body) {
        Ok(text) => Some(text),
        Err(_) => bad(report, "bytes that are not UTF-8"),
    }
}

/// What a template of the release loads and where its forms post (for
/// [`PageManifest::embedded`]): `{{v}}` is the versioned prefix `prefix`; the loads inside
/// `<noscript>` are marked `noscript-`.
pub fn template_entry(path: &str, template: &str, prefix: &str) -> PageEntry {
    let html = template.replace("{{v}}", prefix);
    let file_of = |load: &Load| {
        let url = load.url.split('?').next().unwrap_or("");
        url.strip_prefix(prefix).unwrap_or(url).to_string()
    };
    let loads_of = |scan: &Scan| -> Vec<(String, String)> {
        scan.urls()
            .filter(|(tag, attribute, _)| role(&tag.name, attribute) == Role::Load)
            .filter_map(|(tag, attribute, url)| match classify(url, path) {
                Target::Local { request, .. } => {
                    let load = Load {
                        kind: load_kind(tag, attribute),
                        url: request,
                        file: None,
                        destination: destination_of(tag),
                    };
                    Some((load.kind.clone(), file_of(&load)))
                }
                _ => None,
            })
            .collect()
    };
    let on = scan(&html, true);
    let off = scan(&html, false);
    let mut with_scripting: HashMap<(String, String), usize> = HashMap::new();
    for l in loads_of(&on) {
        *with_scripting.entry(l).or_default() += 1;
    }
    let loads = loads_of(&off)
        .into_iter()
        .map(|(kind, file)| {
            let key = (kind.clone(), file.clone());
            match with_scripting.get_mut(&key) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    PageLoad {
                        element: kind,
                        path: file,
                    }
                }
                _ => PageLoad {
                    element: format!("noscript-{kind}"),
                    path: file,
                },
            }
        })
        .collect();
    let mut forms = BTreeSet::new();
    for s in [&on, &off] {
        for tag in &s.tags {
            if tag.name == "form" && tag.attr("action").is_none() {
                forms.insert(path.to_string());
            }
        }
        for (tag, attribute, url) in s.urls() {
            if role(&tag.name, attribute) != Role::Form {
                continue;
            }
            match classify(url, path) {
                Target::Local { path: p, .. } => {
                    forms.insert(p);
                }
                Target::Fragment => {
                    forms.insert(path.to_string());
                }
                _ => {}
            }
        }
    }
    PageEntry {
        path: path.to_string(),
        loads,
        forms: forms.into_iter().collect(),
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
    /// More tags or attributes than the check reads (what, for the report).
    over: Option<String>,
}

impl Scan {
    /// Every URL in a URL attribute, with its tag and attribute (each candidate of a `srcset`
    /// apart), in document order.
    fn urls(&self) -> impl Iterator<Item = (&Tag, &str, &str)> {
        self.tags.iter().flat_map(|tag| {
            tag.attrs
                .iter()
                .filter(|(a, _)| URL_ATTRS.contains(&a.as_str()))
                .flat_map(move |(attribute, value)| {
                    let urls: Vec<&str> = if attribute.ends_with("srcset") {
                        value
                            .split(',')
                            .filter_map(|c| c.split_whitespace().next())
                            .collect()
                    } else {
                        vec![value.as_str()]
                    };
                    urls.into_iter()
                        .map(move |url| (tag, attribute.as_str(), url))
                })
        })
    }
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

/// Where a comment whose text starts at `body` ends (after `-->` or `--!>`), in one pass.
fn comment_end(b: &[u8], body: usize) -> usize {
    let mut j = body;
    while let Some(p) = find_from(b, j, b"--") {
        if b.get(p + 2) == Some(&b'>') {
            return p + 3;
        }
        if b.get(p + 2) == Some(&b'!') && b.get(p + 3) == Some(&b'>') {
            return p + 4;
        }
        j = p + 1;
    }
    b.len()
}

/// Tokenizes `html` as a browser with scripting on or off: start tags with their attributes,
/// and markup found inside raw text. Stops at [`MAX_TAGS`].
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
                i = comment_end(b, body);
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
                let (_, end, _) = parse_tag(b, i + 2);
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
        if out.tags.len() >= MAX_TAGS {
            out.over = Some(format!("more than {MAX_TAGS} tags"));
            break;
        }
        let (tag, end, over) = parse_tag(b, i + 1);
        if over {
            out.over = Some(format!("a tag with more than {MAX_ATTRIBUTES} attributes"));
        }
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
/// Keeps the first of each attribute name, at most [`MAX_ATTRIBUTES`] (the third value tells
/// there were more).
fn parse_tag(b: &[u8], start: usize) -> (Tag, usize, bool) {
    let mut i = start;
    while i < b.len() && !is_space(b[i]) && b[i] != b'/' && b[i] != b'>' {
        i += 1;
    }
    let name = String::from_utf8_lossy(&b[start..i]).to_ascii_lowercase();
    let mut attrs: Vec<(String, String)> = Vec::new();
    let mut names: HashSet<String> = HashSet::new();
    let mut over = false;
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
        let mut value: &[u8] = b"";
        if i < b.len() && b[i] == b'=' {
            i += 1;
            while i < b.len() && is_space(b[i]) {
                i += 1;
            }
            if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                let quote = b[i];
                let v_start = i + 1;
                let v_end = find_from(b, v_start, &[quote]).unwrap_or(b.len());
                value = &b[v_start..v_end];
                i = (v_end + 1).min(b.len());
            } else {
                let v_start = i;
                while i < b.len() && !is_space(b[i]) && b[i] != b'>' {
                    i += 1;
                }
                value = &b[v_start..i];
            }
        }
        if names.contains(&attr) {
            continue;
        }
        if attrs.len() >= MAX_ATTRIBUTES {
            over = true;
            continue;
        }
        names.insert(attr.clone());
        attrs.push((attr, decode_references(&String::from_utf8_lossy(value))));
    }
    (Tag { name, attrs }, i, over)
}

/// What HTML makes of a numeric character reference's number (the spec's "numeric character
/// reference end state"): 0, a surrogate or a number past U+10FFFF is U+FFFD; 0x80 to 0x9F are
/// read as windows-1252.
fn numeric_reference(code: u32) -> char {
    const C1: [(u32, char); 27] = [
        (0x80, '\u{20AC}'),
        (0x82, '\u{201A}'),
        (0x83, '\u{0192}'),
        (0x84, '\u{201E}'),
        (0x85, '\u{2026}'),
        (0x86, '\u{2020}'),
        (0x87, '\u{2021}'),
        (0x88, '\u{02C6}'),
        (0x89, '\u{2030}'),
        (0x8A, '\u{0160}'),
        (0x8B, '\u{2039}'),
        (0x8C, '\u{0152}'),
        (0x8E, '\u{017D}'),
        (0x91, '\u{2018}'),
        (0x92, '\u{2019}'),
        (0x93, '\u{201C}'),
        (0x94, '\u{201D}'),
        (0x95, '\u{2022}'),
        (0x96, '\u{2013}'),
        (0x97, '\u{2014}'),
        (0x98, '\u{02DC}'),
        (0x99, '\u{2122}'),
        (0x9A, '\u{0161}'),
        (0x9B, '\u{203A}'),
        (0x9C, '\u{0153}'),
        (0x9E, '\u{017E}'),
        (0x9F, '\u{0178}'),
    ];
    if let Some((_, c)) = C1.iter().find(|(n, _)| *n == code) {
        return *c;
    }
    match code {
        0 => '\u{fffd}',
        _ => char::from_u32(code).unwrap_or('\u{fffd}'),
    }
}

/// Decodes numeric character references (every digit read, as browsers do) and the five basic
/// named ones. Any other named reference is left as it is (a URL holding one is then refused as
/// ambiguous).
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
            let radix = if hex { 16 } else { 10 };
            let mut code: u32 = 0;
            let mut len = 0;
            for c in digits.chars() {
                let Some(d) = c.to_digit(radix) else { break };
                // Saturating past U+10FFFF: however many digits follow, it stays too large.
                code = code.saturating_mul(radix).saturating_add(d).min(0x11_0000);
                len += 1;
            }
            if len > 0 {
                out.push(numeric_reference(code));
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

/// Where `raw` (an attribute's value) leads from `page` (a page of the site, maybe with a
/// query).
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
        format!("{}{url}", path_of(page))
    } else {
        // Every page is at the top: relative paths resolve against '/'.
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

/// The kind of a resource-loading element ([`PageLoad::element`]).
fn load_kind(tag: &Tag, attribute: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .take(40)
            .map(|c| {
                let c = c.to_ascii_lowercase();
                if c.is_ascii_lowercase() || c.is_ascii_digit() {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    };
    match (tag.name.as_str(), attribute) {
        ("script", "src") => match destination_of(tag) {
            Destination::Script { module: true } => "script-module".into(),
            _ => "script".into(),
        },
        ("link", "href") => {
            let rel = tag.attr("rel").unwrap_or("").to_ascii_lowercase();
            let rels: Vec<&str> = rel.split_whitespace().collect();
            if rels.contains(&"stylesheet") {
                "stylesheet".into()
            } else if rels.contains(&"modulepreload") {
                "modulepreload".into()
            } else if rels.iter().any(|r| r.contains("icon")) {
                "icon".into()
            } else {
                format!("link-{}", clean(rels.first().copied().unwrap_or("")))
            }
        }
        (element, attribute) => format!("{}-{}", clean(element), clean(attribute)),
    }
}

/// What a URL attribute does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Loads a resource.
    Load,
    /// A link (`<a href>`): only to the release's pages.
    Link,
    /// A form's target: only the manifest's paths.
    Form,
    /// A citation (loads nothing): only on this origin.
    Cite,
    /// `ping`: the genuine page has none.
    Ping,
}

fn role(element: &str, attribute: &str) -> Role {
    match (element, attribute) {
        (_, "ping") => Role::Ping,
        ("a" | "area", "href") => Role::Link,
        ("form", "action") | ("button" | "input", "formaction") => Role::Form,
        ("blockquote" | "q" | "del" | "ins", "cite") => Role::Cite,
        _ => Role::Load,
    }
}

/// A link a page of the release may have: `/` or `/check`, with at most `lang=` and a language
/// of the release. Returns what a browser would request.
fn release_page(path: &str, request: &str, release: &Release<'_>) -> Option<String> {
    if !PAGES.contains(&path) {
        return None;
    }
    match request.split_once('?') {
        None => Some(request.to_string()),
        Some((_, query)) => {
            let lang = query.strip_prefix("lang=")?;
            release
                .languages
                .contains(lang)
                .then(|| request.to_string())
        }
    }
}

/// Judges one scan of a page: reports what can run, what leads elsewhere and what loads
/// something the release does not; returns what it loads and where it links.
fn judge(
    page: &str,
    scan: &Scan,
    release: &Release<'_>,
    entry: &PageEntry,
    report: &mut PageReport,
) -> Facts {
    let page_s = page.to_string();
    let mut facts = Facts::default();
    if let Some(what) = &scan.over {
        report.add(PageDifference::TooMuch {
            page: page_s.clone(),
            what: what.clone(),
        });
    }
    for name in &scan.hidden {
        report.add(PageDifference::ActiveContent {
            page: page_s.clone(),
            what: format!("markup hidden inside <{}> text", cut(name, 40)),
        });
    }
    let form_allowed = |path: &str| entry.forms.iter().any(|f| f == path);
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
        if element == "meta" {
            if let Some(charset) = tag.attr("charset") {
                if !charset.trim().eq_ignore_ascii_case("utf-8") {
                    report.add(PageDifference::Encoding {
                        page: page_s.clone(),
                        what: format!("<meta charset=\"{}\">", cut(charset, 40)),
                    });
                }
            }
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
        if element == "form" && tag.attr("action").is_none() && !form_allowed(path_of(page)) {
            // It posts to the page itself.
            report.add(PageDifference::UnlistedTarget {
                page: page_s.clone(),
                element: "form".into(),
                url: page_s.clone(),
            });
        }
        for (attribute, _) in &tag.attrs {
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
        }
    }
    for (n, (tag, attribute, url)) in scan.urls().enumerate() {
        if n == MAX_URLS {
            report.add(PageDifference::TooMuch {
                page: page_s.clone(),
                what: format!("more than {MAX_URLS} URLs"),
            });
            break;
        }
        let element = tag.name.clone();
        let role = role(&element, attribute);
        let target = classify(url, page);
        match (&target, role) {
            (Target::Script, _) => report.add(PageDifference::ActiveContent {
                page: page_s.clone(),
                what: format!("a javascript: URL on <{}>", cut(&element, 40)),
            }),
            (Target::Ambiguous, _) => report.add(PageDifference::ActiveContent {
                page: page_s.clone(),
                what: format!(
                    "a URL the check cannot read unambiguously on <{}>: {}",
                    cut(&element, 40),
                    cut(url, 200)
                ),
            }),
            (_, Role::Ping) => report.add(PageDifference::ActiveContent {
                page: page_s.clone(),
                what: format!("a ping attribute on <{}>", cut(&element, 40)),
            }),
            (Target::Foreign, _) | (Target::Harmless, Role::Load) => {
                report.add(PageDifference::ForeignResource {
                    page: page_s.clone(),
                    element,
                    url: cut(url, 200),
                })
            }
            (Target::Harmless | Target::Fragment, Role::Link | Role::Cite) => {}
            (Target::Local { .. }, Role::Cite) => {}
            (Target::Local { path, request }, Role::Link) => {
                match release_page(path, request, release) {
                    Some(link) => facts.links.push(link),
                    None => report.add(PageDifference::UnlistedTarget {
                        page: page_s.clone(),
                        element,
                        url: cut(url, 200),
                    }),
                }
            }
            (Target::Local { path, .. }, Role::Form) if form_allowed(path) => {}
            (Target::Fragment, Role::Form) if form_allowed(path_of(page)) => {}
            (_, Role::Form) => report.add(PageDifference::UnlistedTarget {
                page: page_s.clone(),
                element,
                url: cut(url, 200),
            }),
            (Target::Fragment, Role::Load) => report.add(PageDifference::UnlistedResource {
                page: page_s.clone(),
                element,
                path: page_s.clone(),
            }),
            (Target::Local { path, request }, Role::Load) => {
                let file = match path.strip_prefix("/v/") {
                    Some(rest) => {
                        let (found, file) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
                        if found != release.manifest.release {
                            report.add(PageDifference::OtherRelease {
                                page: page_s.clone(),
                                found: found.to_string(),
                            });
                            continue;
                        }
                        file.to_string()
                    }
                    None => path.clone(),
                };
                if !release.files.contains_key(file.as_str()) {
                    report.add(PageDifference::UnlistedResource {
                        page: page_s.clone(),
                        element,
                        path: cut(path, 200),
                    });
                    continue;
                }
                facts.loads.push(Load {
                    kind: load_kind(tag, attribute),
                    url: request.clone(),
                    file: Some(file),
                    destination: destination_of(tag),
                });
            }
        }
    }
    facts
}

/// The specifiers of a module's static imports (`import … from '…'`, `import '…'`,
/// `export … from '…'`), in order: what a browser fetches before it runs the module. Dynamic
/// `import()` and workers are not followed (a browser loads them later, if at all).
fn static_imports(js: &str) -> Vec<String> {
    let b = js.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c == b'.';
    let mut found: Vec<(usize, String)> = Vec::new();
    for keyword in [&b"import"[..], &b"from"[..]] {
        let mut j = 0;
        while let Some(p) = find_from(b, j, keyword) {
            j = p + keyword.len();
            if found.len() >= 256 {
                break;
            }
            if p > 0 && ident(b[p - 1]) {
                continue;
            }
            let mut k = j;
            while k < b.len() && is_space(b[k]) {
                k += 1;
            }
            let Some(&quote) = b.get(k) else { continue };
            if quote != b'"' && quote != b'\'' {
                continue;
            }
            let Some(end) = find_from(b, k + 1, &[quote]) else {
                continue;
            };
            let spec = &js[k + 1..end];
            if !spec.contains('\n') && spec.len() <= 512 {
                found.push((p, spec.to_string()));
            }
        }
    }
    found.sort();
    found.into_iter().map(|(_, s)| s).collect()
}

/// Resolves a relative module specifier (`./x.js`, `../y.mjs`) against the path of the module
/// that imports it; `None` for anything else (a bare name, another origin, a query).
fn resolve(base: &str, spec: &str) -> Option<String> {
    if !(spec.starts_with("./") || spec.starts_with("../"))
        || spec.contains(['?', '#', '%', '\\', ':'])
    {
        return None;
    }
    let mut parts: Vec<&str> = base.split('/').collect();
    parts.pop(); // the importing file
    for segment in spec.split('/') {
        match segment {
            "." | "" => {}
            ".." => {
                if parts.len() <= 1 {
                    return None;
                }
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    let path = parts.join("/");
    path.starts_with('/').then_some(path)
}

#[cfg(test)]
mod tests;
