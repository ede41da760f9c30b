//! Writes the shared vectors of signed key lists (`docs/trust-v1.md`, part 1) into
//! `tests/vectors/key-lists/` (see its README.md): signed with the demo organisation key over the
//! demo reviewers and courier, and with a new organisation key for the vectors that need another
//! one. The files are checked in and both test suites read them; run it again when the key
//! list's format changes: `cargo run --example make_key_list_vectors`.

use std::path::Path;

fn vectors(area: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(area)
}

fn main() {
    use resguardo::submission::UtcDay;
    use resguardo::trust::keylist::{
        sign_key_list, KeyEntry, KeyList, PageManifest, SignedKeyList, LIST_FORMAT,
    };
    use sequoia_openpgp::crypto::Password;
    use sequoia_openpgp::parse::Parse;
    use sequoia_openpgp::Cert;

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let keys = root.join("keys-example");
    let dir = vectors("key-lists");
    std::fs::create_dir_all(&dir).expect("dir");
    for entry in std::fs::read_dir(&dir).expect("dir") {
        let path = entry.expect("entry").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("ok_") || name.starts_with("fail_") {
            std::fs::remove_file(&path).expect("remove an old vector");
        }
    }
    let cert = |name: &str| Cert::from_file(keys.join(name)).expect(name);
    let armored = |name: &str| std::fs::read_to_string(keys.join(name)).expect(name);
    let demo_org = cert("demo-org.sec.asc");
    let demo_pass = Password::from(
        std::fs::read_to_string(keys.join("demo-org.passphrase"))
            .expect("passphrase")
            .lines()
            .next()
            .unwrap_or(""),
    );
    let other_org = resguardo::testing::org_key("Otra organización (vectores)");
    let other_pass = Password::from("test");
    let entry = |file: &str| {
        let c = cert(file);
        KeyEntry {
            fingerprint: c.fingerprint().to_hex(),
            name: String::from_utf8_lossy(c.userids().next().expect("user id").userid().value())
                .into_owned(),
            cert: armored(file),
        }
    };
    let reviewer_1 = entry("demo-reviewer-1.pub.asc");
    let reviewer_2 = entry("demo-reviewer-2.pub.asc");
    let courier = entry("demo-courier-1.pub.asc");
    let day = |s: &str| s.parse::<UtcDay>().expect("day");
    let list = |org: &Cert| KeyList {
        format: LIST_FORMAT.into(),
        organisation: org.fingerprint().to_hex(),
        version: 3,
        issued: day("2026-11-01"),
        expires: day("2027-01-31"),
        reviewers: vec![reviewer_1.clone(), reviewer_2.clone()],
        couriers: vec![courier.clone()],
        page: PageManifest::embedded(),
    };
    let sign = |org: &Cert, pass: &Password, list: &KeyList| {
        sign_key_list(org, Some(pass), list).expect("sign")
    };
    let demo = |list: &KeyList| sign(&demo_org, &demo_pass, list);
    let pin = demo_org.fingerprint().to_hex();
    let today = "2026-12-01";
    let mut written = 0;
    let mut write = |name: &str, about: &str, pin: &str, today: &str, signed: &SignedKeyList| {
        let (expect, vouches) = match name.strip_prefix("fail_") {
            Some(_) => (about.split(':').next().unwrap().to_string(), None),
            None => {
                let list: KeyList = serde_json::from_str(&signed.key_list).expect("list");
                let fps =
                    |e: &[KeyEntry]| e.iter().map(|e| e.fingerprint.clone()).collect::<Vec<_>>();
                let vouches = serde_json::json!({
                    "version": list.version,
                    "reviewers": fps(&list.reviewers),
                    "couriers": fps(&list.couriers),
                });
                ("ok".to_string(), Some(vouches))
            }
        };
        let about = match name.starts_with("fail_") {
            true => about.split_once(": ").map_or(about, |(_, a)| a),
            false => about,
        };
        let mut vector = serde_json::json!({
            "about": about,
            "pin": pin,
            "today": today,
            "signed": signed,
            "expect": expect,
        });
        if let Some(vouches) = vouches {
            vector["vouches"] = vouches;
        }
        let mut bytes = serde_json::to_vec_pretty(&vector).expect("json");
        bytes.push(b'\n');
        std::fs::write(dir.join(format!("{name}.json")), bytes).expect("write");
        written += 1;
    };

    let genuine = demo(&list(&demo_org));
    write(
        "ok_demo_list",
        "the demo organisation's list: two reviewers and a courier",
        &pin,
        today,
        &genuine,
    );
    write(
        "ok_on_its_last_valid_day",
        "expires is the last valid day (UTC), still valid on it",
        &pin,
        "2027-01-31",
        &genuine,
    );
    let mut no_couriers = list(&demo_org);
    no_couriers.couriers.clear();
    write(
        "ok_no_couriers",
        "a list without couriers (no triage envelope is sealed)",
        &pin,
        today,
        &demo(&no_couriers),
    );

    write(
        "fail_expired",
        "expired: the day after its last valid day",
        &pin,
        "2027-02-01",
        &genuine,
    );
    write(
        "fail_other_organisation",
        "not_pinned: a list that verifies, signed by another organisation key than the pinned one",
        &pin,
        today,
        &sign(&other_org, &other_pass, &list(&other_org)),
    );
    let mut altered = genuine.clone();
    altered.key_list = altered
        .key_list
        .replacen("\"version\":3", "\"version\":9", 1);
    assert_ne!(altered.key_list, genuine.key_list);
    write(
        "fail_altered_text",
        "bad_signature: the signed text changed after signing (version 3 made 9)",
        &pin,
        today,
        &altered,
    );
    let mut other_signer = sign(&other_org, &other_pass, &list(&other_org));
    other_signer.key_list = genuine.key_list.clone();
    other_signer.signature = sign_text(&other_org, &other_pass, &genuine.key_list);
    other_signer.organisation_cert = genuine.organisation_cert.clone();
    write(
        "fail_signed_by_another_key",
        "bad_signature: the demo organisation's certificate and text, signed by another key",
        &pin,
        today,
        &other_signer,
    );
    let mut mismatch = list(&demo_org);
    mismatch.reviewers[0].fingerprint = reviewer_2.fingerprint.clone();
    write(
        "fail_fingerprint_mismatch",
        "fingerprint_mismatch: reviewer 1's certificate listed under reviewer 2's fingerprint",
        &pin,
        today,
        &demo(&mismatch),
    );
    let mut duplicate = list(&demo_org);
    duplicate.reviewers.push(reviewer_1.clone());
    write(
        "fail_duplicate",
        "duplicate: reviewer 1 listed twice",
        &pin,
        today,
        &demo(&duplicate),
    );
    let mut courier_twice = list(&demo_org);
    courier_twice.reviewers.push(courier.clone());
    write(
        "fail_duplicate_across_roles",
        "duplicate: the courier also listed as a reviewer",
        &pin,
        today,
        &demo(&courier_twice),
    );
    let mut zero = list(&demo_org);
    zero.version = 0;
    write(
        "fail_version_zero",
        "version_zero: versions start at 1",
        &pin,
        today,
        &demo(&zero),
    );
    let mut dates = list(&demo_org);
    dates.issued = day("2027-02-01");
    write(
        "fail_issued_after_expiry",
        "bad_dates: issued after its last valid day",
        &pin,
        today,
        &demo(&dates),
    );
    let mut none = list(&demo_org);
    none.reviewers.clear();
    write(
        "fail_no_reviewers",
        "count: a list must name 1 to 32 reviewers",
        &pin,
        today,
        &demo(&none),
    );
    let mut secret = list(&demo_org);
    secret.reviewers[0].cert = armored("demo-reviewer-1.sec.asc");
    write(
        "fail_secret_key_material",
        "secret_key_material: a reviewer's secret key in the list",
        &pin,
        today,
        &demo(&secret),
    );
    let mut wrong = genuine.clone();
    let mut text: serde_json::Value = serde_json::from_str(&genuine.key_list).expect("list");
    text["organisation"] = other_org.fingerprint().to_hex().into();
    wrong.key_list = serde_json::to_string(&text).expect("json");
    wrong.signature = sign_text(&demo_org, &demo_pass, &wrong.key_list);
    write(
        "fail_wrong_organisation",
        "wrong_organisation: signed by the demo key, but naming another organisation",
        &pin,
        today,
        &wrong,
    );
    let mut other_format = list(&demo_org);
    other_format.format = "resguardo.key-list/2".into();
    write(
        "fail_other_format",
        "format: a key list of a format this reader does not know",
        &pin,
        today,
        &demo(&other_format),
    );
    let mut unknown = genuine.clone();
    let mut text: serde_json::Value = serde_json::from_str(&genuine.key_list).expect("list");
    text["note"] = "an unknown field".into();
    unknown.key_list = serde_json::to_string(&text).expect("json");
    unknown.signature = sign_text(&demo_org, &demo_pass, &unknown.key_list);
    write(
        "fail_unknown_field",
        "malformed: a signed key list with a field the format does not have",
        &pin,
        today,
        &unknown,
    );
    assert!(written >= 16);

    /// A detached binary signature by `org`'s primary key over `text`, armored.
    fn sign_text(org: &Cert, pass: &Password, text: &str) -> String {
        use sequoia_openpgp::packet::signature::SignatureBuilder;
        use sequoia_openpgp::serialize::Serialize as _;
        use sequoia_openpgp::types::SignatureType;
        let key = org
            .primary_key()
            .key()
            .clone()
            .parts_into_secret()
            .expect("secret");
        let key = key.decrypt_secret(pass).expect("passphrase");
        let mut signer = key.into_keypair().expect("keypair");
        let sig = SignatureBuilder::new(SignatureType::Binary)
            .sign_message(&mut signer, text.as_bytes())
            .expect("sign");
        let mut out = Vec::new();
        let mut w =
            sequoia_openpgp::armor::Writer::new(&mut out, sequoia_openpgp::armor::Kind::Signature)
                .expect("armor");
        sequoia_openpgp::Packet::from(sig)
            .serialize(&mut w)
            .expect("serialize");
        w.finalize().expect("armor");
        String::from_utf8(out).expect("armored")
    }
}
