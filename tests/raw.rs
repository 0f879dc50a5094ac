//! Camera RAW files decode to their largest embedded JPEG preview, turned as the RAW says, and
//! embed like that preview decoded alone. Fixtures: `fixtures/formats/make_raw.py`.

use std::path::{Path, PathBuf};

use image::metadata::Orientation;
use image::{DynamicImage, GenericImageView};
use xsearch::decode::{decode_bytes, decode_file, DecodeError, DecodeLimits};
use xsearch::Clip;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/formats/raw")
        .join(name)
}

/// Each RAW fixture, the preview JPEG it holds (the largest of its JPEGs), and the orientation
/// its container states (applied on top of the preview's own, which only the `exif6` preview
/// has: for RW2 the container says 6 as well, and it must be applied once).
const CASES: &[(&str, &str, Orientation)] = &[
    ("sample.dng", "preview.jpg", Orientation::NoTransforms),
    ("sample.cr2", "preview.jpg", Orientation::Rotate180),
    ("sample.nef", "preview.jpg", Orientation::Rotate90),
    ("sample.arw", "preview.jpg", Orientation::Rotate270),
    ("sample.orf", "preview.jpg", Orientation::NoTransforms),
    ("sample.rw2", "preview_exif6.jpg", Orientation::NoTransforms),
    ("sample.pef", "preview.jpg", Orientation::NoTransforms),
    ("sample.raf", "preview_exif6.jpg", Orientation::NoTransforms),
    ("sample.cr3", "preview.jpg", Orientation::Rotate270),
];

fn expected(preview: &str, orientation: Orientation) -> DynamicImage {
    let mut image = decode_file(&fixture(preview), &DecodeLimits::default()).unwrap();
    image.apply_orientation(orientation);
    image
}

#[test]
fn each_raw_decodes_to_its_largest_preview_turned_as_it_says() {
    for &(raw, preview, orientation) in CASES {
        let got = decode_file(&fixture(raw), &DecodeLimits::default())
            .unwrap_or_else(|e| panic!("{raw}: {e}"));
        let want = expected(preview, orientation);
        let size = if preview == "preview.jpg" {
            (256, 192)
        } else {
            (160, 240)
        };
        let size = match orientation {
            Orientation::Rotate90 | Orientation::Rotate270 => (size.1, size.0),
            _ => size,
        };
        assert_eq!(got.dimensions(), size, "{raw}");
        assert!(
            got.to_rgb8() == want.to_rgb8(),
            "{raw}: pixels differ from {preview}"
        );
    }
}

#[test]
fn raw_embeds_like_its_preview_decoded_alone() {
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/models/shapes-tiny");
    let clip = Clip::open(model, None).unwrap();
    let raws: Vec<DynamicImage> = CASES
        .iter()
        .map(|(raw, ..)| clip.decode(&fixture(raw)).unwrap())
        .collect();
    let previews: Vec<DynamicImage> = CASES
        .iter()
        .map(|&(_, preview, orientation)| expected(preview, orientation))
        .collect();
    let raw_embeddings = clip.embed_images(&raws).unwrap();
    let preview_embeddings = clip.embed_images(&previews).unwrap();
    for (i, (raw, ..)) in CASES.iter().enumerate() {
        let cosine: f32 = raw_embeddings[i]
            .iter()
            .zip(&preview_embeddings[i])
            .map(|(a, b)| a * b)
            .sum();
        assert!(cosine >= 0.9999, "{raw}: cosine {cosine}");
    }
}

/// Bit flips, overwritten size fields and truncations of every fixture: refused or decoded,
/// never a panic.
#[test]
fn damaged_raw_files_are_refused_with_a_reason_not_a_panic() {
    let limits = DecodeLimits::default();
    for &(raw, ..) in CASES {
        let bytes = std::fs::read(fixture(raw)).unwrap();
        for at in (0..bytes.len()).step_by(61) {
            for value in [0x00, 0xff, 0x7f] {
                let mut damaged = bytes.clone();
                damaged[at] = value;
                let _ = decode_bytes(&damaged, &limits);
            }
            if let Err(e) = decode_bytes(&bytes[..at.max(1)], &limits) {
                assert!(!e.reason().is_empty());
            }
        }
    }
}

#[test]
fn a_raw_without_a_usable_preview_says_so() {
    let mut bytes = std::fs::read(fixture("sample.raf")).unwrap();
    // The preview's length (at byte 88) now runs past the end of the file.
    bytes[88..92].copy_from_slice(&u32::MAX.to_be_bytes());
    let err = decode_bytes(&bytes, &DecodeLimits::default()).unwrap_err();
    assert!(matches!(err, DecodeError::Corrupt { .. }), "{err}");
    assert_eq!(
        err.reason(),
        "corrupt or truncated image: camera raw: RAF preview at offset 108 (length 4294967295) \
         runs past the end of the file (13691 bytes)"
    );
    let mut dng = std::fs::read(fixture("sample.dng")).unwrap();
    // Every JPEG start-of-image marker overwritten: sensor data but no preview.
    for i in 0..dng.len() - 1 {
        if dng[i] == 0xff && dng[i + 1] == 0xd8 {
            dng[i + 1] = 0;
        }
    }
    let err = decode_bytes(&dng, &DecodeLimits::default()).unwrap_err();
    assert_eq!(
        err.reason(),
        "unsupported image: camera raw file with no embedded JPEG preview (developing the \
         sensor data is not supported)"
    );
}
