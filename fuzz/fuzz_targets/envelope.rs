//! The envelope check on arbitrary bytes: it must never panic, and whatever it accepts must be
//! copied to the sink exactly (binary input) and re-check as accepted.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use resguardo::envelope::{self, RecipientSet};
use resguardo::keyring::ReviewerKeyring;

fn recipients() -> &'static RecipientSet {
    static SET: OnceLock<RecipientSet> = OnceLock::new();
    SET.get_or_init(|| {
        let keys = concat!(env!("CARGO_MANIFEST_DIR"), "/../keys-example");
        ReviewerKeyring::load(&[
            format!("{keys}/demo-reviewer-1.pub.asc").into(),
            format!("{keys}/demo-reviewer-2.pub.asc").into(),
        ])
        .expect("demo keys")
        .recipient_set()
    })
}

fuzz_target!(|data: &[u8]| {
    let mut sink = Vec::new();
    if envelope::check(data, recipients(), &mut sink).is_ok() {
        if data.first().is_some_and(|b| b & 0x80 != 0) {
            assert_eq!(sink, data, "binary input is stored verbatim");
        }
        let mut again = Vec::new();
        envelope::check(&sink[..], recipients(), &mut again).expect("stored form re-checks");
        assert_eq!(again, sink);
    }
});
