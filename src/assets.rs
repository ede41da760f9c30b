//! The submission page's files (`static/`), embedded in the binaries at build time by `build.rs`.
//!
//! Embedding means the gateway serves exactly what was built and reviewed, fetches nothing at run
//! time, and needs no web root on the server; the review tool gets the form's labels in every
//! language from the same files.

/// One embedded file, by its path under `static/` (with a leading `/`).
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub bytes: &'static [u8],
    /// The same, gzipped at build time (text files only).
    pub gzip: Option<&'static [u8]>,
}

pub static ASSETS: &[Asset] = include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// A hash of every embedded file: the page serves its files under `/v/<VERSION>/…`, which
/// browsers may cache for good, since a new build has a new version.
pub const VERSION: &str = include!(concat!(env!("OUT_DIR"), "/assets_version.rs"));

/// The URL prefix of versioned assets.
pub fn versioned_prefix() -> String {
    format!("/v/{VERSION}")
}

pub fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

/// The embedded language files: `(language tag, JSON text)`.
pub fn languages() -> impl Iterator<Item = (&'static str, &'static [u8])> {
    ASSETS.iter().filter_map(|a| {
        a.path
            .strip_prefix("/i18n/")
            .and_then(|name| name.strip_suffix(".json"))
            .map(|lang| (lang, a.bytes))
    })
}
