//! The parsers of uploads that resume (`docs/uploads-v1.md` §1) on arbitrary input: the state
//! file of an incomplete upload, the upload id of a request path, and the strict decimals of
//! `Upload-Length` and `Upload-Offset`. No panic; what parses encodes to something that parses
//! back to the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use resguardo::store::{decimal, UploadId, UploadState};

fuzz_target!(|data: &[u8]| {
    if let Ok(state) = UploadState::parse(data) {
        let again = UploadState::parse(&state.encode()).expect("an encoded state parses");
        assert_eq!(again, state);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(id) = text.parse::<UploadId>() {
            assert_eq!(id.to_string(), text);
        }
        if let Some(n) = decimal(text) {
            assert_eq!(n.to_string(), text);
        }
    }
});
