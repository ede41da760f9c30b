//! The submission page's files, embedded in the binary at build time.
//!
//! Embedding means the gateway serves exactly what was built and reviewed, fetches nothing at run
//! time, and needs no web root on the server's disk.

/// One embedded file.
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub bytes: &'static [u8],
}

pub static ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        bytes: include_bytes!("../../static/index.html"),
    },
    Asset {
        path: "/static/style.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../static/style.css"),
    },
];

pub fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}
