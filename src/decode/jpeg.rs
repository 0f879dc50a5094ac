//! JPEG specifics: the reduced-DCT path for large photos (libjpeg-turbo when the system has
//! it, `turbojpeg.rs`; jpeg-decoder otherwise), the check that a file is not cut short, and the
//! marker segments a JPEG's header is made of.

use image::metadata::Orientation;
use image::{DynamicImage, GrayImage, RgbImage};

use super::limits::DecodeLimits;
use super::turbojpeg;

/// The DCT scales, in eighths, that jpeg-decoder reduces by.
///
/// 1/8 is left out: jpeg-decoder 0.3.2's 1x1 IDCT truncates the DC value instead of rounding
/// it, darkening the image by half a level. Measured on 224 crops of a 4000x3000 JPEG decoded
/// to 500x375: mean difference from full-size decoding 0.78 levels (0.24 at 1/4); on the parity
/// fixture `large.jpg` with its 64-pixel model, embedding cosine to open_clip 0.988 at 1/8 and
/// 0.9997 at 1/4. A 1/4 decode of even a 50-megapixel photo is only 2 megapixels.
const RUST_SCALES: &[u32] = &[2, 4];

/// The DCT scales, in eighths, that libjpeg-turbo reduces by: its 1x1 IDCT rounds, so 1/8 is
/// as exact as the others (Pillow's `draft()` uses it). It only serves photos whose short side
/// is at least eight times `min_side` (3584 pixels for RN50's 448: 43 megapixels at 4:3).
const TURBO_SCALES: &[u32] = &[1, 2, 4];

/// The DCT scale, in eighths, of `scales` (smallest first) that decodes an image with this
/// short side to the smallest size whose short side is still `min_side`; `None` when even the
/// largest is too small.
fn dct_scale(scales: &[u32], short_side: u32, min_side: u32) -> Option<u32> {
    scales
        .iter()
        .copied()
        .find(|&eighths| scaled_len(short_side, eighths) >= min_side.max(1))
}

/// A side's length after decoding at `eighths`/8 scale: every 8-pixel block becomes `eighths`
/// pixels, and a partial last block rounds up (libjpeg's `jdiv_round_up`, TurboJPEG's
/// `TJSCALED`).
pub(super) fn scaled_len(len: u32, eighths: u32) -> u32 {
    (len * eighths).div_ceil(8)
}

/// Decodes a JPEG at a reduced DCT scale, or returns `None` to leave it to the full-size path:
/// too small to reduce, CMYK or 12-bit samples, above the limits, or anything neither
/// libjpeg-turbo nor `jpeg-decoder` decodes cleanly. That path then refuses the file with its
/// usual errors (the limits are checked on the same full size from the header, before any
/// pixel buffer), or decodes it when it is merely more lenient: scaling never rejects a file.
pub(super) fn decode_scaled(
    bytes: &[u8],
    limits: &DecodeLimits,
    min_side: u32,
) -> Option<DynamicImage> {
    let scale = |width: u32, height: u32| dct_scale(TURBO_SCALES, width.min(height), min_side);
    if let Some(decoded) = turbojpeg::decode(bytes, limits, scale) {
        let (width, height) = (decoded.width, decoded.height);
        let mut image = if decoded.channels == 3 {
            DynamicImage::ImageRgb8(RgbImage::from_raw(width, height, decoded.pixels)?)
        } else {
            DynamicImage::ImageLuma8(GrayImage::from_raw(width, height, decoded.pixels)?)
        };
        image.apply_orientation(exif_orientation(bytes).unwrap_or(Orientation::NoTransforms));
        return Some(image);
    }
    decode_scaled_rust(bytes, limits, min_side)
}

/// [`decode_scaled`] by jpeg-decoder, without libjpeg-turbo.
fn decode_scaled_rust(bytes: &[u8], limits: &DecodeLimits, min_side: u32) -> Option<DynamicImage> {
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
    let eighths = dct_scale(RUST_SCALES, width.min(height), min_side)?;
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

/// The marker segments before the first scan: `(marker, payload)`, stopping at anything that
/// does not parse.
pub(super) fn segments(jpeg: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    let mut i = 2; // after SOI
    std::iter::from_fn(move || loop {
        if *jpeg.get(i)? != 0xff {
            return None;
        }
        let marker = *jpeg.get(i + 1)?;
        if marker == 0xff {
            i += 1; // fill byte
            continue;
        }
        if matches!(marker, 0xd9 | 0xda) {
            return None;
        }
        let length = usize::from(u16::from_be_bytes([*jpeg.get(i + 2)?, *jpeg.get(i + 3)?]));
        let payload = jpeg.get(i + 4..(i + 2 + length).max(i + 4))?;
        i += 2 + length;
        return Some((marker, payload));
    })
}

/// The orientation stated by the first EXIF block (APP1) of a JPEG that states one.
pub(super) fn exif_orientation(jpeg: &[u8]) -> Option<Orientation> {
    segments(jpeg).find_map(|(marker, payload)| {
        if marker == 0xe1 && payload.starts_with(b"Exif\0\0") {
            Orientation::from_exif_chunk(&payload[6..])
        } else {
            None
        }
    })
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
                    i = scan_end(bytes, i);
                }
            }
        }
    }
    false
}

/// Where the entropy-coded data starting at `i` ends: at the first 0xFF that is neither a
/// stuffed zero nor a restart marker, or at the end of `bytes`. `memchr` finds the candidates:
/// a byte at a time, this walk cost about as much as hashing the file.
fn scan_end(bytes: &[u8], mut i: usize) -> usize {
    loop {
        let Some(offset) = bytes.get(i..).and_then(|rest| memchr::memchr(0xff, rest)) else {
            return bytes.len();
        };
        i += offset;
        match bytes.get(i + 1) {
            Some(0 | 0xd0..=0xd7) => i += 2,
            _ => return i,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SOI, a start of scan (length 2: no components, enough for the walk), then `data`.
    fn scan(data: &[u8]) -> Vec<u8> {
        let mut jpeg = vec![0xff, 0xd8, 0xff, 0xda, 0, 2];
        jpeg.extend_from_slice(data);
        jpeg
    }

    #[test]
    fn stuffed_zeros_and_restart_markers_stay_inside_the_scan() {
        let data = [1, 0xff, 0, 2, 0xff, 0xd3, 3, 0xff, 0xd9];
        assert_eq!(scan_end(&scan(&data), 6), 6 + 7);
        assert!(is_complete(&scan(&data)));
        // Cut anywhere before the end-of-image marker.
        for len in 6..6 + 8 {
            assert!(!is_complete(&scan(&data)[..len]), "{len}");
        }
        // A lone 0xFF last, and no 0xFF at all.
        assert!(!is_complete(&scan(&[1, 2, 0xff])));
        assert_eq!(scan_end(&scan(&[1, 2, 3]), 6), 9);
    }

    #[test]
    fn a_second_scan_after_a_marker_segment_is_walked_too() {
        // Progressive files: scan, Huffman table (DHT), scan, end.
        let data = [
            1, 0xff, 0, 0xff, 0xc4, 0, 3, 9, 0xff, 0xda, 0, 2, 0xff, 0, 0xff, 0xd9,
        ];
        assert!(is_complete(&scan(&data)));
        assert!(!is_complete(&scan(&data[..data.len() - 1])));
    }
}
