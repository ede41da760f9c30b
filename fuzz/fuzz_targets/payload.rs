//! The payload v1 reader on arbitrary plaintext: no panic, the byte bound holds, and attachments
//! handed out are never more than report.json announced.
#![no_main]

use std::io::{self, Write};

use libfuzzer_sys::fuzz_target;
use resguardo::payload::read::{read_plaintext, AttachmentSink, Plaintext};
use resguardo::payload::Attachment;

struct Counting(Vec<u64>);

struct Counter<'a>(&'a mut u64);

impl Write for Counter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        *self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AttachmentSink for Counting {
    fn open(&mut self, _: usize, _: &Attachment) -> io::Result<Box<dyn Write + '_>> {
        self.0.push(0);
        let last = self.0.last_mut().expect("pushed");
        Ok(Box::new(Counter(last)))
    }
}

const BOUND: u64 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let mut sink = Counting(Vec::new());
    match read_plaintext(data, BOUND, &mut sink) {
        Ok(Plaintext::Report(report)) => {
            assert_eq!(sink.0.len(), report.attachments.len());
            for (written, a) in sink.0.iter().zip(&report.attachments) {
                assert_eq!(*written, a.size);
            }
        }
        Ok(Plaintext::Raw(bytes)) => assert!(bytes.len() as u64 <= BOUND),
        Err(_) => {}
    }
});
