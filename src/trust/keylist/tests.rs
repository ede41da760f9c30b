use super::*;
use crate::keyring::KeyProfile;
use crate::testing::{courier_key, org_key, reviewer_key};

use std::sync::OnceLock;

/// Keys are slow to make; every test shares these.
struct Keys {
    org: Cert,
    other_org: Cert,
    reviewers: [Cert; 2],
    courier: Cert,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        org: org_key("Organisation"),
        other_org: org_key("Attacker"),
        reviewers: [
            reviewer_key("Reviewer 1", KeyProfile::Compatible),
            reviewer_key("Reviewer 2", KeyProfile::Compatible),
        ],
        courier: courier_key("Courier 1"),
    })
}

fn pass() -> Password {
    Password::from("test")
}

fn entry(cert: &Cert) -> KeyEntry {
    let public = cert.clone().strip_secret_key_material();
    let armored = String::from_utf8(public.armored().to_vec().unwrap()).unwrap();
    KeyEntry {
        fingerprint: public.fingerprint().to_hex(),
        name: "someone".into(),
        cert: armored,
    }
}

fn today() -> UtcDay {
    UtcDay::today()
}

fn days(day: UtcDay, n: i32) -> UtcDay {
    UtcDay::from_days_since_epoch(day.days_since_epoch() + n)
}

/// A good list by `keys().org`: both reviewers, the courier, this build's page.
fn list() -> KeyList {
    let k = keys();
    KeyList {
        format: LIST_FORMAT.into(),
        organisation: k.org.fingerprint().to_hex(),
        version: 3,
        issued: today(),
        expires: days(today(), 30),
        reviewers: k.reviewers.iter().map(entry).collect(),
        couriers: vec![entry(&k.courier)],
        page: PageManifest::embedded(),
    }
}

fn signed(list: &KeyList) -> SignedKeyList {
    sign_key_list(&keys().org, Some(&pass()), list).expect("sign")
}

fn pin() -> Fingerprint {
    keys().org.fingerprint()
}

/// Signs `list` as it is, then parses the canonical bytes and verifies them with the pin.
fn verify_list(list: &KeyList) -> Result<VerifiedKeyList, KeyListError> {
    let bytes = signed(list).to_bytes();
    SignedKeyList::parse(&bytes)?.verify(Some(&pin()), today())
}

#[test]
fn a_signed_list_round_trips_and_says_what_it_vouches_for() {
    let k = keys();
    let signed = signed(&list());
    let pretty = serde_json::to_vec_pretty(&signed).unwrap();
    let parsed = SignedKeyList::parse(&pretty).expect("parses");
    assert_eq!(parsed, signed);
    let verified = parsed.verify(Some(&pin()), today()).expect("verifies");
    assert_eq!(verified.organisation, k.org.fingerprint());
    assert!(!verified.organisation_cert.is_tsk());
    assert_eq!(verified.version, 3);
    assert_eq!(verified.issued, today());
    assert_eq!(verified.expires, days(today(), 30));
    let fprs: Vec<_> = verified
        .reviewers
        .reviewers()
        .iter()
        .map(|r| r.fingerprint())
        .collect();
    assert_eq!(
        fprs,
        vec![k.reviewers[0].fingerprint(), k.reviewers[1].fingerprint()]
    );
    assert_eq!(verified.couriers.couriers().len(), 1);
    assert!(verified.vouches_for_this_build());
    assert_eq!(verified.sha256, sha256_hex(&signed.to_bytes()));
    // Without a pin it verifies too (a client then shows the fingerprint to compare).
    assert!(parsed.verify(None, today()).is_ok());
    // The last valid day is valid.
    assert!(parsed.verify(None, days(today(), 30)).is_ok());
    // The keys it vouches for are the same keys.
    verified
        .same_keys(&verified.reviewers, &verified.couriers)
        .expect("same keys");
}

#[test]
fn a_list_from_another_organisation_key_is_refused_however_well_it_verifies() {
    let k = keys();
    let mut list = list();
    list.organisation = k.other_org.fingerprint().to_hex();
    let theirs = sign_key_list(&k.other_org, Some(&pass()), &list).unwrap();
    assert!(
        theirs.verify(None, today()).is_ok(),
        "it verifies on its own"
    );
    let err = theirs.verify(Some(&pin()), today()).unwrap_err();
    assert!(matches!(err, KeyListError::NotPinned { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains(&grouped(&pin())), "{text}");
    assert!(
        text.contains(&grouped(&k.other_org.fingerprint())),
        "{text}"
    );
}

#[test]
fn a_signature_by_another_key_is_refused() {
    let k = keys();
    let ours = signed(&list());
    // The attacker's signature over the same text, carried with our certificate.
    let theirs = sign_text(&k.other_org, Some(&pass()), ours.key_list.clone()).unwrap();
    let forged = SignedKeyList {
        signature: theirs.signature,
        ..ours
    };
    let err = forged.verify(Some(&pin()), today()).unwrap_err();
    assert!(matches!(err, KeyListError::BadSignature { .. }), "{err}");
    assert!(err.to_string().contains("another key"), "{err}");
}

#[test]
fn a_key_list_altered_after_signing_is_refused() {
    let k = keys();
    let ours = signed(&list());
    // Swap a reviewer's certificate for an attacker's key, keeping everything else.
    let attacker = reviewer_key("Attacker", KeyProfile::Compatible);
    let mut altered_list: KeyList = serde_json::from_str(&ours.key_list).unwrap();
    altered_list.reviewers[1] = entry(&attacker);
    let altered = SignedKeyList {
        key_list: serde_json::to_string(&altered_list).unwrap(),
        ..ours.clone()
    };
    let err = altered.verify(Some(&pin()), today()).unwrap_err();
    assert!(matches!(err, KeyListError::BadSignature { .. }), "{err}");
    // Even whitespace counts: the signed bytes are carried as they are.
    let spaced = SignedKeyList {
        key_list: format!("{} ", ours.key_list),
        ..ours
    };
    assert!(matches!(
        spaced.verify(Some(&pin()), today()),
        Err(KeyListError::BadSignature { .. })
    ));
    let _ = k;
}

#[test]
fn an_expired_list_is_refused_naming_its_last_day() {
    let mut list = list();
    list.issued = days(today(), -40);
    list.expires = days(today(), -1);
    let err = verify_list(&list).unwrap_err();
    assert!(matches!(err, KeyListError::Expired { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("expired on {}", days(today(), -1))),
        "{err}"
    );
}

#[test]
fn version_zero_and_dates_backwards_are_refused() {
    let mut zero = list();
    zero.version = 0;
    assert_eq!(verify_list(&zero).unwrap_err(), KeyListError::VersionZero);
    let mut backwards = list();
    backwards.issued = days(today(), 2);
    backwards.expires = days(today(), 1);
    assert!(matches!(
        verify_list(&backwards),
        Err(KeyListError::BadDates { .. })
    ));
}

#[test]
fn a_fingerprint_twice_is_refused_in_one_role_or_across_roles() {
    let k = keys();
    let mut twice = list();
    twice.reviewers.push(entry(&k.reviewers[0]));
    assert!(matches!(
        verify_list(&twice),
        Err(KeyListError::Duplicate { .. })
    ));
    let mut both = list();
    both.couriers.push(entry(&k.reviewers[1]));
    assert!(matches!(
        verify_list(&both),
        Err(KeyListError::Duplicate { .. })
    ));
}

#[test]
fn a_fingerprint_that_is_not_its_certificates_is_refused() {
    let k = keys();
    let mut list = list();
    list.reviewers[0].fingerprint = k.reviewers[1].fingerprint().to_hex();
    let err = verify_list(&list).unwrap_err();
    assert!(
        matches!(err, KeyListError::FingerprintMismatch { index: 1, .. }),
        "{err}"
    );
}

#[test]
fn secret_key_material_is_refused_in_entries_and_as_the_organisation_cert() {
    let k = keys();
    let mut list = list();
    list.reviewers[0].cert =
        String::from_utf8(k.reviewers[0].as_tsk().armored().to_vec().unwrap()).unwrap();
    let err = verify_list(&list).unwrap_err();
    assert!(
        matches!(
            err,
            KeyListError::SecretKeyMaterial {
                role: "reviewers",
                ..
            }
        ),
        "{err}"
    );
    let mut exposed = signed(&self::list());
    exposed.organisation_cert =
        String::from_utf8(k.org.as_tsk().armored().to_vec().unwrap()).unwrap();
    assert_eq!(
        exposed.verify(Some(&pin()), today()).unwrap_err(),
        KeyListError::OrganisationSecret
    );
}

#[test]
fn each_key_must_have_the_shape_of_its_role() {
    let k = keys();
    let mut courier_as_reviewer = list();
    courier_as_reviewer.reviewers[1] = entry(&k.courier);
    courier_as_reviewer.couriers.clear();
    let err = verify_list(&courier_as_reviewer).unwrap_err();
    assert!(matches!(err, KeyListError::Keys(_)), "{err}");
    assert!(err.to_string().contains("is a courier key"), "{err}");
    let mut reviewer_as_courier = list();
    reviewer_as_courier.couriers = vec![reviewer_as_courier.reviewers.pop().unwrap()];
    let err = verify_list(&reviewer_as_courier).unwrap_err();
    assert!(err.to_string().contains("is not a courier key"), "{err}");
}

#[test]
fn counts_are_bounded() {
    let mut none = list();
    none.reviewers.clear();
    assert!(matches!(
        verify_list(&none),
        Err(KeyListError::Count {
            role: "reviewers",
            ..
        })
    ));
}

#[test]
fn the_organisation_field_must_name_the_key_that_signs() {
    let k = keys();
    let mut list = list();
    list.organisation = k.other_org.fingerprint().to_hex();
    let signed = sign_text(&k.org, Some(&pass()), serde_json::to_string(&list).unwrap()).unwrap();
    assert!(matches!(
        signed.verify(None, today()),
        Err(KeyListError::WrongOrganisation { .. })
    ));
    // And sign_key_list refuses to make such a list.
    assert!(matches!(
        sign_key_list(&k.org, Some(&pass()), &list),
        Err(KeyListError::Sign(_))
    ));
}

#[test]
fn unknown_fields_are_refused_outside_and_inside() {
    let k = keys();
    let good = signed(&list());
    let mut outer: serde_json::Value = serde_json::from_slice(&good.to_bytes()).unwrap();
    outer["comment"] = "hello".into();
    let err = SignedKeyList::parse(&serde_json::to_vec(&outer).unwrap()).unwrap_err();
    assert!(matches!(err, KeyListError::Malformed { .. }), "{err}");
    assert!(err.to_string().contains("comment"), "{err}");

    let mut inner: serde_json::Value = serde_json::to_value(list()).unwrap();
    inner["reviewers"][0]["extra"] = true.into();
    let signed = sign_text(&k.org, Some(&pass()), inner.to_string()).unwrap();
    let err = signed.verify(Some(&pin()), today()).unwrap_err();
    assert!(
        matches!(
            err,
            KeyListError::Malformed {
                what: "key_list",
                ..
            }
        ),
        "{err}"
    );
    // A missing field too.
    let mut missing: serde_json::Value = serde_json::to_value(list()).unwrap();
    missing.as_object_mut().unwrap().remove("page");
    let signed = sign_text(&k.org, Some(&pass()), missing.to_string()).unwrap();
    assert!(signed.verify(Some(&pin()), today()).is_err());
    // Another format.
    let mut other = list();
    other.format = "resguardo.key-list/2".into();
    assert!(matches!(
        verify_list(&other),
        Err(KeyListError::Format { .. })
    ));
}

#[test]
fn a_file_over_one_mib_is_refused_before_parsing() {
    let mut big = signed(&list()).to_bytes();
    big.pop();
    big.extend(std::iter::repeat_n(b' ', MAX_SIGNED_KEY_LIST));
    big.push(b'}');
    assert!(matches!(
        SignedKeyList::parse(&big),
        Err(KeyListError::TooLarge { .. })
    ));
}

#[test]
fn a_wrong_passphrase_or_a_public_key_cannot_sign() {
    let k = keys();
    assert!(matches!(
        sign_key_list(&k.org, Some(&Password::from("wrong")), &list()),
        Err(KeyListError::Sign(_))
    ));
    assert!(matches!(
        sign_key_list(&k.org.clone().strip_secret_key_material(), None, &list()),
        Err(KeyListError::Sign(_))
    ));
}

#[test]
fn the_embedded_manifest_lists_every_served_file_sorted_without_templates() {
    let manifest = PageManifest::embedded();
    manifest.check().expect("well formed");
    assert_eq!(manifest.release, crate::assets::VERSION);
    assert!(manifest.files.iter().any(|f| f.path == "/app.js"));
    assert!(manifest
        .files
        .iter()
        .all(|f| !f.path.starts_with("/templates/")));
    let app = crate::assets::find("/app.js").unwrap();
    let listed = manifest.files.iter().find(|f| f.path == "/app.js").unwrap();
    assert_eq!(listed.sha256, sha256_hex(app.bytes));
    assert_eq!(
        PageManifest::parse(manifest.to_json().as_bytes()).unwrap(),
        manifest
    );
    let mut unsorted = manifest.clone();
    unsorted.files.swap(0, 1);
    assert!(unsorted.check().is_err());
    let mut changed = manifest.clone();
    changed.files[0].sha256 = "0".repeat(64);
    assert_eq!(
        manifest.differences(&changed),
        vec![manifest.files[0].path.clone()]
    );
}

#[test]
fn keys_in_use_that_differ_from_the_list_are_named() {
    let k = keys();
    let verified = verify_list(&list()).unwrap();
    let attacker = reviewer_key("Attacker", KeyProfile::Compatible);
    let served = crate::testing::keyring(&[&k.reviewers[0], &k.reviewers[1], &attacker]);
    let err = verified.same_keys(&served, &verified.couriers).unwrap_err();
    assert!(
        err.to_string().contains(&format!(
            "{} is not in the list",
            grouped(&attacker.fingerprint())
        )),
        "{err}"
    );
    let fewer = crate::testing::keyring(&[&k.reviewers[0]]);
    let err = verified.same_keys(&fewer, &verified.couriers).unwrap_err();
    assert!(err.to_string().contains("in the list but missing"), "{err}");
    let no_couriers = CourierKeyring::default();
    assert!(verified
        .same_keys(&verified.reviewers, &no_couriers)
        .is_err());
}
