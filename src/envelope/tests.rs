use std::sync::OnceLock;

use sequoia_openpgp::serialize::SerializeInto;

use sequoia_openpgp::cert::Cert;

use super::*;
use crate::keyring::KeyProfile;
use crate::testing::*;

struct Keys {
    alice: Cert,
    bob: Cert,
    modern: Cert,
    stranger: Cert,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        alice: reviewer_key("alice", KeyProfile::Compatible),
        bob: reviewer_key("bob", KeyProfile::Compatible),
        modern: reviewer_key("modern", KeyProfile::Rfc9580),
        stranger: reviewer_key("stranger", KeyProfile::Compatible),
    })
}

fn ours() -> RecipientSet {
    let k = keys();
    keyring(&[&k.alice, &k.bob, &k.modern]).recipient_set()
}

fn run(body: &[u8]) -> (Result<SealedEnvelope, EnvelopeError>, Vec<u8>) {
    let mut sink = Vec::new();
    let result = check(body, &ours(), &mut sink);
    (result, sink)
}

fn code(body: &[u8]) -> &'static str {
    match run(body).0 {
        Ok(_) => "accepted",
        Err(e) => e.code(),
    }
}

#[test]
fn accepts_seipd_v1_to_all_reviewers_and_copies_it_verbatim() {
    let k = keys();
    let msg = seal(&[&k.alice, &k.bob], b"report");
    let (result, sink) = run(&msg);
    let env = result.expect("accepted");
    assert_eq!(env.recipients, 2);
    assert_eq!(env.container, Container::SeipdV1);
    assert_eq!(sink, msg);
}

#[test]
fn accepts_seipd_v2_for_an_rfc9580_key() {
    let k = keys();
    let msg = seal(&[&k.modern], b"report");
    let (result, sink) = run(&msg);
    assert_eq!(result.expect("accepted").container, Container::SeipdV2);
    assert_eq!(sink, msg);
}

#[test]
fn armored_input_is_stored_binary() {
    let k = keys();
    let armored = seal_armored(&[&k.alice], b"report");
    assert!(armored.starts_with(b"-----BEGIN PGP MESSAGE-----"));
    let (result, sink) = run(&armored);
    result.expect("accepted");
    assert_eq!(sink[0] & 0x80, 0x80, "stored message is binary");
    // The stored binary is the same message: it re-parses to the same packets.
    assert_eq!(split(&sink).len(), 2);
}

#[test]
fn a_large_message_streams_through() {
    let k = keys();
    let plaintext = vec![7u8; 3 * 1024 * 1024];
    let msg = seal(&[&k.alice], &plaintext);
    let (result, sink) = run(&msg);
    result.expect("accepted");
    assert_eq!(sink.len(), msg.len());
}

#[test]
fn refuses_what_is_not_a_sealed_message() {
    let k = keys();
    let sealed = seal(&[&k.alice], b"report");
    let parts = split(&sealed);
    let (pkesk, seipd) = (parts[0].clone(), parts[1].clone());
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", vec![], "empty_body"),
        ("text", b"hello reviewers".to_vec(), "not_openpgp"),
        ("json", br#"{"report":"x"}"#.to_vec(), "not_openpgp"),
        ("zeros", vec![0u8; 64], "not_openpgp"),
        ("whitespace", b"  \n\n ".to_vec(), "bad_armor"),
        ("high garbage", vec![0xFF; 64], "not_openpgp"),
        ("literal", literal(b"plain report"), "plaintext"),
        ("compressed", compressed(b"plain report"), "compressed"),
        ("signed only", signed(b"plain report"), "signed_only"),
        (
            "password only",
            seal_with_password(&[], b"report"),
            "password_encrypted",
        ),
        (
            "password and key",
            seal_with_password(&[&k.alice], b"report"),
            "password_encrypted",
        ),
        (
            "wildcard recipient",
            seal_hidden_recipient(&k.alice, b"report"),
            "hidden_recipient",
        ),
        (
            "wildcard after rewrite",
            hide_recipients(&sealed),
            "hidden_recipient",
        ),
        (
            "unknown recipient",
            seal(&[&k.stranger], b"report"),
            "unknown_recipient",
        ),
        (
            "one unknown among known",
            seal(&[&k.alice, &k.stranger], b"report"),
            "unknown_recipient",
        ),
        (
            "container without recipients",
            packets(std::slice::from_ref(&seipd)),
            "no_recipients",
        ),
        (
            "recipients without container",
            packets(std::slice::from_ref(&pkesk)),
            "truncated",
        ),
        (
            "two containers",
            packets(&[pkesk.clone(), seipd.clone(), seipd.clone()]),
            "trailing_data",
        ),
        (
            "a second message after the first",
            [sealed.clone(), sealed.clone()].concat(),
            "trailing_data",
        ),
        (
            "literal after the container",
            [sealed.clone(), literal(b"x")].concat(),
            "trailing_data",
        ),
        (
            "garbage after the container",
            [sealed.clone(), vec![0xFF; 10]].concat(),
            "trailing_data",
        ),
        (
            "one zero byte after the container",
            [sealed.clone(), vec![0]].concat(),
            "trailing_data",
        ),
        (
            "old SED without integrity",
            [
                packets(std::slice::from_ref(&pkesk)),
                raw_packet(9, &[0x55; 40]),
            ]
            .concat(),
            "no_integrity_protection",
        ),
        (
            "marker packet first",
            [raw_packet(10, b"PGP"), sealed.clone()].concat(),
            "unexpected_packet",
        ),
        (
            "a public certificate",
            public_cert_bytes(&k.alice),
            "unexpected_packet",
        ),
        (
            "armored public key block",
            k.alice
                .clone()
                .strip_secret_key_material()
                .armored()
                .to_vec()
                .expect("armor"),
            "bad_armor",
        ),
        (
            "armor header only",
            b"-----BEGIN PGP MESSAGE-----\n\n".to_vec(),
            "bad_armor",
        ),
        (
            "armor with garbage body",
            b"-----BEGIN PGP MESSAGE-----\n\n!!!!****\n-----END PGP MESSAGE-----\n".to_vec(),
            "bad_armor",
        ),
    ];
    for (name, body, expected) in cases {
        let got = code(&body);
        assert_eq!(got, expected, "case {name:?}");
    }
}

#[test]
fn every_truncation_is_refused() {
    let k = keys();
    let sealed = seal(&[&k.alice, &k.bob], &[1u8; 5000]);
    // Every prefix length near the packet boundaries, and a sample through the body.
    let mut cuts: Vec<usize> = (1..40).collect();
    cuts.extend((40..sealed.len()).step_by(97));
    cuts.extend(sealed.len() - 40..sealed.len());
    for cut in cuts {
        let got = code(&sealed[..cut]);
        assert!(
            got == "truncated" || got == "malformed_packet" || got == "not_openpgp",
            "cut at {cut} of {}: {got}",
            sealed.len()
        );
        assert_ne!(got, "accepted");
    }
}

#[test]
fn truncated_armor_is_refused() {
    let k = keys();
    let armored = seal_armored(&[&k.alice], &[3u8; 3000]);
    for cut in [40, armored.len() / 2, armored.len() - 30] {
        let got = code(&armored[..cut]);
        assert_ne!(got, "accepted", "cut at {cut}");
    }
}

#[test]
fn a_transport_failure_is_reported_as_io_not_as_bad_input() {
    struct Failing(Vec<u8>, usize);
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.1 >= self.0.len() / 2 {
                return Err(io::Error::new(io::ErrorKind::ConnectionReset, "gone"));
            }
            let n = buf.len().min(self.0.len() / 2 - self.1).min(100);
            buf[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
            self.1 += n;
            Ok(n)
        }
    }
    let k = keys();
    let sealed = seal(&[&k.alice], &[1u8; 20_000]);
    let mut sink = Vec::new();
    let err = check(Failing(sealed.clone(), 0), &ours(), &mut sink).expect_err("fails");
    assert_eq!(err.code(), "io_error", "{err}");

    let armored = seal_armored(&[&k.alice], &[1u8; 20_000]);
    let err = check(Failing(armored, 0), &ours(), &mut sink).expect_err("fails");
    assert_eq!(err.code(), "io_error", "{err}");
}

#[test]
fn a_sink_failure_is_reported_as_io() {
    struct Full;
    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::new(io::ErrorKind::StorageFull, "no space"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let k = keys();
    let sealed = seal(&[&k.alice], b"report");
    let err = check(&sealed[..], &ours(), Full).expect_err("fails");
    match err {
        EnvelopeError::Io(e) => assert_eq!(e.kind(), io::ErrorKind::StorageFull),
        other => panic!("expected io error, got {other:?}"),
    }
}

/// Regression: PKESKs that could never open the container (an RSA session key for an X25519
/// subkey, a v6 session key before a SEIPD v1) were accepted, and anything after an armored
/// message was silently dropped.
#[test]
fn session_keys_must_match_the_key_and_the_container_and_armor_must_end_the_body() {
    use sequoia_openpgp::crypto::mpi::{Ciphertext, MPI};
    use sequoia_openpgp::packet::pkesk::PKESK3;
    use sequoia_openpgp::types::PublicKeyAlgorithm;
    let k = keys();
    let v1 = split(&seal(&[&k.alice], b"report"));
    let v2 = split(&seal(&[&k.modern], b"report"));
    let (pkesk_v3, seipd_v1) = (v1[0].clone(), v1[1].clone());
    let (pkesk_v6, seipd_v2) = (v2[0].clone(), v2[1].clone());
    let alice_subkey = match &pkesk_v3 {
        Packet::PKESK(p) => match p.recipient() {
            Some(sequoia_openpgp::KeyHandle::KeyID(id)) => id,
            other => panic!("expected a key ID, got {other:?}"),
        },
        other => panic!("expected a PKESK, got {other:?}"),
    };
    let rsa = Packet::from(
        PKESK3::new(
            Some(alice_subkey),
            PublicKeyAlgorithm::RSAEncryptSign,
            Ciphertext::RSA {
                c: MPI::new(&[0x5a; 256]),
            },
        )
        .expect("pkesk"),
    );
    let armored = seal_armored(&[&k.alice], b"report");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "RSA session key to an X25519 subkey",
            packets(&[rsa, seipd_v1.clone()]),
            "pkesk_algorithm_mismatch",
        ),
        (
            "v6 session key before SEIPD v1",
            packets(&[pkesk_v6.clone(), seipd_v1.clone()]),
            "pkesk_version_mismatch",
        ),
        (
            "v3 session key before SEIPD v2",
            packets(&[pkesk_v3.clone(), seipd_v2.clone()]),
            "pkesk_version_mismatch",
        ),
        (
            "v3 and v6 session keys together",
            packets(&[pkesk_v3.clone(), pkesk_v6.clone(), seipd_v2.clone()]),
            "pkesk_version_mismatch",
        ),
        (
            "a second armor block",
            [armored.clone(), armored.clone()].concat(),
            "data_after_armor",
        ),
        (
            "text after the armor",
            [armored.clone(), b"thanks!\n".to_vec()].concat(),
            "data_after_armor",
        ),
        (
            "whitespace after the armor",
            [armored.clone(), b"\n\n   \r\n".to_vec()].concat(),
            "accepted",
        ),
        (
            "matching v3 and v1",
            packets(&[pkesk_v3, seipd_v1]),
            "accepted",
        ),
        (
            "matching v6 and v2",
            packets(&[pkesk_v6, seipd_v2]),
            "accepted",
        ),
    ];
    for (name, body, expected) in cases {
        assert_eq!(code(&body), expected, "case {name:?}");
    }
}
