use super::*;

const PHOTO: &[u8] = include_bytes!("../../tests/fixtures/photo-with-gps.jpg");
const SCREENSHOT: &[u8] = include_bytes!("../../tests/fixtures/screenshot-with-text.png");

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn the_fixture_photo_loses_its_exif_and_keeps_its_scan() {
    let Cleaning::Cleaned { kind, bytes, .. } = clean(PHOTO) else {
        panic!("not cleaned");
    };
    assert_eq!(kind, FileKind::Jpeg);
    for canary in [&b"Exif"[..], b"GPS-Model-X1", b"CanaryCam", b"JFIF"] {
        assert!(!contains(&bytes, canary));
    }
    let scan = |b: &[u8]| b.windows(2).position(|w| w == [0xff, 0xda]).expect("SOS");
    assert_eq!(&bytes[scan(&bytes)..], &PHOTO[scan(PHOTO)..]);
    assert_eq!(verify_clean(&bytes), Some(None));
    assert_eq!(verify_clean(PHOTO), None, "the original is not clean");
}

#[test]
fn orientation_is_written_back_as_the_only_exif_tag() {
    let mut photo = PHOTO[..2].to_vec();
    photo.extend_from_slice(&jpeg::minimal_app1(6));
    photo.extend_from_slice(&PHOTO[2..]);
    let Cleaning::Cleaned {
        bytes, orientation, ..
    } = clean(&photo)
    else {
        panic!("not cleaned");
    };
    assert_eq!(orientation, Some(6));
    assert_eq!(&bytes[2..38], jpeg::minimal_app1(6).as_slice());
    assert!(!contains(&bytes, b"CanaryCam"));
    assert_eq!(verify_clean(&bytes), Some(Some(6)));
}

#[test]
fn a_second_exif_segment_fails_the_strict_reading() {
    let Cleaning::Cleaned { bytes, .. } = clean(PHOTO) else {
        panic!("not cleaned");
    };
    let mut twice = bytes[..2].to_vec();
    twice.extend_from_slice(&jpeg::minimal_app1(6));
    twice.extend_from_slice(&jpeg::minimal_app1(6));
    twice.extend_from_slice(&bytes[2..]);
    assert_eq!(verify_clean(&twice), None);
}

#[test]
fn damaged_images_are_not_cleaned() {
    let mut broken = PHOTO.to_vec();
    broken[4] = 0xff;
    broken[5] = 0xff;
    assert_eq!(
        clean(&broken),
        Cleaning::NotCleaned {
            kind: FileKind::Jpeg,
            why: NotCleaned::Unreadable
        }
    );
    let mut png = SCREENSHOT.to_vec();
    png.extend_from_slice(&[1, 2, 3]);
    assert!(matches!(
        clean(&png),
        Cleaning::NotCleaned {
            why: NotCleaned::Unreadable,
            ..
        }
    ));
}

#[test]
fn the_fixture_screenshot_loses_its_text() {
    let Cleaning::Cleaned { bytes, .. } = clean(SCREENSHOT) else {
        panic!("not cleaned");
    };
    assert!(!contains(&bytes, b"CanaryAuthor"));
    assert!(!contains(&bytes, b"tEXt"));
}

#[test]
fn kinds_are_read_from_the_content_and_say_what_may_remain() {
    let cases: [(&[u8], FileKind, Option<Remains>); 7] = [
        (
            b"\0\0\0\x18ftypheic\0\0\0\0",
            FileKind::Heif,
            Some(Remains::Capture),
        ),
        (
            b"\0\0\0\x18ftypisom\0\0\0\0",
            FileKind::Video,
            Some(Remains::Capture),
        ),
        (b"%PDF-1.7\n", FileKind::Pdf, Some(Remains::Document)),
        (
            b"PK\x03\x04\x14\0",
            FileKind::Document,
            Some(Remains::Document),
        ),
        (b"ID3\x04\0\0", FileKind::Audio, Some(Remains::Audio)),
        (
            b"\0\x01\x02binary",
            FileKind::Unknown,
            Some(Remains::Unknown),
        ),
        (
            b"<svg><metadata/>",
            FileKind::Unknown,
            Some(Remains::Unknown),
        ),
    ];
    for (bytes, kind, remains) in cases {
        let cleaning = clean(bytes);
        assert_eq!(cleaning.remains(), remains, "{kind:?}");
        assert!(
            matches!(cleaning, Cleaning::NotCleaned { kind: k, why: NotCleaned::Unsupported } if k == kind),
            "{kind:?}"
        );
    }
    assert_eq!(
        clean("Amenaza en la comunidad; ñandú ✓\n".as_bytes()),
        Cleaning::Plain
    );
    assert_eq!(clean(b""), Cleaning::Plain);
}

#[test]
fn images_over_the_bound_are_not_read() {
    let mut big = PHOTO.to_vec();
    big.resize(MAX_CLEAN_BYTES + 1, 0);
    assert!(matches!(
        clean(&big),
        Cleaning::NotCleaned {
            why: NotCleaned::TooLarge,
            ..
        }
    ));
}
