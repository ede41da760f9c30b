//! The payload v1 reader on arbitrary plaintext: no panic, the byte bound holds, and attachments
//! handed out are never more than report.json announced.
#![no_main]

use libfuzzer_sys::fuzz_target;
use resguardo::payload::read::{read_plaintext, Plaintext};
use resguardo::testing::CountingSink;

const BOUND: u64 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let mut sink = CountingSink::default();
    match read_plaintext(data, BOUND, &mut sink) {
        Ok(Plaintext::Report(report)) => {
            assert_eq!(sink.0.len(), report.attachments.len());
            for (written, a) in sink.0.iter().zip(&report.attachments) {
                assert_eq!(*written, a.size);
            }
        }
        Ok(Plaintext::Raw { size }) => {
            assert!(size <= BOUND);
            assert_eq!(sink.0, vec![size], "a raw plaintext is streamed to the sink whole");
        }
        Err(_) => {}
    }
});
