//! The metadata cleaner on arbitrary files: no panic; a file called cleaned passes the strict
//! reading with the orientation it claims, cleaning it again changes nothing, and it never grows
//! by more than the minimal orientation EXIF.
#![no_main]

use libfuzzer_sys::fuzz_target;
use resguardo::metadata::{clean, verify_clean, Cleaning};

fuzz_target!(|data: &[u8]| {
    if let Cleaning::Cleaned {
        bytes, orientation, ..
    } = clean(data)
    {
        assert_eq!(verify_clean(&bytes), Some(orientation));
        assert!(bytes.len() <= data.len() + 64);
        match clean(&bytes) {
            Cleaning::Cleaned { bytes: again, .. } => assert_eq!(again, bytes),
            other => panic!("a cleaned file does not clean again: {other:?}"),
        }
    }
});
