//! JPEG specifics: the reduced-DCT path for large photos, and the check that a file is not
//! cut short.

use image::metadata::Orientation;
use image::{DynamicImage, GrayImage, RgbImage};

use super::limits::DecodeLimits;

/// The DCT scale, in eighths (4 or 2), that decodes an image with this short side to the
/// smallest size whose short side is still `min_side`; `None` when even half size is too small.
///
/// 1/8 is left out: jpeg-decoder 0.3.2's 1x1 IDCT truncates the DC value instead of rounding
/// it, darkening the image by half a level. Measured on 224 crops of a 4000x3000 JPEG decoded
/// to 500x375: mean difference from full-size decoding 0.78 levels (0.24 at 1/4); on the parity
/// fixture `large.jpg` with its 64-pixel model, embedding cosine to open_clip 0.988 at 1/8 and
/// 0.9997 at 1/4. A 1/4 decode of even a 50-megapixel photo is only 2 megapixels.
fn dct_scale(short_side: u32, min_side: u32) -> Option<u32> {
    [2, 4]
        .into_iter()
        .find(|&eighths| scaled_len(short_side, eighths) >= min_side.max(1))
}

/// A side's length after decoding at `eighths`/8 scale: every 8-pixel block becomes `eighths`
/// pixels, and a partial last block rounds up (libjpeg's `jdiv_round_up`).
fn scaled_len(len: u32, eighths: u32) -> u32 {
    (len * eighths).div_ceil(8)
}

/// Decodes a JPEG at a reduced DCT scale, or returns `None` to leave it to the full-size path:
/// too small to reduce, CMYK or 12-bit samples, above the limits, or anything `jpeg-decoder`
/// cannot read or decode. That path then refuses the file with its usual errors (the limits
/// are checked on the same full size from the header, before any pixel buffer), or decodes it
/// when it is merely more lenient than jpeg-decoder: scaling never rejects a file.
pub(super) fn decode_scaled(
    bytes: &[u8],
    limits: &DecodeLimits,
    min_side: u32,
) -> Option<DynamicImage> {
    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    decoder.read_info().ok()?;
    let info = decoder.info()?;
    let channels: u64 = match info.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => 3,
        jpeg_decoder::PixelFormat::L8 => 1,
        _ => return None,
    };
    let (width, height) = (u32::from(info.width), u32::from(info.height));
    let full_bytes = u64::from(width) * u64::from(height) * channels;
    if limits.exceeded(width, height, full_bytes).is_some() {
        return None;
    }
    let eighths = dct_scale(width.min(height), min_side)?;
    let (out_w, out_h) = (scaled_len(width, eighths), scaled_len(height, eighths));
    // jpeg-decoder picks the smallest scale at which either side reaches the request, so asking
    // for exactly the reduced size selects `eighths`.
    let scaled = decoder.scale(out_w as u16, out_h as u16).ok()?;
    if scaled != (out_w as u16, out_h as u16) {
        return None;
    }
    decoder.set_max_decoding_buffer_size(usize::try_from(limits.max_alloc).unwrap_or(usize::MAX));
    let pixels = decoder.decode().ok()?;
    let mut image = if channels == 3 {
        DynamicImage::ImageRgb8(RgbImage::from_raw(out_w, out_h, pixels)?)
    } else {
        DynamicImage::ImageLuma8(GrayImage::from_raw(out_w, out_h, pixels)?)
    };
    let orientation = decoder
        .exif_data()
        .and_then(Orientation::from_exif_chunk)
        .unwrap_or(Orientation::NoTransforms);
    image.apply_orientation(orientation);
    Some(image)
}

/// Whether a JPEG's marker segments run through to an end-of-image marker.
///
/// Walks the segments of ITU-T T.81 annex B from the start: length-prefixed segments are
/// skipped whole (so an EXIF thumbnail's own markers are never seen), and entropy-coded data
/// ends at the first 0xFF not followed by a stuffed zero or a restart marker. Anything after
/// the first end-of-image marker (vendor trailers, appended videos) is not looked at.
pub(super) fn is_complete(bytes: &[u8]) -> bool {
    let mut i = 2; // after SOI
    while i + 1 < bytes.len() {
        if bytes[i] != 0xff {
            // Stray bytes between segments: lenient decoders skip them, so do we.
            i += 1;
            continue;
        }
        match bytes[i + 1] {
            0xd9 => return true,
            // Fill bytes, and markers without a length (TEM, RST0-7).
            0xff => i += 1,
            0x01 | 0xd0..=0xd7 => i += 2,
            marker => {
                let Some(length) = bytes.get(i + 2..i + 4) else {
                    return false;
                };
                i += 2 + usize::from(u16::from_be_bytes([length[0], length[1]]));
                if marker == 0xda {
                    // Start of scan: entropy-coded data follows, up to the next real marker.
                    while i + 1 < bytes.len()
                        && !(bytes[i] == 0xff
                            && bytes[i + 1] != 0
                            && !(0xd0..=0xd7).contains(&bytes[i + 1]))
                    {
                        i += 1;
                    }
                }
            }
        }
    }
    false
}
