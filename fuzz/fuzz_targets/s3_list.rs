//! The object store's answers on arbitrary input (`src/store/object/client.rs`): a
//! ListObjectsV2 page and an S3 error, read by the client's strict XML reader. No panic; what
//! is accepted keeps the client's bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use resguardo::store::object::client::{error_code, parse_list_page, MAX_KEY_BYTES};

fuzz_target!(|data: &[u8]| {
    if let Ok(page) = parse_list_page(data) {
        for object in &page.objects {
            assert!(!object.key.is_empty() && object.key.len() <= MAX_KEY_BYTES);
        }
        if let Some(token) = &page.next {
            assert!(!token.is_empty() && token.len() <= 1024);
        }
    }
    let code = error_code(data);
    assert!(!code.is_empty() && code.len() <= 64);
    assert!(code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.'));
});
