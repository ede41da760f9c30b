//! Helpers for unit tests: throwaway keys and messages of every shape the gateway must judge.

use std::io::Write;

use sequoia_openpgp as openpgp;

use openpgp::cert::prelude::*;
use openpgp::crypto::Password;
use openpgp::packet::{Packet, PKESK};
use openpgp::parse::Parse;
use openpgp::policy::StandardPolicy;
use openpgp::serialize::stream::{
    Armorer, Compressor, Encryptor, LiteralWriter, Message, Recipient, Signer,
};
use openpgp::serialize::{Serialize, SerializeInto};
use openpgp::PacketPile;

use crate::keyring::{generate_reviewer_key, KeyProfile, ReviewerKeyOptions, ReviewerKeyring};

/// A reviewer key with its secret parts (passphrase "test"), in the given profile.
pub fn reviewer_key(name: &str, profile: KeyProfile) -> Cert {
    generate_reviewer_key(ReviewerKeyOptions {
        name: name.into(),
        profile,
        passphrase: Password::from("test"),
        validity: None,
        role: crate::keyring::KeyRole::Reviewer,
    })
    .expect("keygen")
    .cert
}

/// A courier key with its secret parts (passphrase "test").
pub fn courier_key(name: &str) -> Cert {
    generate_reviewer_key(ReviewerKeyOptions {
        name: name.into(),
        profile: KeyProfile::Compatible,
        passphrase: Password::from("test"),
        validity: None,
        role: crate::keyring::KeyRole::Courier,
    })
    .expect("keygen")
    .cert
}

/// An organisation key with its secret part (passphrase "test"), as `keygen --org` makes them.
pub fn org_key(name: &str) -> Cert {
    crate::keyring::generate_org_key(crate::keyring::OrgKeyOptions {
        name: name.into(),
        passphrase: Password::from("test"),
        validity: None,
    })
    .expect("keygen --org")
    .cert
}

/// A keyring of the public parts of `certs`.
pub fn keyring(certs: &[&Cert]) -> ReviewerKeyring {
    let public = certs
        .iter()
        .map(|c| (*c).clone().strip_secret_key_material());
    ReviewerKeyring::from_certs(std::path::Path::new("test"), public.collect()).expect("keyring")
}

/// Wraps `plaintext` in a literal data packet inside the writer stack `message`.
fn write_literal(message: Message<'_>, plaintext: &[u8]) {
    let mut w = LiteralWriter::new(message).build().expect("literal");
    w.write_all(plaintext).expect("write");
    w.finalize().expect("finalize");
}

/// Encrypts `plaintext` to every encryption subkey of `certs`, honouring their features.
pub fn seal(certs: &[&Cert], plaintext: &[u8]) -> Vec<u8> {
    let ring = keyring(certs);
    let mut out = Vec::new();
    let message = Message::new(&mut out);
    let message = Encryptor::for_recipients(message, ring.recipients())
        .build()
        .expect("encryptor");
    write_literal(message, plaintext);
    out
}

/// Like [`seal`] but ASCII-armored.
pub fn seal_armored(certs: &[&Cert], plaintext: &[u8]) -> Vec<u8> {
    let ring = keyring(certs);
    let mut out = Vec::new();
    let message = Message::new(&mut out);
    let message = Armorer::new(message).build().expect("armorer");
    let message = Encryptor::for_recipients(message, ring.recipients())
        .build()
        .expect("encryptor");
    write_literal(message, plaintext);
    out
}

/// Encrypts with a hidden (wildcard) recipient.
pub fn seal_hidden_recipient(cert: &Cert, plaintext: &[u8]) -> Vec<u8> {
    let policy = StandardPolicy::new();
    let recipients = cert
        .keys()
        .with_policy(&policy, None)
        .supported()
        .for_transport_encryption()
        .map(|ka| Recipient::new(ka.valid_cert().features(), None, ka.key()));
    let mut out = Vec::new();
    let message = Message::new(&mut out);
    let message = Encryptor::for_recipients(message, recipients)
        .build()
        .expect("encryptor");
    write_literal(message, plaintext);
    out
}

/// Encrypts to a password (SKESK), optionally also to `certs`.
pub fn seal_with_password(certs: &[&Cert], plaintext: &[u8]) -> Vec<u8> {
    let ring = (!certs.is_empty()).then(|| keyring(certs));
    let recipients = ring.as_ref().map(|r| r.recipients()).unwrap_or_default();
    let mut out = Vec::new();
    let message = Message::new(&mut out);
    let message = Encryptor::with_passwords(message, Some("hunter2"))
        .add_recipients(recipients)
        .build()
        .expect("encryptor");
    write_literal(message, plaintext);
    out
}

pub fn literal(plaintext: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let message = Message::new(&mut out);
    write_literal(message, plaintext);
    out
}

pub fn compressed(plaintext: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let message = Message::new(&mut out);
    let message = Compressor::new(message).build().expect("compressor");
    write_literal(message, plaintext);
    out
}

/// A message signed (but not encrypted) with a fresh signing key.
pub fn signed(plaintext: &[u8]) -> Vec<u8> {
    let (signer, _) = CertBuilder::general_purpose(Some("signer"))
        .generate()
        .expect("keygen");
    let policy = StandardPolicy::new();
    let keypair = signer
        .keys()
        .with_policy(&policy, None)
        .secret()
        .for_signing()
        .next()
        .expect("signing key")
        .key()
        .clone()
        .into_keypair()
        .expect("keypair");
    let mut out = Vec::new();
    let message = Message::new(&mut out);
    let message = Signer::new(message, keypair)
        .expect("signer")
        .build()
        .expect("signer");
    write_literal(message, plaintext);
    out
}

/// Serializes packets one after another.
pub fn packets(packets: &[Packet]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in packets {
        p.serialize(&mut out).expect("serialize");
    }
    out
}

/// The top-level packets of a message, without decrypting anything.
pub fn split(message: &[u8]) -> Vec<Packet> {
    PacketPile::from_bytes(message)
        .expect("parse")
        .into_children()
        .collect()
}

/// Replaces the recipient of every v3 PKESK with the wildcard.
pub fn hide_recipients(message: &[u8]) -> Vec<u8> {
    let mut parts = split(message);
    for p in &mut parts {
        if let Packet::PKESK(PKESK::V3(pkesk)) = p {
            pkesk.set_recipient(None);
        }
    }
    packets(&parts)
}

/// The public certificate of `cert` as a binary packet sequence.
pub fn public_cert_bytes(cert: &Cert) -> Vec<u8> {
    cert.clone()
        .strip_secret_key_material()
        .to_vec()
        .expect("serialize")
}

/// A packet in the new format with an explicit tag and body.
pub fn raw_packet(tag: u8, body: &[u8]) -> Vec<u8> {
    assert!(body.len() < 192);
    let mut out = vec![0xC0 | tag, body.len() as u8];
    out.extend_from_slice(body);
    out
}

/// A tar archive from raw parts (name, type flag, data), bypassing the tar crate's path checks
/// (which refuse `..`), for hostile payloads and bundles. A type `b'2'` entry is a symlink to
/// `/etc/passwd`.
pub fn raw_tar(entries: &[(&[u8], u8, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, kind, data) in entries {
        let mut header = tar::Header::new_ustar();
        header.as_old_mut().name[..name.len()].copy_from_slice(name);
        header.set_size(data.len() as u64);
        header.set_mode(0o600);
        header.set_entry_type(tar::EntryType::new(*kind));
        if *kind == b'2' {
            header.set_link_name("/etc/passwd").expect("link");
        }
        header.set_cksum();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// An attachment sink that only counts the bytes of each attachment, or of a raw plaintext (for
/// fuzzing and replay).
#[derive(Default)]
pub struct CountingSink(pub Vec<u64>);

struct Counter<'a>(&'a mut u64);

impl Write for Counter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        *self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl crate::payload::read::AttachmentSink for CountingSink {
    fn open(
        &mut self,
        _: usize,
        _: &crate::payload::Attachment,
    ) -> std::io::Result<Box<dyn Write + '_>> {
        self.0.push(0);
        let last = self.0.last_mut().expect("just pushed");
        Ok(Box::new(Counter(last)))
    }

    fn raw(&mut self) -> std::io::Result<Box<dyn Write + '_>> {
        self.0.push(0);
        let last = self.0.last_mut().expect("just pushed");
        Ok(Box::new(Counter(last)))
    }
}

/// Writes a bundle v1 of these sealed messages (fresh ids, today, sealed by the sender) into
/// `out`; returns the writer and the ids in order.
pub fn write_bundle_of<W: Write>(
    out: W,
    messages: &[Vec<u8>],
) -> (W, Vec<crate::submission::SubmissionId>) {
    use crate::bundle::{self, BundleEntry, BundleManifest};
    use crate::submission::{BatchId, Sealing, SubmissionId, UtcDay};
    let entries: Vec<BundleEntry> = messages
        .iter()
        .map(|m| BundleEntry {
            id: SubmissionId::random(),
            day: UtcDay::today(),
            size: m.len() as u64,
            sha256: hex::encode(ring::digest::digest(&ring::digest::SHA256, m)),
            sealing: Sealing::BySender,
        })
        .collect();
    let ids = entries.iter().map(|e| e.id).collect();
    let manifest = BundleManifest {
        format: bundle::FORMAT.into(),
        batch: BatchId::random(),
        created: UtcDay::today(),
        submissions: entries,
        chain: None,
    };
    let mut next = messages.iter();
    let out = bundle::write_bundle(out, &manifest, |_| {
        Ok(std::io::Cursor::new(
            next.next().cloned().unwrap_or_default(),
        ))
    })
    .expect("write bundle");
    (out, ids)
}

/// A scratch directory for a benchmark, on the same disk as the build (so fsync costs what it
/// costs there, not what a tmpfs /tmp costs): under `CARGO_TARGET_DIR` when set, else
/// `./target`, made if missing, so `cargo bench` works wherever the build goes.
pub fn bench_scratch_dir() -> tempfile::TempDir {
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let made = std::fs::create_dir_all(&base).and_then(|()| tempfile::tempdir_in(&base));
    made.or_else(|_| tempfile::tempdir())
        .expect("a scratch directory for the benchmark")
}

/// A gateway started for a benchmark: self-signed TLS on a random loopback port, the demo
/// reviewer 1 and the demo courier, rate limits out of the way; `extra` is appended to its
/// config (e.g. `[proof_of_work]` settings). Killed on drop.
pub struct BenchGateway {
    /// The child process, while it runs.
    child: Option<std::process::Child>,
    /// `https://127.0.0.1:PORT/`.
    pub url: String,
    /// The gateway's self-signed certificate, to trust.
    pub ca: std::path::PathBuf,
    /// Its data directory.
    pub data_dir: std::path::PathBuf,
    config: std::path::PathBuf,
    gateway_bin: std::path::PathBuf,
}

impl BenchGateway {
    /// Starts `gateway_bin` (`env!("CARGO_BIN_EXE_resguardo-gateway")`) in `dir`.
    pub fn start(gateway_bin: &std::path::Path, dir: &std::path::Path, extra: &str) -> Self {
        let keys = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("keys-example");
        let data_dir = dir.join("data");
        let config = dir.join("gateway.toml");
        let pow = if extra.contains("[proof_of_work]") {
            ""
        } else {
            "[proof_of_work]\nenabled = false\n"
        };
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nreviewer_certs = [\"{}\"]\n\
                 [[couriers]]\ncert = \"{}\"\n[tls]\nmode = \"self-signed\"\n{pow}{extra}\n\
                 [rate_limits]\nsubmissions_per_minute = 1000000\nsubmission_burst = 100000\n\
                 requests_per_second = 1000000\nrequest_burst = 1000000\n\
                 per_connection_per_second = 1000000\nper_connection_burst = 1000000\n\
                 max_requests_per_connection = 1000000\nkeys_per_second = 1000000\n\
                 keys_burst = 1000000\nchallenges_per_second = 1000000\n\
                 challenge_burst = 1000000\ncourier_per_second = 1000000\n\
                 courier_burst = 1000000\nchecks_per_minute = 1000000\ncheck_burst = 1000000\n",
                data_dir.display(),
                keys.join("demo-reviewer-1.pub.asc").display(),
                keys.join("demo-courier-1.pub.asc").display(),
            ),
        )
        .expect("config");
        let mut gateway = BenchGateway {
            child: None,
            url: String::new(),
            ca: data_dir.join("tls/cert.pem"),
            data_dir,
            config,
            gateway_bin: gateway_bin.to_path_buf(),
        };
        gateway.restart();
        gateway
    }

    /// Stops the gateway (if running) and starts it again on the same data directory.
    pub fn restart(&mut self) {
        use std::io::BufRead;
        self.stop();
        let mut child = std::process::Command::new(&self.gateway_bin)
            .args(["serve", "--config"])
            .arg(&self.config)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("gateway");
        let stdout = child.stdout.take().expect("stdout");
        let mut url = String::new();
        for line in std::io::BufReader::new(stdout).lines() {
            if let Some(u) = line.expect("line").strip_prefix("Listening on ") {
                url = u.to_string();
                break;
            }
        }
        assert!(!url.is_empty(), "the gateway did not start");
        self.child = Some(child);
        self.url = url;
    }

    /// Stops the gateway (the store is free for the benchmark to open).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for BenchGateway {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The secret subkey of `cert` with `flags`, unlocked with `passphrase`.
pub fn subkey(
    cert: &Cert,
    passphrase: &str,
    flags: openpgp::types::KeyFlags,
) -> openpgp::crypto::KeyPair {
    cert.keys()
        .with_policy(&StandardPolicy::new(), None)
        .secret()
        .key_flags(flags)
        .next()
        .expect("a subkey with these flags")
        .key()
        .clone()
        .decrypt_secret(&passphrase.into())
        .expect("passphrase")
        .into_keypair()
        .expect("a usable key")
}

/// A small seeded generator (splitmix64) for synthetic data in tests and benchmarks: the same
/// seed gives the same data everywhere.
pub struct SeededRng(pub u64);

impl SeededRng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}
