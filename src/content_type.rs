//! The `Content-Type` of each page file, by its extension: one table for `build.rs` (which gives
//! every embedded asset its type) and the page check (which expects the same). `build.rs`
//! includes this file as a module of its own, so it must stay free of crate paths.

/// The `Content-Type` for a file name extension (without the dot).
pub fn for_extension(ext: &str) -> &'static str {
    match ext {
        "html" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}
