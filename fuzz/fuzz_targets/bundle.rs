//! The bundle reader on arbitrary bytes: no panic, bounded work, and every entry it hands out is
//! either verified or reported.
#![no_main]

use libfuzzer_sys::fuzz_target;
use resguardo::bundle;

fuzz_target!(|data: &[u8]| {
    let _ = bundle::read_manifest(data);
    let mut seen = 0usize;
    let result = bundle::read_bundle(data, |manifest, entry, reader| {
        seen += 1;
        assert!(seen <= manifest.submissions.len());
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(reader, &mut buf);
        assert!(buf.len() as u64 <= entry.size);
        let _ = reader.finish();
    });
    if let Ok(manifest) = result {
        assert_eq!(seen, manifest.submissions.len());
    }
});
