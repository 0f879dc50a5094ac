//! `decode_file` / `decode_bytes`: content detection, limits, orientation, damaged input; the
//! reduced-scale JPEG path of `decode_bytes_scaled`, through libjpeg-turbo and, in a second run
//! of these tests, through jpeg-decoder (`common/jpeg_paths.rs`).

mod common;

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use image::codecs::gif::GifEncoder;
use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, Frame, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};
use xsearch::decode::{
    decode_bytes, decode_bytes_scaled, decode_file, decode_file_scaled, turbojpeg_status,
    DecodeError, DecodeLimits,
};
use xsearch::model::preprocess::{min_source_side, Preprocessor};

/// A deterministic, busy test picture (gradients and a checker) of the given size.
fn picture(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        let checker = if (x / 4 + y / 4) % 2 == 0 { 40 } else { 0 };
        Rgb([
            (x * 255 / width.max(2)) as u8,
            (y * 255 / height.max(2)) as u8,
            (120 + checker) as u8,
        ])
    })
}

fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut bytes = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut bytes), format)
        .expect("encode test image");
    bytes
}

fn jpeg(image: &RgbImage) -> Vec<u8> {
    let mut bytes = Vec::new();
    JpegEncoder::new_with_quality(&mut bytes, 95)
        .encode_image(image)
        .expect("encode jpeg");
    bytes
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write test file");
    path
}

fn limits() -> DecodeLimits {
    DecodeLimits::default()
}

#[test]
fn empty_file_is_its_own_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "empty.jpg", b"");
    let err = decode_file(&path, &limits()).unwrap_err();
    assert!(matches!(err, DecodeError::Empty { .. }), "{err:?}");
    assert_eq!(err.path(), Some(path.as_path()));
    assert_eq!(err.to_string(), format!("{}: empty file", path.display()));
    assert!(matches!(
        decode_bytes(b"", &limits()),
        Err(DecodeError::Empty { path: None })
    ));
}

#[test]
fn missing_file_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.png");
    let err = decode_file(&path, &limits()).unwrap_err();
    assert!(matches!(err, DecodeError::Io { .. }), "{err:?}");
    assert!(err
        .to_string()
        .starts_with(&format!("{}: ", path.display())));
}

#[test]
fn truncated_jpeg_is_corrupt() {
    let bytes = jpeg(&picture(64, 48));
    let err = decode_bytes(&bytes[..bytes.len() / 2], &limits()).unwrap_err();
    assert!(matches!(err, DecodeError::Corrupt { .. }), "{err:?}");
    // Even one missing byte: the end-of-image marker is gone.
    let err = decode_bytes(&bytes[..bytes.len() - 1], &limits()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "<memory>: corrupt or truncated image: JPEG data ends before its end-of-image marker (truncated file?)"
    );
}

#[test]
fn jpeg_with_bytes_after_its_end_still_decodes() {
    // Cameras pad files and phones append trailers (motion-photo videos) after the JPEG's end.
    let stored = picture(24, 16);
    let mut bytes = jpeg(&stored);
    bytes.extend_from_slice(b"\xff\xda\x00\x08trailer that is not JPEG\x00\x00\x00");
    let image = decode_bytes(&bytes, &limits()).unwrap();
    assert_eq!((image.width(), image.height()), (24, 16));
}

#[test]
fn truncated_png_is_corrupt() {
    let bytes = encode(&DynamicImage::ImageRgb8(picture(64, 48)), ImageFormat::Png);
    let err = decode_bytes(&bytes[..bytes.len() / 2], &limits()).unwrap_err();
    assert!(matches!(err, DecodeError::Corrupt { .. }), "{err:?}");
}

#[test]
fn random_bytes_named_jpg_are_an_unknown_format() {
    let dir = tempfile::tempdir().unwrap();
    // A fixed LCG: reproducible noise that matches no signature.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            (state >> 56) as u8
        })
        .collect();
    let path = write(dir.path(), "noise.jpg", &noise);
    let err = decode_file(&path, &limits()).unwrap_err();
    assert!(matches!(err, DecodeError::UnknownFormat { .. }), "{err:?}");
}

#[test]
fn text_file_is_an_unknown_format() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "notes.png",
        b"sunset over the sea\nsecond line\n",
    );
    let err = decode_file(&path, &limits()).unwrap_err();
    assert!(matches!(err, DecodeError::UnknownFormat { .. }), "{err:?}");
    assert!(err
        .to_string()
        .starts_with(&format!("{}: not an image", path.display())));
}

/// CRC-32 (IEEE), as PNG chunks need.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

#[test]
fn png_bomb_is_rejected_from_its_header() {
    // A valid PNG whose header claims 100000x100000 RGB (30 GB decoded); the data is one
    // empty deflate block, so only the header can make it dangerous.
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    png_chunk(&mut png, b"IHDR", &ihdr);
    png_chunk(
        &mut png,
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    png_chunk(&mut png, b"IEND", &[]);
    let err = decode_bytes(&png, &limits()).unwrap_err();
    match err {
        DecodeError::TooLarge { width, height, .. } => {
            assert_eq!((width, height), (100_000, 100_000))
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[test]
fn pixel_limit_applies_to_ordinary_images() {
    let bytes = encode(&DynamicImage::ImageRgb8(picture(100, 60)), ImageFormat::Png);
    let tight = DecodeLimits {
        max_pixels: 5_999,
        ..DecodeLimits::default()
    };
    let err = decode_bytes(&bytes, &tight).unwrap_err();
    assert_eq!(
        err.to_string(),
        "<memory>: image is 100x60, above the limit of 5999 pixels"
    );
    let exact = DecodeLimits {
        max_pixels: 6_000,
        ..DecodeLimits::default()
    };
    assert_eq!(decode_bytes(&bytes, &exact).unwrap().width(), 100);
}

/// Insert an EXIF APP1 segment holding only an orientation tag right after the JPEG's SOI.
fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = b"MM\x00\x2a\x00\x00\x00\x08".to_vec(); // big-endian, IFD at offset 8
    tiff.extend_from_slice(&1u16.to_be_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_be_bytes()); // count
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0]); // value padding
    tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    let mut app1 = b"Exif\x00\x00".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xff, 0xe1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

#[test]
fn exif_orientation_6_is_applied() {
    // Stored 16x8: left half red, right half blue. Orientation 6 means "rotate 90 degrees
    // clockwise to display", so the upright image is 8x16 with red on top.
    let stored = RgbImage::from_fn(16, 8, |x, _| {
        if x < 8 {
            Rgb([255, 0, 0])
        } else {
            Rgb([0, 0, 255])
        }
    });
    let bytes = with_exif_orientation(&jpeg(&stored), 6);
    let upright = decode_bytes(&bytes, &limits()).unwrap().to_rgb8();
    assert_eq!(upright.dimensions(), (8, 16));
    let top = upright.get_pixel(4, 3);
    let bottom = upright.get_pixel(4, 12);
    assert!(top[0] > 200 && top[2] < 60, "top is {top:?}, expected red");
    assert!(
        bottom[2] > 200 && bottom[0] < 60,
        "bottom is {bottom:?}, expected blue"
    );

    // The same bytes without the tag stay as stored.
    let plain = decode_bytes(&jpeg(&stored), &limits()).unwrap();
    assert_eq!((plain.width(), plain.height()), (16, 8));
}

#[test]
fn gif_decodes_its_first_frame() {
    let first = RgbaImage::from_pixel(6, 4, Rgba([255, 0, 0, 255]));
    let second = RgbaImage::from_pixel(6, 4, Rgba([0, 0, 255, 255]));
    let mut bytes = Vec::new();
    GifEncoder::new(&mut bytes)
        .encode_frames([Frame::new(first), Frame::new(second)])
        .expect("encode gif");
    let image = decode_bytes(&bytes, &limits()).unwrap().to_rgba8();
    assert_eq!(image.dimensions(), (6, 4));
    assert!(image.pixels().all(|p| *p == Rgba([255, 0, 0, 255])));
}

#[test]
fn lossless_formats_round_trip_exactly() {
    let original = DynamicImage::ImageRgb8(picture(37, 23));
    for format in [
        ImageFormat::Png,
        ImageFormat::Bmp,
        ImageFormat::Tiff,
        ImageFormat::WebP,
    ] {
        let bytes = encode(&original, format);
        let decoded = decode_bytes(&bytes, &limits())
            .unwrap_or_else(|e| panic!("{format:?}: {e}"))
            .to_rgb8();
        assert_eq!(decoded, original.to_rgb8(), "{format:?}");
    }
}

#[test]
fn format_comes_from_content_not_extension() {
    let dir = tempfile::tempdir().unwrap();
    let stored = picture(20, 10);
    let path = write(dir.path(), "really_a_jpeg.png", &jpeg(&stored));
    let image = decode_file(&path, &limits()).unwrap();
    assert_eq!((image.width(), image.height()), (20, 10));
    // Lossy, but close to what was stored.
    let decoded = image.to_rgb8();
    let max = decoded
        .as_raw()
        .iter()
        .zip(stored.as_raw())
        .map(|(a, b)| a.abs_diff(*b))
        .max()
        .unwrap();
    assert!(max < 40, "max difference {max}");
}

/// A 12-megapixel picture with structure at several scales: gradients, rings, stripes, and a
/// fine texture that any downscale averages away.
fn photo(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        let (fx, fy) = (x as f32 / width as f32, y as f32 / height as f32);
        let aspect = width as f32 / height as f32;
        let ring = (((fx - 0.3) * aspect).hypot(fy - 0.6) * 40.0).sin() * 0.5 + 0.5;
        let stripe = ((x + 2 * y) as f32 / 37.0).sin() * 0.5 + 0.5;
        let texture = ((x * 7 + y * 13) % 5) as f32 * 6.0;
        Rgb([
            (150.0 * fx + 90.0 * ring + texture) as u8,
            (120.0 * fy + 100.0 * stripe + texture) as u8,
            (60.0 + 120.0 * ring * stripe) as u8,
        ])
    })
}

/// [`photo`] at 4000x3000, JPEG-encoded once for all the tests that need a large file.
fn large_jpeg() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| jpeg(&photo(4000, 3000)))
}

/// The crop (resize + centre crop) of RN50's preprocessing: 224 pixels.
fn preprocessor() -> Preprocessor {
    Preprocessor::new(224, [0.5; 3], [0.5; 3])
}

/// Mean and largest absolute difference between two crops' bytes.
fn crop_difference(a: &RgbImage, b: &RgbImage) -> (f64, u8) {
    let diffs: Vec<u8> = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| x.abs_diff(*y))
        .collect();
    let mean = diffs.iter().map(|&d| f64::from(d)).sum::<f64>() / diffs.len() as f64;
    (mean, diffs.iter().copied().max().unwrap_or(0))
}

#[test]
fn large_jpeg_decodes_at_the_smallest_scale_keeping_twice_the_model_size() {
    let min_side = min_source_side(224);
    assert_eq!(min_side, 448);
    // 3000 / 4 = 750 is the smallest reduction at or above 448 (1/8 would give 375).
    let image = decode_bytes_scaled(large_jpeg(), &limits(), min_side).unwrap();
    assert_eq!((image.width(), image.height()), (1000, 750));
    // A larger minimum keeps more: half size.
    let image = decode_bytes_scaled(large_jpeg(), &limits(), 751).unwrap();
    assert_eq!((image.width(), image.height()), (2000, 1500));
    // Too large a minimum for any reduction: full size.
    let image = decode_bytes_scaled(large_jpeg(), &limits(), 1501).unwrap();
    assert_eq!((image.width(), image.height()), (4000, 3000));
    // 1/8 where it keeps the minimum, but only through libjpeg-turbo (jpeg-decoder's 1x1
    // inverse DCT truncates: see `src/decode/jpeg.rs`).
    let image = decode_bytes_scaled(large_jpeg(), &limits(), 375).unwrap();
    let expected = match turbojpeg_status() {
        Ok(()) => (500, 375),
        Err(_) => (1000, 750),
    };
    assert_eq!((image.width(), image.height()), expected);
}

#[test]
fn every_test_here_passes_on_the_pure_rust_path_too() {
    common::jpeg_paths::rerun_on_the_pure_rust_path(
        "every_test_here_passes_on_the_pure_rust_path_too",
    );
}

#[test]
fn reduced_jpeg_preprocesses_close_to_full_size() {
    let preprocess = preprocessor();
    let full = decode_bytes(large_jpeg(), &limits()).unwrap();
    let reduced = decode_bytes_scaled(large_jpeg(), &limits(), min_source_side(224)).unwrap();
    assert_eq!(reduced.width(), 1000);
    let (mean, max) = crop_difference(
        &preprocess.resize_crop(&full),
        &preprocess.resize_crop(&reduced),
    );
    println!("224 crop, 1/4 scale vs full size: mean {mean:.3}, max {max}");
    // Measured (image 0.25.10's encoder, jpeg-decoder 0.3.2, zune-jpeg 0.5.15): mean 0.241,
    // max 2. The bounds leave room for decoder rounding changes, not for a wrong scale or a
    // shifted crop (those give tens of levels).
    assert!(mean < 1.0 && max <= 8, "mean {mean:.3}, max {max}");
}

#[test]
fn reduced_jpeg_is_oriented_like_the_full_size_one() {
    // Orientation 6: rotate 90 degrees clockwise to display.
    let bytes = with_exif_orientation(large_jpeg(), 6);
    let plain = decode_bytes_scaled(large_jpeg(), &limits(), 448).unwrap();
    let upright = decode_bytes_scaled(&bytes, &limits(), 448).unwrap();
    assert_eq!((upright.width(), upright.height()), (750, 1000));
    assert_eq!(upright.to_rgb8(), plain.rotate90().to_rgb8());
    // The full-size path agrees on the shape it turns the photo into.
    let full = decode_bytes(&bytes, &limits()).unwrap();
    assert_eq!((full.width(), full.height()), (3000, 4000));
}

#[test]
fn large_grey_jpeg_decodes_reduced_as_grey() {
    let grey = DynamicImage::ImageRgb8(photo(2000, 1800)).to_luma8();
    let mut bytes = Vec::new();
    JpegEncoder::new_with_quality(&mut bytes, 90)
        .encode_image(&grey)
        .expect("encode grey jpeg");
    // 1800 / 4 = 450 keeps 448.
    let reduced = decode_bytes_scaled(&bytes, &limits(), 448).unwrap();
    assert!(
        matches!(reduced, DynamicImage::ImageLuma8(_)),
        "{reduced:?}"
    );
    assert_eq!((reduced.width(), reduced.height()), (500, 450));
    let full = decode_bytes(&bytes, &limits()).unwrap();
    let preprocess = preprocessor();
    let (mean, max) = crop_difference(
        &preprocess.resize_crop(&full),
        &preprocess.resize_crop(&reduced),
    );
    println!("grey 224 crop, 1/4 scale vs full size: mean {mean:.3}, max {max}");
    // Measured: mean 0.208, max 1; bounds as for colour above.
    assert!(mean < 1.0 && max <= 8, "mean {mean:.3}, max {max}");
}

#[test]
fn small_jpeg_keeps_the_exact_full_size_path() {
    // 890 on the short side: half would be 445, below 448.
    let bytes = jpeg(&photo(1200, 890));
    let scaled = decode_bytes_scaled(&bytes, &limits(), 448).unwrap();
    assert_eq!(scaled, decode_bytes(&bytes, &limits()).unwrap());
}

#[test]
fn reduced_path_checks_limits_on_the_full_size() {
    let tight = DecodeLimits {
        max_pixels: 4000 * 3000 - 1,
        ..DecodeLimits::default()
    };
    let err = decode_bytes_scaled(large_jpeg(), &tight, 448).unwrap_err();
    assert_eq!(
        err.to_string(),
        "<memory>: image is 4000x3000, above the limit of 11999999 pixels"
    );
}

#[test]
fn reduced_path_refuses_a_truncated_jpeg() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = large_jpeg();
    let path = write(dir.path(), "cut.jpg", &bytes[..bytes.len() * 2 / 3]);
    let err = decode_file_scaled(&path, &limits(), 448).unwrap_err();
    assert!(matches!(err, DecodeError::Corrupt { .. }), "{err:?}");
    assert_eq!(err.path(), Some(path.as_path()));
}

#[test]
fn reason_is_the_message_without_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "notes.jpg", b"not a picture");
    let err = decode_file(&path, &limits()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{}: {}", path.display(), err.reason())
    );
    assert!(
        err.reason().starts_with("not an image: "),
        "{}",
        err.reason()
    );
    let err = decode_bytes(b"", &limits()).unwrap_err();
    assert_eq!(err.reason(), "empty file");
}
