//! Every kind of bad configuration stops the gateway before it listens, with one clear line per
//! problem and exit code 2.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use crate::common::*;
use sequoia_openpgp::cert::prelude::*;
use sequoia_openpgp::serialize::SerializeInto;

fn write_cert(path: &Path, cert: &Cert) {
    std::fs::write(path, cert.armored().to_vec().expect("armor")).expect("write");
}

/// Runs `check-config` and `serve` on the config; both must fail with code 2 and say `expect`.
fn refused(dir: &Path, config: &str, expect: &[&str]) {
    let path = dir.join("bad.toml");
    std::fs::write(&path, config).expect("write");
    for args in [vec!["check-config", "--config"], vec!["serve", "--config"]] {
        let out = run(Command::new(gateway_bin()).args(&args).arg(&path));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        for needle in expect {
            assert!(err.contains(needle), "{args:?}: {needle:?} not in:\n{err}");
        }
        assert!(!stdout(&out).contains("Listening"), "it must not start");
        for line in err.lines().skip(1) {
            assert!(
                line.starts_with("  config: "),
                "one problem per line: {line:?}"
            );
        }
    }
}

fn config_with_certs(dir: &Path, certs: &[&Path]) -> String {
    let list = certs
        .iter()
        .map(|p| format!("\"{}\"", p.display()))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nreviewer_certs = [{list}]\n",
        dir.join("data").display()
    )
}

#[test]
fn bad_configs_are_refused_with_a_line_each() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let good = demo_pub(1);

    // A good config passes, so the failures below are about what they change.
    let ok = d.join("ok.toml");
    std::fs::write(&ok, config_with_certs(d, &[&good])).expect("write");
    let out = run(Command::new(gateway_bin())
        .args(["check-config", "--config"])
        .arg(&ok));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("OK (1 reviewer keys"));

    refused(
        d,
        &format!(
            "{}\n[limits]\nmax_submision_bytes = 5\n",
            config_with_certs(d, &[&good])
        ),
        &["unknown field `max_submision_bytes`", "line 6"],
    );
    refused(
        d,
        "listen = \"127.0.0.1:0\"\ndata_dir = [",
        &["config: ", "line 2"],
    );
    refused(
        d,
        &config_with_certs(d, &[&d.join("missing.asc")]),
        &["missing.asc: cannot read"],
    );

    let garbage = d.join("garbage.asc");
    std::fs::write(&garbage, "not a key").expect("write");
    refused(
        d,
        &config_with_certs(d, &[&garbage]),
        &["garbage.asc: not an OpenPGP certificate"],
    );

    let (signing_only, _) = CertBuilder::new()
        .add_userid("signing only")
        .add_signing_subkey()
        .generate()
        .expect("keygen");
    let signing_path = d.join("signing.asc");
    write_cert(
        &signing_path,
        &signing_only.clone().strip_secret_key_material(),
    );
    refused(
        d,
        &config_with_certs(d, &[&signing_path]),
        &["has no valid encryption-capable subkey"],
    );

    let (expired, _) = CertBuilder::new()
        .add_userid("expired")
        .add_transport_encryption_subkey()
        .set_creation_time(SystemTime::now() - Duration::from_secs(10 * 86_400))
        .set_validity_period(Duration::from_secs(86_400))
        .generate()
        .expect("keygen");
    let expired_path = d.join("expired.asc");
    write_cert(&expired_path, &expired.strip_secret_key_material());
    refused(
        d,
        &config_with_certs(d, &[&expired_path]),
        &["expired.asc", "has expired"],
    );

    let (revoked, revocation) = CertBuilder::new()
        .add_userid("revoked")
        .add_transport_encryption_subkey()
        .generate()
        .expect("keygen");
    let (revoked, _) = revoked
        .strip_secret_key_material()
        .insert_packets(revocation)
        .expect("revoke");
    let revoked_path = d.join("revoked.asc");
    write_cert(&revoked_path, &revoked);
    refused(
        d,
        &config_with_certs(d, &[&revoked_path]),
        &["revoked.asc", "is revoked"],
    );

    refused(
        d,
        &config_with_certs(d, &[&demo_sec(1)]),
        &["contains secret key material"],
    );
    refused(
        d,
        &config_with_certs(d, &[&good, &good]),
        &["is listed twice"],
    );
    refused(
        d,
        &format!(
            "{}\n[tls]\nmode = \"plain-http\"\n",
            config_with_certs(d, &[&good]).replace("127.0.0.1:0", "0.0.0.0:8080")
        ),
        &["only allowed on a loopback address"],
    );
    refused(
        d,
        &format!(
            "{}\n[tls]\nmode = \"files\"\ncert = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"\n",
            config_with_certs(d, &[&good])
        ),
        &["tls certificate /nonexistent/cert.pem: file not found", "tls private key /nonexistent/key.pem"],
    );
    // A TLS certificate file that is not a certificate.
    let junk_cert = d.join("junk-cert.pem");
    std::fs::write(&junk_cert, "not a certificate").expect("write");
    let tls_config = format!(
        "{}\n[tls]\nmode = \"files\"\ncert = \"{}\"\nkey = \"{}\"\n",
        config_with_certs(d, &[&good]),
        junk_cert.display(),
        junk_cert.display()
    );
    let path = d.join("tls.toml");
    std::fs::write(&path, &tls_config).expect("write");
    for args in [vec!["check-config", "--config"], vec!["serve", "--config"]] {
        let out = run(Command::new(gateway_bin()).args(&args).arg(&path));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("junk-cert.pem"), "{}", stderr(&out));
    }

    // Several problems at once: all of them, one line each.
    refused(
        d,
        &format!(
            "{}\n[rate_limits]\nmax_concurrent_uploads = 0\n[limits]\nmax_submission_bytes = 0\n",
            config_with_certs(d, &[&garbage, &expired_path])
        ),
        &[
            "max_concurrent_uploads must be at least 1",
            "max_submission_bytes must be between",
            "garbage.asc",
            "expired.asc",
        ],
    );
}

#[test]
fn a_key_in_the_wrong_role_is_refused_with_one_line_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let courier = repo().join("keys-example/demo-courier-1.pub.asc");
    let with_couriers = |reviewers: &[&Path], couriers: &[&Path]| {
        let mut text = config_with_certs(d, reviewers);
        for c in couriers {
            text.push_str(&format!("\n[[couriers]]\ncert = \"{}\"\n", c.display()));
        }
        text
    };
    // A reviewer's offline key listed as a courier.
    refused(
        d,
        &with_couriers(&[&demo_pub(1)], &[&demo_pub(2)]),
        &[
            "couriers:",
            "demo-reviewer-2.pub.asc",
            "is not a courier key",
            "keygen --courier",
        ],
    );
    // A courier key listed as a reviewer.
    refused(
        d,
        &with_couriers(&[&demo_pub(1), &courier], &[]),
        &[
            "reviewer_certs:",
            "demo-courier-1.pub.asc",
            "is a courier key",
            "[[couriers]]",
        ],
    );
    // An unknown field in a courier entry.
    refused(
        d,
        &format!(
            "{}\n[[couriers]]\ncert = \"{}\"\nname = \"x\"\n",
            config_with_certs(d, &[&demo_pub(1)]),
            courier.display()
        ),
        &["name"],
    );
    // The right roles pass.
    let ok = d.join("ok.toml");
    std::fs::write(&ok, with_couriers(&[&demo_pub(1)], &[&courier])).expect("write");
    let out = run(Command::new(gateway_bin())
        .args(["check-config", "--config"])
        .arg(&ok));
    assert!(out.status.success(), "{}", stderr(&out));
}
