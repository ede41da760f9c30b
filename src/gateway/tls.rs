//! TLS for the gateway: the operator's certificate, or a self-signed one made at first start.
//!
//! rustls with the ring provider, TLS 1.3 and 1.2 only, and rustls's default suites (all AEAD with
//! forward secrecy; rustls implements nothing weaker). HTTP/1.1 only: the API is a few plain
//! requests, and a smaller protocol surface is easier to bound against slow clients.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ring::digest;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

use super::GatewayError;

/// Lifetime of a self-signed certificate; it is replaced a month before it ends.
const SELF_SIGNED_DAYS: i64 = 365;

/// Where the self-signed certificate and key are kept inside the data directory.
pub fn self_signed_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    let dir = data_dir.join("tls");
    (dir.join("cert.pem"), dir.join("key.pem"))
}

/// Returns the self-signed certificate's paths, generating it on first start.
pub fn ensure_self_signed(
    data_dir: &Path,
    listen: SocketAddr,
) -> Result<(PathBuf, PathBuf), GatewayError> {
    let (cert_path, key_path) = self_signed_paths(data_dir);
    let fresh = std::fs::metadata(&cert_path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|made| made.elapsed().ok())
        .is_some_and(|age| {
            age < std::time::Duration::from_secs((SELF_SIGNED_DAYS - 30) as u64 * 86_400)
        });
    if fresh && key_path.is_file() {
        return Ok((cert_path, key_path));
    }
    let tls_error =
        |what: &str, e: &dyn std::fmt::Display| GatewayError::Tls(format!("{what}: {e}"));
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if !listen.ip().is_unspecified() && !listen.ip().is_loopback() {
        names.push(listen.ip().to_string());
    }
    let mut params = rcgen::CertificateParams::new(names)
        .map_err(|e| tls_error("cannot generate a self-signed certificate", &e))?;
    // A year, like a real certificate; a new one is made when this one is a year old.
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(SELF_SIGNED_DAYS);
    let signing_key = rcgen::KeyPair::generate()
        .map_err(|e| tls_error("cannot generate a key for the self-signed certificate", &e))?;
    let cert = params
        .self_signed(&signing_key)
        .map_err(|e| tls_error("cannot generate a self-signed certificate", &e))?;
    let dir = cert_path.parent().unwrap_or(data_dir);
    fs::create_dir_all(dir).map_err(|e| tls_error(&dir.display().to_string(), &e))?;
    write_private(&key_path, signing_key.serialize_pem().as_bytes())
        .map_err(|e| tls_error(&key_path.display().to_string(), &e))?;
    write_private(&cert_path, cert.pem().as_bytes())
        .map_err(|e| tls_error(&cert_path.display().to_string(), &e))?;
    Ok((cert_path, key_path))
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// A loaded certificate: the rustls config and the leaf's SHA-256 fingerprint (to print, so a
/// user of the self-signed mode can check what their client sees).
pub struct LoadedTls {
    /// TLS 1.3/1.2, HTTP/1.1 only, no session resumption; ready for `axum_server`.
    pub config: Arc<ServerConfig>,
    /// SHA-256 of the leaf certificate (DER) as colon-separated uppercase hex.
    pub fingerprint: String,
}

/// A ticketer that never issues a ticket (rustls's default one is already disabled; this makes
/// the choice explicit and testable).
#[derive(Debug)]
struct NoTickets;

impl rustls::server::ProducesTickets for NoTickets {
    fn enabled(&self) -> bool {
        false
    }

    fn lifetime(&self) -> u32 {
        0
    }

    fn encrypt(&self, _plain: &[u8]) -> Option<Vec<u8>> {
        None
    }

    fn decrypt(&self, _cipher: &[u8]) -> Option<Vec<u8>> {
        None
    }
}

/// Loads a PEM certificate chain (leaf first) and its PEM private key into a rustls config.
pub fn load(cert_path: &Path, key_path: &Path) -> Result<LoadedTls, GatewayError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .and_then(|iter| iter.collect())
        .map_err(|e| GatewayError::Tls(format!("{}: {e}", cert_path.display())))?;
    let Some(leaf) = certs.first() else {
        return Err(GatewayError::Tls(format!(
            "{}: no certificate found",
            cert_path.display()
        )));
    };
    let fingerprint = digest::digest(&digest::SHA256, leaf)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| GatewayError::Tls(format!("{}: {e}", key_path.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| GatewayError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| GatewayError::Tls(format!("{}: {e}", cert_path.display())))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // Our order (rustls's: AES-GCM and ChaCha20 with forward secrecy, strongest first), not the
    // client's.
    config.ignore_client_order = true;
    // No resumption of any kind: it gains little for a few requests per reporter, and a ticket
    // key or a session cache keeps secrets in memory that could link a reporter's sessions.
    // TLS 1.3 tickets are off, TLS 1.2 session IDs are not stored, and no ticketer exists.
    config.send_tls13_tickets = 0;
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.ticketer = Arc::new(NoTickets);
    Ok(LoadedTls {
        config: Arc::new(config),
        fingerprint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_session_can_be_resumed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) =
            ensure_self_signed(dir.path(), "127.0.0.1:0".parse().expect("addr")).expect("cert");
        let loaded = load(&cert, &key).expect("load");
        assert_eq!(loaded.config.send_tls13_tickets, 0);
        assert!(!loaded.config.ticketer.enabled());
        // The session store keeps nothing.
        let store = &loaded.config.session_storage;
        assert!(!store.put(b"id".to_vec(), b"secret".to_vec()));
        assert!(store.get(b"id").is_none());
    }
}
