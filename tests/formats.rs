//! HEIC, AVIF and JPEG XL against the pixels Pillow decodes from the same files
//! (`fixtures/formats/`, made by `make_formats.py` there): same size and orientation, pixels
//! within a few levels, alpha kept, and embeddings (shapes-tiny model) at cosine >= 0.999.
//!
//! HEIC and AVIF need the system's libheif. Without it these tests say so loudly and skip, except
//! under CI (`CI=true`), where a missing libheif fails them: CI must run them for real.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use image::DynamicImage;
use xsearch::decode::{decode_file, DecodeError, DecodeLimits};
use xsearch::Clip;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/formats")
        .join(name)
}

fn clip() -> &'static Clip {
    static CLIP: OnceLock<Clip> = OnceLock::new();
    CLIP.get_or_init(|| {
        Clip::open(
            concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/models/shapes-tiny"),
            None,
        )
        .unwrap()
    })
}

/// Whether libheif can be used here. When it cannot: a loud skip, or a failure under CI.
fn libheif_present() -> bool {
    match decode_file(&fixture("heic_8bit.heic"), &DecodeLimits::default()) {
        Err(DecodeError::Unsupported { detail, .. }) if detail.contains("libheif") => {
            let message = format!(
                "libheif is missing, so the HEIC/AVIF tests cannot run: {detail}\n\
                 Install it (Debian/Ubuntu: `apt-get install libheif1`, plus \
                 `libheif-plugin-libde265 libheif-plugin-dav1d` where those packages exist; \
                 macOS: `brew install libheif`)."
            );
            common::skip::skip_or_fail(&message);
            false
        }
        _ => true,
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

/// Largest and mean absolute difference over every RGBA sample (alpha included).
fn differences(ours: &DynamicImage, theirs: &DynamicImage) -> (u8, f64) {
    let (a, b) = (ours.to_rgba8(), theirs.to_rgba8());
    let diffs: Vec<u8> = a
        .iter()
        .zip(b.iter())
        .map(|(x, y)| x.abs_diff(*y))
        .collect();
    let max = diffs.iter().copied().max().unwrap_or(0);
    let mean = diffs.iter().map(|&d| f64::from(d)).sum::<f64>() / diffs.len() as f64;
    (max, mean)
}

/// Decodes `name` and its Pillow PNG; checks size, layout, pixels and embeddings.
///
/// `max_diff` / `mean_diff`: per-family tolerances. The same file decoded by two libraries
/// differs by rounding only: HEVC is decoded by libde265 on both sides (at most 1 level); AV1 by
/// dav1d or aom here and by libavif's codec in Pillow (1 level); 10-bit images also differ in
/// their rounding to 8 bits (libheif 1.15 here, libheif 1.23 in pillow-heif, libavif: 2 or 3
/// levels). The AVIF fixtures are 4:4:4: see `make_formats.py` for why.
fn check(name: &str, alpha: bool, max_diff: u8, mean_diff: f64) {
    let path = fixture(name);
    let reference_path = path.with_extension("png");
    let ours = decode_file(&path, &DecodeLimits::default()).unwrap();
    let theirs = image::open(&reference_path).unwrap();
    assert_eq!(
        ours.color().has_alpha(),
        alpha,
        "{name}: alpha kept for preprocessing to composite, as for PNG"
    );
    assert_eq!(theirs.color().has_alpha(), alpha, "{name}: reference");
    // Orientation: the references are upright, so equal sizes for the rotated fixtures mean
    // the rotation was applied once (twice would restore the stored size).
    assert_eq!(
        (ours.width(), ours.height()),
        (theirs.width(), theirs.height()),
        "{name}: size"
    );
    let (max, mean) = differences(&ours, &theirs);
    assert!(
        max <= max_diff && mean <= mean_diff,
        "{name}: pixels differ from Pillow's by up to {max} levels, {mean:.3} on average"
    );
    let embeddings = clip().embed_files(&[path, reference_path]).unwrap();
    let [Ok(a), Ok(b)] = embeddings.as_slice() else {
        panic!("{name}: {embeddings:?}");
    };
    let cos = cosine(a, b);
    assert!(cos >= 0.999, "{name}: cosine {cos} with Pillow's pixels");
}

#[test]
fn heic_8bit() {
    if libheif_present() {
        check("heic_8bit.heic", false, 1, 0.05);
    }
}

#[test]
fn heic_10bit() {
    if libheif_present() {
        check("heic_10bit.heic", false, 2, 0.6);
    }
}

#[test]
fn heic_alpha() {
    if libheif_present() {
        check("heic_alpha.heic", true, 1, 0.05);
    }
}

/// `irot` (90 degrees) plus an EXIF orientation 6 that restates it: rotated once, not twice.
#[test]
fn heic_irot_with_exif_orientation_rotates_once() {
    if libheif_present() {
        check("heic_irot_exif6.heic", false, 1, 0.05);
    }
}

/// `irot` plus `imir` (EXIF 5, transpose), with the EXIF value kept in the file.
#[test]
fn heic_mirror_with_exif_orientation() {
    if libheif_present() {
        check("heic_imir_exif5.heic", false, 1, 0.05);
    }
}

/// Two images, the second primary (80x48, turned half a turn): that one is decoded.
#[test]
fn heic_multi_image_decodes_the_primary() {
    if libheif_present() {
        check("heic_multi.heic", false, 1, 0.05);
    }
}

#[test]
fn avif_8bit() {
    if libheif_present() {
        check("avif_8bit.avif", false, 1, 0.25);
    }
}

#[test]
fn avif_10bit() {
    if libheif_present() {
        check("avif_10bit.avif", false, 3, 0.6);
    }
}

#[test]
fn avif_alpha() {
    if libheif_present() {
        check("avif_alpha.avif", true, 1, 0.25);
    }
}

#[test]
fn avif_irot_with_exif_orientation_rotates_once() {
    if libheif_present() {
        check("avif_irot_exif6.avif", false, 1, 0.25);
    }
}

#[test]
fn jxl_lossy() {
    check("jxl_lossy.jxl", false, 1, 0.25);
}

/// 16-bit samples: decoded to 16 bits, rounded to 8 by preprocessing (libjxl rounds to 8 bits
/// for Pillow).
#[test]
fn jxl_16bit() {
    let image = decode_file(&fixture("jxl_16bit.jxl"), &DecodeLimits::default()).unwrap();
    assert_eq!(image.color(), image::ColorType::Rgb16);
    check("jxl_16bit.jxl", false, 1, 0.25);
}

#[test]
fn jxl_alpha() {
    check("jxl_alpha.jxl", true, 1, 0.25);
}

/// The codestream's orientation 6 (from a JPEG's EXIF, moved there by cjxl) applied once; the
/// EXIF box cjxl keeps in the container is not applied again.
#[test]
fn jxl_orientation_applied_once() {
    check("jxl_orient6.jxl", false, 1, 0.25);
}

/// Limits are checked from the header: a 96x64 image under a 5000-pixel limit is refused
/// with its size, whatever the format.
#[test]
fn limits_refuse_from_the_header() {
    let limits = DecodeLimits {
        max_pixels: 5000,
        ..DecodeLimits::default()
    };
    let mut names = vec!["jxl_lossy.jxl"];
    if libheif_present() {
        names.extend(["heic_8bit.heic", "avif_8bit.avif"]);
    }
    for name in names {
        match decode_file(&fixture(name), &limits) {
            Err(DecodeError::TooLarge { width, height, .. }) => {
                assert_eq!((width, height), (96, 64), "{name}")
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}

/// Cut short, each format is an error naming the file, not a panic or a partial picture.
#[test]
fn truncated_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut names = vec!["jxl_lossy.jxl"];
    if libheif_present() {
        names.extend(["heic_8bit.heic", "avif_8bit.avif"]);
    }
    for name in names {
        let bytes = std::fs::read(fixture(name)).unwrap();
        let cut = dir.path().join(name);
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let error = decode_file(&cut, &DecodeLimits::default()).unwrap_err();
        assert!(
            matches!(error, DecodeError::Corrupt { .. }),
            "{name}: {error:?}"
        );
        assert_eq!(error.path(), Some(cut.as_path()));
    }
}

/// libheif is loaded once and used from many threads at once (the ingest pipeline decodes a
/// batch in parallel): every thread gets the same pixels as a lone decode.
#[test]
fn libheif_decodes_from_many_threads_at_once() {
    if !libheif_present() {
        return;
    }
    let names = ["heic_8bit.heic", "heic_alpha.heic", "avif_10bit.avif"];
    let decode = |name: &str| {
        decode_file(&fixture(name), &DecodeLimits::default())
            .unwrap()
            .into_bytes()
    };
    let expected: Vec<Vec<u8>> = names.iter().map(|name| decode(name)).collect();
    std::thread::scope(|scope| {
        for thread in 0..8 {
            let (names, expected) = (&names, &expected);
            scope.spawn(move || {
                for round in 0..10 {
                    let i = (thread + round) % names.len();
                    assert!(decode(names[i]) == expected[i], "{}", names[i]);
                }
            });
        }
    });
}
