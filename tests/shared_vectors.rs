//! The rules that live in two languages, pinned by the checked-in vectors in `tests/vectors/`:
//! answers → report (`report/`), payload v1 layout and padding (`payload/`), field-id validity
//! (`field-ids.json`). `tests/browser/vectors.test.mjs` runs the page's JavaScript over the same
//! files. Vectors are named by outcome (`ok_*`, `fail_*`, as age's testdata); a new file is picked
//! up by both harnesses without code.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use resguardo::form::{AnswerError, FormDefinition, ReceivedFile};
use resguardo::payload::{self, padded_length, write_payload, Report};
use serde::Deserialize;

fn vectors(area: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(area)
}

/// Every `ok_*` and `fail_*` file of an area, by name, with its parsed content.
fn cases<T: for<'de> Deserialize<'de>>(area: &str) -> Vec<(String, T)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(vectors(area)).expect("vector folder") {
        let path = entry.expect("entry").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.starts_with("ok_") || name.starts_with("fail_")) {
            continue;
        }
        let text = std::fs::read(&path).expect("vector");
        let case = serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        out.push((name, case));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 2, "no vectors in {area}");
    out
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportCase {
    #[allow(dead_code)]
    about: String,
    language: Option<String>,
    sealed_by: String,
    answers: BTreeMap<String, Vec<String>>,
    files: Vec<VectorFile>,
    report: Option<serde_json::Value>,
    missing: Option<Vec<String>>,
    not_allowed: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VectorFile {
    name: String,
    size: u64,
    sha256: String,
    media_type: String,
}

#[test]
fn answers_make_the_report_the_vectors_give() {
    let form = FormDefinition::parse(&std::fs::read(vectors("report/form.json")).unwrap())
        .expect("the vectors' form");
    for (name, case) in cases::<ReportCase>("report") {
        let files: Vec<ReceivedFile> = case
            .files
            .iter()
            .map(|f| ReceivedFile {
                name: f.name.clone(),
                size: f.size,
                sha256: f.sha256.clone(),
                media_type: f.media_type.clone(),
            })
            .collect();
        let got = form.build_report(
            case.language.as_deref(),
            &case.sealed_by,
            &case.answers,
            &files,
        );
        match (got, case.report, case.missing, case.not_allowed) {
            (Ok(report), Some(expected), None, None) => {
                assert!(
                    name.starts_with("ok_"),
                    "{name}: a report from a fail_ vector"
                );
                assert_eq!(serde_json::to_value(&report).unwrap(), expected, "{name}");
            }
            (Err(AnswerError::Missing(ids)), None, Some(expected), None) => {
                assert!(name.starts_with("fail_missing_"), "{name}");
                assert_eq!(ids, expected, "{name}");
            }
            (Err(AnswerError::NotAllowed(id)), None, None, Some(expected)) => {
                assert!(name.starts_with("fail_not_allowed_"), "{name}");
                assert_eq!(id, expected, "{name}");
            }
            (got, ..) => panic!("{name}: got {got:?}, which is not what the vector expects"),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PayloadCase {
    #[allow(dead_code)]
    about: String,
    report_json: String,
    /// The byte each attachment is made of (`size` copies, as the report gives).
    fill: Vec<u8>,
    entries: Option<Vec<Entry>>,
    total: Option<u64>,
    sha256: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    offset: u64,
    size: u64,
}

#[test]
fn payloads_have_the_layout_and_bytes_the_vectors_give() {
    for (name, case) in cases::<PayloadCase>("payload") {
        let report: Report = serde_json::from_str(&case.report_json).expect(&name);
        // The writer serializes the report itself: the vector's text is what it must write.
        assert_eq!(
            serde_json::to_string(&report).unwrap(),
            case.report_json,
            "{name}"
        );
        let sources = report
            .attachments
            .iter()
            .zip(&case.fill)
            .map(|(a, &byte)| Box::new(std::io::repeat(byte).take(a.size)) as Box<dyn Read>)
            .collect();
        let written = write_payload(Vec::new(), &report, sources);
        let Some(expected_entries) = case.entries else {
            let err = written.err().unwrap_or_else(|| panic!("{name}: written"));
            let wanted = case.error.expect("error");
            assert!(err.to_string().contains(&wanted), "{name}: {err}");
            assert!(name.starts_with("fail_"), "{name}");
            continue;
        };
        let (archive, total) = written.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(Some(total), case.total, "{name}");
        assert_eq!(archive.len() as u64, total, "{name}");
        let mut tar = tar::Archive::new(&archive[..]);
        let entries: Vec<Entry> = tar
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                Entry {
                    name: e.path().unwrap().to_string_lossy().into_owned(),
                    offset: e.raw_header_position(),
                    size: e.size(),
                }
            })
            .collect();
        assert_eq!(entries, expected_entries, "{name}");
        let digest = hex::encode(ring::digest::digest(&ring::digest::SHA256, &archive));
        assert_eq!(Some(digest), case.sha256, "{name}: the archive's bytes");
        assert!(name.starts_with("ok_"), "{name}");
    }
}

#[derive(Deserialize)]
struct PadmeTable {
    lengths: Vec<(u64, u64)>,
}

#[test]
fn padme_lengths_are_the_vectors() {
    let table: PadmeTable =
        serde_json::from_slice(&std::fs::read(vectors("payload/padme.json")).unwrap()).unwrap();
    assert!(table.lengths.len() >= 10);
    for (len, padded) in table.lengths {
        assert_eq!(padded_length(len), padded, "{len}");
    }
}

#[derive(Deserialize)]
struct FieldIds {
    ok: Vec<String>,
    fail: Vec<String>,
}

#[test]
fn field_ids_are_valid_exactly_as_the_vectors_say() {
    let ids: FieldIds =
        serde_json::from_slice(&std::fs::read(vectors("field-ids.json")).unwrap()).unwrap();
    for id in &ids.ok {
        assert!(payload::is_valid_field_id(id), "{id:?} should be valid");
    }
    for id in &ids.fail {
        assert!(!payload::is_valid_field_id(id), "{id:?} should be refused");
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TriageCase {
    #[allow(dead_code)]
    about: String,
    report: Option<Report>,
    day: Option<resguardo::submission::UtcDay>,
    note: Option<String>,
    text: Option<String>,
    pad_to: Option<usize>,
    error: Option<String>,
}

#[test]
fn triage_notes_are_the_vectors() {
    use resguardo::triage::{Triage, TriageError, TRIAGE_BYTES};
    for (name, case) in cases::<TriageCase>("triage") {
        if let (Some(report), Some(day), Some(note)) = (&case.report, case.day, &case.note) {
            assert!(name.starts_with("ok_"), "{name}");
            let padded = Triage::of_report(report, day).to_padded();
            assert_eq!(padded.len(), TRIAGE_BYTES, "{name}");
            let text = String::from_utf8(padded.clone()).unwrap();
            assert_eq!(text.trim_end_matches(' '), note, "{name}");
            assert!(!text.contains("CANARY"), "{name}");
            assert!(Triage::from_padded(&padded).is_ok(), "{name}: reads back");
            continue;
        }
        let (text, pad_to, error) = (
            case.text.unwrap(),
            case.pad_to.unwrap(),
            case.error.unwrap(),
        );
        assert!(name.starts_with("fail_"), "{name}");
        let mut bytes = text.into_bytes();
        bytes.resize(pad_to, b' ');
        match (Triage::from_padded(&bytes), error.as_str()) {
            (Err(TriageError::Length(_)), "length")
            | (Err(TriageError::Malformed(_)), "malformed") => {}
            (got, _) => panic!("{name}: got {got:?}, expected a {error} error"),
        }
    }
}

/// `replies/`: the receipt's words and typing rules, the derivations and the locked box
/// (`docs/replies-v1.md`); `tests/browser/vectors.test.mjs` checks the page against the same.
#[test]
fn receipts_derivations_and_boxes_follow_the_vectors() {
    use base64::Engine as _;
    use resguardo::replies::lockbox::{open, seal_with_nonce, BoxContents};
    use resguardo::replies::{Receipt, ReceiptError};
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut seen = 0;
    for (name, case) in cases::<serde_json::Value>("replies") {
        let typed = case["typed"]
            .as_str()
            .or(case["words"].as_str())
            .expect("words");
        let parsed = Receipt::parse(typed);
        if name.starts_with("fail_") {
            let err = parsed.expect_err(&name);
            let matches = match (case["error"].as_str().expect("error"), &err) {
                ("word_count", ReceiptError::WordCount(n)) => {
                    Some(*n as u64) == case["count"].as_u64()
                }
                ("unknown_word", ReceiptError::UnknownWord(p)) => {
                    Some(*p as u64) == case["position"].as_u64()
                }
                ("checksum", ReceiptError::Checksum) => true,
                _ => false,
            };
            assert!(matches, "{name}: {err:?}");
            seen += 1;
            continue;
        }
        let receipt = parsed.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            hex::encode(receipt.entropy()),
            case["entropy"].as_str().unwrap(),
            "{name}"
        );
        if let Some(words) = case["words"].as_str() {
            assert_eq!(receipt.words().join(" "), words, "{name}");
            assert_eq!(
                receipt.locator().to_string(),
                case["locator"].as_str().unwrap()
            );
            assert_eq!(
                hex::encode(receipt.lock_key().expose()),
                case["lock_key"].as_str().unwrap()
            );
            assert_eq!(
                receipt.follow_up_token(),
                case["follow_up_token"].as_str().unwrap()
            );
            let contents: BoxContents =
                serde_json::from_value(case["box_contents"].clone()).unwrap();
            let sealed = b64.decode(case["box"].as_str().unwrap()).unwrap();
            assert_eq!(
                open(&receipt.lock_key(), &receipt.locator(), &sealed).unwrap(),
                contents
            );
            let nonce: [u8; 12] = hex::decode(case["box_nonce"].as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap();
            assert_eq!(
                seal_with_nonce(&receipt.lock_key(), &receipt.locator(), &contents, nonce).unwrap(),
                sealed,
                "{name}: the same box byte for byte"
            );
        }
        seen += 1;
    }
    assert!(seen >= 8);
}

/// `reply-messages/`: sealed replies the reporter's client must judge as the vector says (signed
/// by the team for this conversation, moved from another, signed by a stranger);
/// `tests/browser/vectors.test.mjs` reads the same with openpgp.js.
#[test]
fn replies_are_judged_as_the_vectors_say() {
    use base64::Engine as _;
    use sequoia_openpgp::parse::Parse;
    let b64 = base64::engine::general_purpose::STANDARD;
    for (name, case) in cases::<serde_json::Value>("reply-messages") {
        let reply_key =
            sequoia_openpgp::Cert::from_bytes(case["reply_key"].as_str().unwrap().as_bytes())
                .unwrap();
        let team: Vec<sequoia_openpgp::Cert> = case["team"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| sequoia_openpgp::Cert::from_bytes(c.as_str().unwrap().as_bytes()).unwrap())
            .collect();
        let locator: resguardo::replies::Locator =
            case["locator"].as_str().unwrap().parse().unwrap();
        let sealed = b64.decode(case["sealed"].as_str().unwrap()).unwrap();
        let read = resguardo::replies::read_reply(&sealed, &reply_key, &team, &locator);
        let expect = &case["expect"];
        let reply = read.reply.expect(&name);
        if name.starts_with("ok_") {
            assert_eq!(
                read.verified.expect(&name).to_hex(),
                expect["signer"].as_str().unwrap()
            );
            assert_eq!(Some(u64::from(reply.sequence)), expect["sequence"].as_u64());
            assert_eq!(reply.day.to_string(), expect["day"].as_str().unwrap());
            assert_eq!(reply.message, expect["message"].as_str().unwrap());
        } else {
            let why = read.verified.expect_err(&name);
            let fragment = match expect["why"].as_str().unwrap() {
                "other_conversation" => "another conversation",
                "not_signed" => "not signed",
                other => panic!("{name}: unknown outcome {other}"),
            };
            assert!(why.contains(fragment), "{name}: {why}");
        }
    }
}

/// A `key-lists/` vector: a signed key list, the organisation fingerprint a client pins, the day
/// it is checked on, and the outcome (`ok`, or the refusal's kind: [`key_list_refusal`]).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyListCase {
    #[allow(dead_code)]
    about: String,
    pin: String,
    today: resguardo::submission::UtcDay,
    signed: serde_json::Value,
    expect: String,
    /// For `ok`: the version and the fingerprints the list vouches for.
    vouches: Option<Vouches>,
}

#[derive(Deserialize, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
struct Vouches {
    version: u64,
    reviewers: Vec<String>,
    couriers: Vec<String>,
}

/// The kind of a key list refusal, as the vectors and `static/js/keylist.js` name it.
fn key_list_refusal(e: &resguardo::trust::keylist::KeyListError) -> &'static str {
    use resguardo::trust::keylist::KeyListError as E;
    match e {
        E::TooLarge { .. } => "too_large",
        E::Malformed { .. } => "malformed",
        E::Format { .. } => "format",
        E::OrganisationCert(_) => "organisation_cert",
        E::OrganisationSecret => "organisation_secret",
        E::OrganisationInvalid { .. } => "organisation_invalid",
        E::NotPinned { .. } => "not_pinned",
        E::WrongOrganisation { .. } => "wrong_organisation",
        E::BadSignature { .. } => "bad_signature",
        E::VersionZero => "version_zero",
        E::BadDates { .. } => "bad_dates",
        E::Expired { .. } => "expired",
        E::Count { .. } => "count",
        E::BadEntry { .. } => "bad_entry",
        E::FingerprintMismatch { .. } => "fingerprint_mismatch",
        E::SecretKeyMaterial { .. } => "secret_key_material",
        E::Duplicate { .. } => "duplicate",
        E::Keys(_) => "keys",
        E::BadManifest(_) => "bad_manifest",
        _ => "other",
    }
}

/// `key-lists/`: signed key lists that `SignedKeyList::verify` under the pin must judge as the
/// vector says; `tests/browser/vectors.test.mjs` runs the page's `static/js/keylist.js` over the
/// same files. Written by `cargo run --example make_key_list_vectors`.
#[test]
fn key_lists_are_judged_as_the_vectors_say() {
    use resguardo::trust::keylist::SignedKeyList;
    let mut outcomes = std::collections::BTreeSet::new();
    for (name, case) in cases::<KeyListCase>("key-lists") {
        let pin: sequoia_openpgp::Fingerprint = case.pin.parse().expect("pin");
        let got = SignedKeyList::parse(&serde_json::to_vec(&case.signed).unwrap())
            .and_then(|signed| signed.verify(Some(&pin), case.today));
        match got {
            Ok(list) => {
                assert!(name.starts_with("ok_"), "{name}: verified");
                assert_eq!(case.expect, "ok", "{name}");
                let fingerprints = |members: &[resguardo::keyring::Reviewer]| {
                    members.iter().map(|m| m.fingerprint().to_hex()).collect()
                };
                let vouches = Vouches {
                    version: list.version,
                    reviewers: fingerprints(list.reviewers.reviewers()),
                    couriers: fingerprints(list.couriers.couriers()),
                };
                assert_eq!(Some(vouches), case.vouches, "{name}");
                assert_eq!(list.organisation, pin, "{name}");
            }
            Err(e) => {
                assert!(name.starts_with("fail_"), "{name}: {e}");
                assert_eq!(key_list_refusal(&e), case.expect, "{name}: {e}");
            }
        }
        outcomes.insert(case.expect);
    }
    for outcome in [
        "ok",
        "not_pinned",
        "bad_signature",
        "expired",
        "fingerprint_mismatch",
        "duplicate",
        "version_zero",
    ] {
        assert!(outcomes.contains(outcome), "a vector for {outcome}");
    }
}
