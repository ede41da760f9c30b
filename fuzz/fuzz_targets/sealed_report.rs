//! The sealed report file reader (`src/sealed_file.rs`) on arbitrary bytes: it must never panic,
//! never copy more than the limit, and whatever it accepts must be written back byte for byte by
//! the writer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use resguardo::sealed_file;

fuzz_target!(|data: &[u8]| {
    // A small limit as well as the largest, so both ends of the message check are reached.
    for limit in [64, sealed_file::MAX_MESSAGE_BYTES] {
        let mut message = Vec::new();
        let Ok((header, len)) = sealed_file::read(data, limit, &mut message) else {
            continue;
        };
        assert!(len >= 1 && len <= limit && len == message.len() as u64);
        let mut written = Vec::new();
        sealed_file::write(&mut written, &header, &message[..], len).expect("rewrites");
        assert_eq!(written, data, "the writer writes what the reader accepted");
    }
});
