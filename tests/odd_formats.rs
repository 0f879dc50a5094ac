//! Odd but valid TIFF and BMP files (from Pillow's test images, `fixtures/formats/odd/`)
//! decode to the pixels Pillow decodes from them. The TIFFs go through libtiff, loaded at run
//! time: without it they must be refused with a reason that says to install it, never a
//! panic (the tiled planar ones crashed the `tiff` crate 0.11.3).

mod common;

use std::path::{Path, PathBuf};

use image::GenericImageView;
use xsearch::decode::{decode_file, DecodeLimits};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/formats/odd")
        .join(name)
}

/// Decodes `name`, compares it with Pillow's pixels (`NAME.png`): mean absolute difference
/// at most `mean` levels. Returns false when libtiff is missing and the file was refused for it.
fn matches_pillow(name: &str, mean: f64) -> bool {
    let reference = image::open(fixture(&format!("{name}.png"))).unwrap();
    let image = match decode_file(&fixture(name), &DecodeLimits::default()) {
        Ok(image) => image,
        Err(e)
            if e.reason()
                .contains("install it, for example `apt install libtiff6`") =>
        {
            common::skip::skip_or_fail(&format!(
                "pixel check of {name}: libtiff is not installed ({e}); install it (Debian: \
                 `apt-get install libtiff6`)"
            ));
            return false;
        }
        Err(e) => panic!("{e}"),
    };
    assert_eq!(image.dimensions(), reference.dimensions(), "{name}");
    let (ours, theirs) = if reference.color().has_alpha() {
        (image.to_rgba8().into_raw(), reference.to_rgba8().into_raw())
    } else {
        (image.to_rgb8().into_raw(), reference.to_rgb8().into_raw())
    };
    let diff: u64 = ours
        .iter()
        .zip(&theirs)
        .map(|(a, b)| u64::from(a.abs_diff(*b)))
        .sum();
    let got = diff as f64 / ours.len() as f64;
    assert!(got <= mean, "{name}: mean difference {got} levels");
    true
}

#[test]
fn tiled_planar_tiffs_that_crashed_the_tiff_crate_decode() {
    matches_pillow("tiff_tiled_planar_16bit_RGB.tiff", 0.5);
    // Associated alpha: libtiff and Pillow both divide 8-bit premultiplied colour by alpha,
    // rounding differently, and one level at alpha a is 255/a levels after the division
    // (measured: 2.31 levels mean, all of it in nearly transparent pixels).
    matches_pillow("tiff_tiled_planar_16bit_RGBa.tiff", 2.5);
}

#[test]
fn bigtiff_decodes() {
    matches_pillow("hopper_bigtiff.tif", 0.0);
}

#[test]
fn four_bit_grey_tiff_decodes() {
    matches_pillow("hopper_gray_4bpp.tif", 0.0);
}

#[test]
fn os2_v2_bmp_decodes() {
    assert!(matches_pillow("pal8os2v2.bmp", 0.0));
}

#[test]
fn top_down_rle_bmp_decodes_upright() {
    assert!(matches_pillow("rletopdown.bmp", 0.0));
}
