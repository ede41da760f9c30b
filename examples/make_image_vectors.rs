//! Writes `tests/vectors/images/`: pictures carrying canaries in every place metadata hides
//! (EXIF with GPS, device and dates, EXIF thumbnails, XMP, IPTC, ICC names, comments, PNG text
//! chunks, WebP EXIF and XMP, trailers) and an orientation, each with the outcome both
//! `resguardo::metadata::clean` and the page's `static/js/metadata.js` must reach.
//!
//! `cargo run --example make_image_vectors` (from the repository root); it also writes the
//! inputs as seeds of the `metadata` fuzz target (`fuzz/seeds/metadata/`). The pictures are built
//! from `tests/fixtures/` (JPEG, PNG) and two tiny well-known WebP files; the expected output is
//! the cleaner's, so a change of rule shows as a diff of these files, to review.

use std::path::Path;

use base64::Engine as _;
use resguardo::metadata::{clean, Cleaning, FileKind};
use serde_json::json;

const DIR: &str = "tests/vectors/images";
const SEEDS: &str = "fuzz/seeds/metadata";

fn sha256(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes))
}

fn be16(v: usize) -> [u8; 2] {
    (v as u16).to_be_bytes()
}

/// A TIFF (big- or little-endian) with Make, Model, DateTime, an optional Orientation, a GPS IFD
/// with the canary in GPSAreaInformation-like ASCII, and an IFD1 thumbnail holding a canary.
fn exif_tiff(little: bool, orientation: Option<u16>) -> Vec<u8> {
    let w16 = |v: u16| {
        if little {
            v.to_le_bytes()
        } else {
            v.to_be_bytes()
        }
    };
    let w32 = |v: u32| {
        if little {
            v.to_le_bytes()
        } else {
            v.to_be_bytes()
        }
    };
    let ascii = |s: &str| {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        v
    };
    let make = ascii("CanaryMake");
    let model = ascii("CanaryModel-X1");
    let date = ascii("2026:11:20 10:11:12");
    let gps_text = ascii("CanaryGpsPlace");
    let thumb = b"\xff\xd8CanaryThumbnail\xff\xd9".to_vec();
    let entries0: u32 = if orientation.is_some() { 5 } else { 4 };
    let ifd0 = 8u32;
    let ifd0_len = 2 + 12 * entries0 + 4;
    let data0 = ifd0 + ifd0_len;
    let make_at = data0;
    let model_at = make_at + make.len() as u32;
    let date_at = model_at + model.len() as u32;
    let gps_ifd = date_at + date.len() as u32;
    let gps_len = 2 + 12 * 3 + 4;
    let gps_text_at = gps_ifd + gps_len;
    let ifd1 = gps_text_at + gps_text.len() as u32;
    let ifd1_len = 2 + 12 * 2 + 4;
    let thumb_at = ifd1 + ifd1_len;
    let mut t = Vec::new();
    t.extend_from_slice(if little { b"II" } else { b"MM" });
    t.extend_from_slice(&w16(42));
    t.extend_from_slice(&w32(ifd0));
    let entry = |t: &mut Vec<u8>, tag: u16, kind: u16, count: u32, value: [u8; 4]| {
        t.extend_from_slice(&w16(tag));
        t.extend_from_slice(&w16(kind));
        t.extend_from_slice(&w32(count));
        t.extend_from_slice(&value);
    };
    let short = |v: u16| {
        let b = w16(v);
        [b[0], b[1], 0, 0]
    };
    t.extend_from_slice(&w16(entries0 as u16));
    entry(&mut t, 0x010f, 2, make.len() as u32, w32(make_at));
    entry(&mut t, 0x0110, 2, model.len() as u32, w32(model_at));
    if let Some(o) = orientation {
        entry(&mut t, 0x0112, 3, 1, short(o));
    }
    entry(&mut t, 0x0132, 2, date.len() as u32, w32(date_at));
    entry(&mut t, 0x8825, 4, 1, w32(gps_ifd));
    t.extend_from_slice(&w32(ifd1));
    t.extend_from_slice(&make);
    t.extend_from_slice(&model);
    t.extend_from_slice(&date);
    t.extend_from_slice(&w16(3));
    entry(&mut t, 0x0001, 2, 2, *b"S\0\0\0");
    entry(&mut t, 0x0003, 2, 2, *b"W\0\0\0");
    entry(&mut t, 0x001c, 7, gps_text.len() as u32, w32(gps_text_at));
    t.extend_from_slice(&w32(0));
    t.extend_from_slice(&gps_text);
    t.extend_from_slice(&w16(2));
    entry(&mut t, 0x0201, 4, 1, w32(thumb_at));
    entry(&mut t, 0x0202, 4, 1, w32(thumb.len() as u32));
    t.extend_from_slice(&w32(0));
    t.extend_from_slice(&thumb);
    t
}

fn jpeg_segment(marker: u8, body: &[u8]) -> Vec<u8> {
    let mut s = vec![0xff, marker];
    s.extend_from_slice(&be16(body.len() + 2));
    s.extend_from_slice(body);
    s
}

fn app1_exif(tiff: &[u8]) -> Vec<u8> {
    let mut body = b"Exif\0\0".to_vec();
    body.extend_from_slice(tiff);
    jpeg_segment(0xe1, &body)
}

const XMP: &str = "<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF><rdf:Description photoshop:City='CanaryXmpCity' xmp:CreatorTool='CanaryXmpTool'/></rdf:RDF></x:xmpmeta>";

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut c = (data.len() as u32).to_be_bytes().to_vec();
    c.extend_from_slice(kind);
    c.extend_from_slice(data);
    let crc = resguardo::metadata::png_crc32(&c[4..]);
    c.extend_from_slice(&crc.to_be_bytes());
    c
}

fn riff_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut c = kind.to_vec();
    c.extend_from_slice(&(data.len() as u32).to_le_bytes());
    c.extend_from_slice(data);
    if data.len() % 2 == 1 {
        c.push(0);
    }
    c
}

fn riff(chunks: &[Vec<u8>]) -> Vec<u8> {
    let body: Vec<u8> = chunks.concat();
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&((body.len() + 4) as u32).to_le_bytes());
    out.extend_from_slice(b"WEBP");
    out.extend_from_slice(&body);
    out
}

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("base64")
}

fn main() {
    let dir = Path::new(DIR);
    std::fs::create_dir_all(dir).expect("create the vectors directory");
    for old in std::fs::read_dir(dir).expect("read dir") {
        let path = old.expect("entry").path();
        if path.extension().is_some_and(|e| e == "json") {
            std::fs::remove_file(path).expect("remove an old vector");
        }
    }
    let photo = std::fs::read("tests/fixtures/photo-with-gps.jpg").expect("the JPEG fixture");
    // The fixture's frame, tables and scan: everything from its first DQT.
    let core_at = photo
        .windows(2)
        .position(|w| w == [0xff, 0xdb])
        .expect("a DQT");
    let core = &photo[core_at..];
    let jfif = jpeg_segment(0xe0, b"JFIF\0\x01\x01\0\0\x01\0\x01\x01\x01CanaryJfifThumb");
    let xmp_segment = {
        let mut body = b"http://ns.adobe.com/xap/1.0/\0".to_vec();
        body.extend_from_slice(XMP.as_bytes());
        jpeg_segment(0xe1, &body)
    };
    let iptc = jpeg_segment(
        0xed,
        b"Photoshop 3.0\08BIM\x04\x04\0\0\0\0\0\x12\x1c\x02\x50\0\x0dCanaryIptcBy",
    );
    let icc = jpeg_segment(0xe2, b"ICC_PROFILE\0\x01\x01descCanaryIccDesc");
    let com = jpeg_segment(0xfe, b"CanaryComment");
    let adobe = jpeg_segment(0xee, b"Adobe\0\x64\0\0\0\0\x01");
    let jpeg = |parts: &[&[u8]]| -> Vec<u8> {
        let mut out = vec![0xff, 0xd8];
        for p in parts {
            out.extend_from_slice(p);
        }
        out
    };
    let all_jpeg = [
        "CanaryMake",
        "CanaryModel",
        "2026:11:20",
        "CanaryGpsPlace",
        "CanaryThumbnail",
        "CanaryJfifThumb",
        "CanaryXmp",
        "CanaryIptcBy",
        "CanaryIccDesc",
        "CanaryComment",
    ];
    let mut trailer_core = core.to_vec();
    trailer_core.extend_from_slice(b"CanaryTrailer motion-photo video");
    let mut stray_no_end = vec![0x00, 0x00];
    stray_no_end.extend_from_slice(&app1_exif(&exif_tiff(true, Some(3))));
    stray_no_end.push(0x42);
    stray_no_end.extend_from_slice(&core[..core.len() - 2]);
    let mut vectors: Vec<(&str, &str, Vec<u8>, Vec<&str>)> = vec![
        (
            "ok_jpeg_everything_orientation_6",
            "A phone photo: JFIF thumbnail, EXIF (make, model, date, GPS, thumbnail, orientation 6), XMP, IPTC, ICC, comment, a trailer after the end marker",
            jpeg(&[
                &jfif,
                &app1_exif(&exif_tiff(false, Some(6))),
                &xmp_segment,
                &iptc,
                &icc,
                &com,
                &trailer_core,
            ]),
            [all_jpeg.as_slice(), &["CanaryTrailer"]].concat(),
        ),
        (
            "ok_jpeg_little_endian_orientation_8",
            "EXIF in little-endian order with orientation 8; the first EXIF segment decides",
            jpeg(&[
                &app1_exif(&exif_tiff(true, Some(8))),
                &app1_exif(&exif_tiff(false, Some(3))),
                &com,
                core,
            ]),
            vec!["CanaryMake", "CanaryGpsPlace", "CanaryComment"],
        ),
        (
            "ok_jpeg_orientation_1_not_kept",
            "Orientation 1 is the default: no EXIF at all is written back",
            jpeg(&[&app1_exif(&exif_tiff(false, Some(1))), &xmp_segment, core]),
            vec!["CanaryMake", "CanaryXmp", "Exif"],
        ),
        (
            "ok_jpeg_no_orientation",
            "EXIF without orientation: nothing is written back",
            jpeg(&[&jfif, &app1_exif(&exif_tiff(false, None)), core]),
            vec!["CanaryModel", "CanaryGpsPlace", "Exif", "JFIF"],
        ),
        (
            "ok_jpeg_stray_bytes_and_no_end_marker",
            "Stray bytes between segments and a missing end marker, as messaging apps leave them; orientation 3",
            jpeg(&[&stray_no_end]),
            vec!["CanaryMake", "CanaryThumbnail"],
        ),
        (
            "ok_jpeg_adobe_app14_kept",
            "The 12-byte Adobe APP14 changes the decoded colours: kept",
            jpeg(&[&adobe, &app1_exif(&exif_tiff(false, Some(5))), core]),
            vec!["CanaryMake"],
        ),
        (
            "fail_jpeg_segment_past_the_end",
            "A segment longer than the file",
            jpeg(&[&[0xff, 0xe1, 0xff, 0xf0], b"Exif\0\0CanaryMake"]),
            vec![],
        ),
        (
            "fail_jpeg_truncated_segment_header",
            "Cut inside a segment header",
            {
                let mut v = jpeg(&[&app1_exif(&exif_tiff(false, Some(6)))]);
                v.extend_from_slice(&[0xff, 0xdb, 0x00]);
                v
            },
            vec![],
        ),
        (
            "fail_jpeg_unknown_marker",
            "A marker we do not know (JPEG extension F7) may carry anything",
            jpeg(&[&jpeg_segment(0xf7, b"CanaryUnknown"), core]),
            vec![],
        ),
        (
            "fail_jpeg_no_scan",
            "Tables but no picture",
            jpeg(&[&app1_exif(&exif_tiff(false, Some(6))), &[0xff, 0xd9]]),
            vec![],
        ),
        (
            "ok_jpeg_other_app14_dropped",
            "An APP14 that is not Adobe's 12 bytes says nothing decoders read: dropped",
            jpeg(&[&jpeg_segment(0xee, b"AdobeCanaryLongerThanTwelve"), core]),
            vec!["CanaryLonger"],
        ),
    ];

    // PNG: the fixture's IHDR, IDAT and IEND, with every text-bearing chunk around them.
    let screenshot =
        std::fs::read("tests/fixtures/screenshot-with-text.png").expect("the PNG fixture");
    let mut png_kept: Vec<Vec<u8>> = Vec::new();
    let mut i = 8;
    while i < screenshot.len() {
        let len = u32::from_be_bytes(screenshot[i..i + 4].try_into().expect("4")) as usize;
        let kind = &screenshot[i + 4..i + 8];
        if kind == b"IHDR" || kind == b"IDAT" || kind == b"IEND" {
            png_kept.push(screenshot[i..i + 12 + len].to_vec());
        }
        i += 12 + len;
    }
    let (ihdr, idat, iend) = (&png_kept[0], &png_kept[1], &png_kept[2]);
    let png = |parts: &[&[u8]]| -> Vec<u8> {
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        for p in parts {
            out.extend_from_slice(p);
        }
        out
    };
    let texts = [
        png_chunk(b"tEXt", b"Author\0CanaryAuthor"),
        png_chunk(b"zTXt", b"Comment\0\0x\x9c\x0b\x03\0\0\0\0\0CanaryZtxtKey"),
        png_chunk(
            b"iTXt",
            format!("XML:com.adobe.xmp\0\0\0\0\0{XMP}").as_bytes(),
        ),
        png_chunk(b"tIME", b"\x07\xea\x0b\x14\x0a\x0b\x0c"),
        png_chunk(b"iCCP", b"CanaryIccName\0\0x\x9c\x03\0\0\0\0\x01"),
        png_chunk(b"pHYs", b"\0\0\x0b\x13\0\0\x0b\x13\x01"),
        png_chunk(b"caNy", b"CanaryPrivateChunk"),
    ]
    .concat();
    let exif6 = png_chunk(b"eXIf", &exif_tiff(false, Some(6)));
    let mut bad_crc = png(&[ihdr, &texts, idat, iend]);
    let crc_at = 8 + ihdr.len() + 8 + 19;
    bad_crc[crc_at] ^= 1;
    vectors.extend([
        (
            "ok_png_text_time_icc_private",
            "A screenshot with author, compressed and international text (XMP), time, an ICC name, pHYs and a private chunk",
            png(&[ihdr, &texts, idat, iend]),
            vec![
                "CanaryAuthor",
                "CanaryZtxtKey",
                "CanaryXmp",
                "CanaryIccName",
                "CanaryPrivateChunk",
                "tIME",
            ],
        ),
        (
            "ok_png_exif_orientation_6",
            "An eXIf with GPS, device and orientation 6 before the image data",
            png(&[ihdr, &exif6, &texts, idat, iend]),
            vec!["CanaryMake", "CanaryGpsPlace", "CanaryThumbnail", "CanaryAuthor"],
        ),
        (
            "ok_png_exif_after_data_ignored",
            "An eXIf after the image data is not read by viewers: dropped, no orientation kept",
            png(&[ihdr, idat, &exif6, iend]),
            vec!["CanaryMake", "CanaryGpsPlace"],
        ),
        (
            "fail_png_bad_crc",
            "A chunk whose CRC does not match",
            bad_crc,
            vec![],
        ),
        (
            "fail_png_trailing_bytes",
            "Bytes after IEND",
            {
                let mut v = png(&[ihdr, &texts, idat, iend]);
                v.extend_from_slice(b"CanaryTrailer");
                v
            },
            vec![],
        ),
        (
            "fail_png_truncated",
            "Cut inside the image data",
            png(&[ihdr, &texts, &idat[..idat.len() / 2]]),
            vec![],
        ),
        (
            "fail_png_ihdr_not_first",
            "A text chunk before IHDR",
            png(&[&texts, ihdr, idat, iend]),
            vec![],
        ),
    ]);

    // WebP: Modernizr's 1x1 lossy and lossless pictures, extended with metadata.
    let lossy = b64("UklGRiIAAABXRUJQVlA4IBYAAAAwAQCdASoBAAEADsD+JaQAA3AAAAAA");
    let lossless = b64("UklGRhoAAABXRUJQVlA4TA0AAAAvAAAAEAcQERGIiP4HAA==");
    let vp8 = &lossy[12..];
    let vp8l = &lossless[12..];
    let vp8x = |flags: u8| riff_chunk(b"VP8X", &[flags, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let exif_chunk = |prefix: bool, o: Option<u16>| {
        let mut d = if prefix {
            b"Exif\0\0".to_vec()
        } else {
            Vec::new()
        };
        d.extend_from_slice(&exif_tiff(false, o));
        riff_chunk(b"EXIF", &d)
    };
    let xmp_chunk = riff_chunk(b"XMP ", XMP.as_bytes());
    let iccp = riff_chunk(b"ICCP", b"descCanaryIccDesc");
    let anim = riff_chunk(b"ANIM", &[0, 0, 0, 0, 0, 0]);
    let anmf = |frame: &[u8]| {
        let mut d = vec![0u8; 16];
        d.extend_from_slice(frame);
        riff_chunk(b"ANMF", &d)
    };
    vectors.extend([
        (
            "ok_webp_exif_xmp_icc_orientation_6",
            "Extended WebP with ICC, EXIF (GPS, device, orientation 6) and XMP",
            riff(&[
                vp8x(0x20 | 0x08 | 0x04),
                iccp.clone(),
                vp8.to_vec(),
                exif_chunk(false, Some(6)),
                xmp_chunk.clone(),
            ]),
            vec![
                "CanaryIccDesc",
                "CanaryMake",
                "CanaryGpsPlace",
                "CanaryThumbnail",
                "CanaryXmp",
            ],
        ),
        (
            "ok_webp_exif_with_header_orientation_7",
            "An EXIF chunk that starts with Exif\\0\\0 (some writers add it), orientation 7, lossless",
            riff(&[vp8x(0x08), vp8l.to_vec(), exif_chunk(true, Some(7))]),
            vec!["CanaryMake", "CanaryGpsPlace"],
        ),
        (
            "ok_webp_simple_unchanged",
            "A simple lossy WebP has no place for metadata: unchanged",
            lossy.clone(),
            vec![],
        ),
        (
            "ok_webp_animated_exif_no_orientation",
            "An animation with XMP and EXIF without orientation",
            riff(&[
                vp8x(0x02 | 0x08 | 0x04),
                anim.clone(),
                anmf(vp8l),
                anmf(vp8l),
                exif_chunk(false, None),
                xmp_chunk.clone(),
            ]),
            vec!["CanaryMake", "CanaryXmp"],
        ),
        (
            "fail_webp_riff_size_wrong",
            "The RIFF size does not match the file",
            {
                let mut v = riff(&[vp8x(0x08), vp8.to_vec(), exif_chunk(false, Some(6))]);
                v.extend_from_slice(b"CanaryTrailer");
                v
            },
            vec![],
        ),
        (
            "fail_webp_truncated",
            "Cut inside a chunk",
            {
                let v = riff(&[vp8x(0x08), vp8.to_vec(), exif_chunk(false, Some(6))]);
                let mut cut = v[..v.len() - 20].to_vec();
                let size = (cut.len() - 8) as u32;
                cut[4..8].copy_from_slice(&size.to_le_bytes());
                cut
            },
            vec![],
        ),
        (
            "fail_webp_frame_with_unknown_chunk",
            "An animation frame holding a chunk that is not image data",
            riff(&[
                vp8x(0x02),
                anim,
                anmf(&[riff_chunk(b"XMP ", b"CanaryXmp"), vp8l.to_vec()].concat()),
            ]),
            vec![],
        ),
    ]);

    // Files we cannot clean.
    let mut heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic".to_vec();
    heic.extend_from_slice(b"\0\0\0\x20metaCanaryGpsPlace CanaryModel");
    let mut mp4 = b"\0\0\0\x18ftypisom\0\0\x02\0isomiso2".to_vec();
    mp4.extend_from_slice(b"\0\0\0\x20moovCanaryGpsPlace 2026-11-20");
    let pdf = std::fs::read("tests/fixtures/acta.pdf").expect("the PDF fixture");
    vectors.extend([
        (
            "fail_heic_photo",
            "HEIC: no well-kept pure-Rust library rewrites it; not cleaned",
            heic,
            vec![],
        ),
        ("fail_mp4_video", "A video: not cleaned", mp4, vec![]),
        ("fail_pdf_document", "A PDF: not cleaned", pdf, vec![]),
    ]);

    let mut count = 0;
    for (name, about, input, canaries) in vectors {
        let input_text = String::from_utf8_lossy(&input).into_owned();
        for canary in &canaries {
            assert!(
                input_text.contains(canary),
                "{name}: the input lacks {canary}"
            );
        }
        let kind_name = |k: FileKind| format!("{k:?}").to_ascii_lowercase();
        let expect = match clean(&input) {
            Cleaning::Cleaned {
                kind,
                bytes,
                orientation,
            } => {
                assert!(name.starts_with("ok_"), "{name} was cleaned");
                json!({
                    "outcome": "cleaned",
                    "kind": kind_name(kind),
                    "orientation": orientation,
                    "output_sha256": sha256(&bytes),
                    "output_length": bytes.len(),
                })
            }
            Cleaning::NotCleaned { kind, .. } => {
                assert!(name.starts_with("fail_"), "{name} was not cleaned");
                json!({ "outcome": "not_cleaned", "kind": kind_name(kind) })
            }
            Cleaning::Plain => panic!("{name}: plain text is no image vector"),
        };
        let vector = json!({
            "about": about,
            "input_base64": base64::engine::general_purpose::STANDARD.encode(&input),
            "canaries": canaries,
            "expect": expect,
        });
        let text = serde_json::to_string_pretty(&vector).expect("json") + "\n";
        std::fs::write(dir.join(format!("{name}.json")), text).expect("write a vector");
        // The same files seed the fuzzer (scripts/fuzz metadata).
        std::fs::create_dir_all(SEEDS).expect("create the seeds directory");
        std::fs::write(Path::new(SEEDS).join(name), &input).expect("write a seed");
        count += 1;
    }
    println!("wrote {count} vectors to {DIR}");
}
