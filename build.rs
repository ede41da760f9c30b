//! Embeds the submission page (`static/`) in the binaries: the gateway serves it, and the review
//! tool reads the form's language files from it. Every file under `static/` becomes an entry of a
//! generated table, so adding a page asset or a language needs no code change.
//!
//! Text assets are also compressed here (gzip, best level), so a reporter on a slow connection
//! downloads the big script once at a third of its size, and the build gets a version (a hash of
//! every asset) that the page puts in the assets' URLs, so browsers may cache them for good.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[path = "src/content_type.rs"]
mod content_type;

fn content_type(path: &Path) -> &'static str {
    content_type::for_extension(path.extension().and_then(|e| e.to_str()).unwrap_or(""))
}

fn compressible(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()).unwrap_or(""),
        "html" | "css" | "js" | "mjs" | "json" | "svg" | "txt"
    )
}

/// Writes `bytes` gzipped into OUT_DIR and returns the path.
fn gzipped(bytes: &[u8], name: &str) -> PathBuf {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).expect("gzip");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("out dir")).join(format!("{name}.gz"));
    std::fs::write(&out, encoder.finish().expect("gzip")).expect("write gzip");
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.')
            || name == "node_modules"
            || name == "package.json"
            || name == "package-lock.json"
        {
            continue;
        }
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("manifest dir"));
    let static_dir = root.join("static");
    println!("cargo:rerun-if-changed=static");
    let mut files = Vec::new();
    walk(&static_dir, &mut files);
    let mut table = String::from("&[\n");
    let mut version = std::collections::hash_map::DefaultHasher::new();
    let mut entry = |table: &mut String, url: &str, file: &Path| {
        use std::hash::Hasher as _;
        let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        version.write(url.as_bytes());
        version.write(&bytes);
        let gzip = if compressible(file) {
            let name = url.trim_start_matches('/').replace('/', "_");
            format!(
                "Some(include_bytes!({:?}))",
                gzipped(&bytes, &name).display().to_string()
            )
        } else {
            "None".to_string()
        };
        writeln!(
            table,
            "    Asset {{ path: {url:?}, content_type: {:?}, bytes: include_bytes!({:?}), gzip: {gzip} }},",
            content_type(file),
            file.display().to_string()
        )
        .expect("write");
    };
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
        let relative = file.strip_prefix(&static_dir).expect("under static");
        let url = format!("/{}", relative.to_string_lossy().replace('\\', "/"));
        entry(&mut table, &url, file);
    }
    // Third-party code from npm, pinned in static/package-lock.json (with integrity hashes) and
    // embedded under /vendor/: openpgp.js, the BIP-39 Spanish word list of @scure/bip39 (the
    // words of a reply receipt; only that one file ships), and tus-js-client's browser bundle
    // (resumable uploads, docs/uploads-v1.md; a self-contained UMD file that the page imports as
    // a module and that sets `window.tus`; its Node dependencies never ship). `npm ci` installs
    // exactly the locked versions.
    let vendored = [
        (
            "node_modules/openpgp/dist/openpgp.min.mjs",
            "/vendor/openpgp.min.mjs",
        ),
        (
            "node_modules/@scure/bip39/wordlists/spanish.js",
            "/vendor/bip39-spanish.mjs",
        ),
        (
            "node_modules/tus-js-client/dist/tus.min.js",
            "/vendor/tus.min.js",
        ),
    ];
    println!("cargo:rerun-if-changed=static/package-lock.json");
    if vendored
        .iter()
        .any(|(file, _)| !static_dir.join(file).is_file())
    {
        let status = std::process::Command::new("npm")
            .args(["ci", "--ignore-scripts", "--no-audit", "--no-fund"])
            .current_dir(&static_dir)
            .status();
        let missing = vendored
            .iter()
            .any(|(file, _)| !static_dir.join(file).is_file());
        if !matches!(status, Ok(s) if s.success()) || missing {
            panic!(
                "openpgp.js, @scure/bip39 or tus-js-client is missing: run `npm ci` in static/ (needs Node.js \
                 and npm; scripts/run and scripts/test do it for you)"
            );
        }
    }
    for (file, url) in vendored {
        let vendor = static_dir.join(file);
        println!("cargo:rerun-if-changed={}", vendor.display());
        entry(&mut table, url, &vendor);
    }
    table.push(']');
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("out dir"));
    std::fs::write(out_dir.join("assets.rs"), table).expect("write assets table");
    use std::hash::Hasher as _;
    std::fs::write(
        out_dir.join("assets_version.rs"),
        format!("{:?}", format!("{:016x}", version.finish())),
    )
    .expect("write assets version");
}
