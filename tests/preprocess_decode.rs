//! `decode_file` / `decode_bytes`: content detection, limits, orientation, damaged input.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::codecs::gif::GifEncoder;
use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, Frame, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};
use xsearch::ingest::decode::{decode_bytes, decode_file, DecodeError, DecodeLimits};

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
