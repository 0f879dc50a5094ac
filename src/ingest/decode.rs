//! Decoding image files into upright pixels, safely.
//!
//! - The format comes from the content (magic bytes), never from the file name: a JPEG saved as
//!   `.png` decodes, random bytes named `.jpg` are an unknown format. Every supported format
//!   (JPEG, PNG, WebP, GIF, BMP, TIFF) has a signature, so the extension adds nothing.
//! - The header's dimensions are checked against [`DecodeLimits`] before any pixel buffer is
//!   allocated, so a decompression bomb (a tiny PNG claiming 100000x100000) costs nothing.
//! - EXIF orientation is applied on purpose: people see their photos upright, and search should
//!   see them the same way. A broken EXIF block is ignored (the pixels are still good).
//! - GIFs (and other animations) decode to their first frame.
//! - A JPEG cut short is an error, as in Pillow, not a half-grey picture: the JPEG decoder
//!   pads missing data silently, so the marker structure is checked for its end first.
//! - A caller that only needs a small picture (the model's preprocessing) can say so with
//!   [`decode_file_scaled`] / [`decode_bytes_scaled`]: a JPEG large enough is then decoded at
//!   1/2 or 1/4 of its size by a scaled inverse DCT (`jpeg-decoder`, as libjpeg's
//!   `scale_denom`, Pillow's `draft()`), never below the short side asked for. It skips most of
//!   the IDCT, colour conversion and upsampling work, and the buffer is 4 or 16 times smaller.
//!   Limits are still checked on the full size given by the header, and orientation and the
//!   truncation check apply as on the full-size path. Everything else (small JPEGs, CMYK and
//!   12-bit JPEGs, files jpeg-decoder refuses, other formats) takes the full-size path, which
//!   is also where every error comes from.

use std::fmt;
use std::io::{self, Cursor};
use std::path::{Path, PathBuf};

use image::metadata::Orientation;
use image::{
    DynamicImage, GrayImage, ImageDecoder, ImageError, ImageFormat, ImageReader, RgbImage,
};

/// Bounds on what one image may cost to decode.
///
/// The defaults accept every real camera and phone photo (up to 268 megapixels, 65535 pixels on
/// a side) and refuse decompression bombs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest accepted width, in pixels. Default 65535 (the JPEG maximum).
    pub max_width: u32,
    /// Largest accepted height, in pixels. Default 65535.
    pub max_height: u32,
    /// Largest accepted `width * height`. Default 2^28 (268 megapixels).
    pub max_pixels: u64,
    /// Largest decoded buffer, and bound on the decoder's own allocations, in bytes.
    /// Default 2 GiB (268 megapixels of 8-bit RGB is 805 MB; 16-bit RGBA doubles it twice).
    pub max_alloc: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_width: 65_535,
            max_height: 65_535,
            max_pixels: 1 << 28,
            max_alloc: 2 << 30,
        }
    }
}

impl DecodeLimits {
    fn image_limits(&self) -> image::Limits {
        let mut limits = image::Limits::default();
        limits.max_image_width = Some(self.max_width);
        limits.max_image_height = Some(self.max_height);
        limits.max_alloc = Some(self.max_alloc);
        limits
    }

    /// Which limit, if any, an image of this size and decoded byte count exceeds.
    fn exceeded(&self, width: u32, height: u32, bytes: u64) -> Option<String> {
        if width > self.max_width {
            Some(format!("width limit of {}", self.max_width))
        } else if height > self.max_height {
            Some(format!("height limit of {}", self.max_height))
        } else if u64::from(width) * u64::from(height) > self.max_pixels {
            Some(format!("limit of {} pixels", self.max_pixels))
        } else if bytes > self.max_alloc {
            Some(format!("memory limit of {} bytes", self.max_alloc))
        } else {
            None
        }
    }
}

/// Why an image could not be decoded. Each variant names the file (`None` for in-memory bytes).
///
/// Displays as `PATH: REASON` (`<memory>: REASON` for in-memory bytes); [`DecodeError::reason`]
/// is the part after the path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The file could not be opened or read.
    Io {
        /// The file.
        path: Option<PathBuf>,
        /// The underlying error.
        source: io::Error,
    },
    /// The file has no bytes at all.
    Empty {
        /// The file.
        path: Option<PathBuf>,
    },
    /// The content matches no image format's signature.
    UnknownFormat {
        /// The file.
        path: Option<PathBuf>,
    },
    /// A recognised image format (or feature of one) that this build cannot decode.
    Unsupported {
        /// The file.
        path: Option<PathBuf>,
        /// The decoder's explanation.
        detail: String,
    },
    /// The header announces an image larger than [`DecodeLimits`] allow.
    TooLarge {
        /// The file.
        path: Option<PathBuf>,
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
        /// The limit it exceeds, in words.
        limit: String,
    },
    /// The data is damaged or cut short.
    Corrupt {
        /// The file.
        path: Option<PathBuf>,
        /// The decoder's message.
        message: String,
    },
}

impl DecodeError {
    /// The file the error is about; `None` when decoding in-memory bytes.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Self::Io { path, .. }
            | Self::Empty { path }
            | Self::UnknownFormat { path }
            | Self::Unsupported { path, .. }
            | Self::TooLarge { path, .. }
            | Self::Corrupt { path, .. } => path.as_deref(),
        }
    }

    /// What went wrong, without the path: for records already keyed by the path (the index's
    /// failure list) and for in-memory bytes.
    pub fn reason(&self) -> String {
        match self {
            Self::Io { source, .. } => source.to_string(),
            Self::Empty { .. } => "empty file".to_owned(),
            Self::UnknownFormat { .. } => "not an image: content matches no known format \
                 (supported: JPEG, PNG, WebP, GIF, BMP, TIFF)"
                .to_owned(),
            Self::Unsupported { detail, .. } => format!("unsupported image: {detail}"),
            Self::TooLarge {
                width,
                height,
                limit,
                ..
            } => format!("image is {width}x{height}, above the {limit}"),
            Self::Corrupt { message, .. } => format!("corrupt or truncated image: {message}"),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.path() {
            Some(path) => write!(f, "{}: {}", path.to_string_lossy(), self.reason()),
            None => write!(f, "<memory>: {}", self.reason()),
        }
    }
}

/// Decode the image file at `path`: format from its content, within `limits`, EXIF orientation
/// applied, first frame of an animation.
pub fn decode_file(path: &Path, limits: &DecodeLimits) -> Result<DynamicImage, DecodeError> {
    decode_file_with(path, limits, None)
}

fn decode_file_with(
    path: &Path,
    limits: &DecodeLimits,
    min_side: Option<u32>,
) -> Result<DynamicImage, DecodeError> {
    // Whole-file reads: the JPEG decoder buffers its whole input anyway, and the compressed
    // file is small next to the pixels it decodes to.
    let bytes = std::fs::read(path).map_err(|source| DecodeError::Io {
        path: Some(path.to_path_buf()),
        source,
    })?;
    decode(&bytes, limits, Some(path), min_side)
}

/// [`decode_file`] for an image already in memory.
pub fn decode_bytes(bytes: &[u8], limits: &DecodeLimits) -> Result<DynamicImage, DecodeError> {
    decode(bytes, limits, None, None)
}

/// [`decode_file`] for a caller that needs no more than `min_side` pixels on the short side: a
/// JPEG whose short side is at least twice that decodes at 1/2 or 1/4 scale, the smallest
/// that keeps the short side at or above `min_side` (before orientation, which only swaps the
/// sides). Any other image decodes at full size.
pub fn decode_file_scaled(
    path: &Path,
    limits: &DecodeLimits,
    min_side: u32,
) -> Result<DynamicImage, DecodeError> {
    decode_file_with(path, limits, Some(min_side))
}

/// [`decode_file_scaled`] for an image already in memory.
pub fn decode_bytes_scaled(
    bytes: &[u8],
    limits: &DecodeLimits,
    min_side: u32,
) -> Result<DynamicImage, DecodeError> {
    decode(bytes, limits, None, Some(min_side))
}

fn decode(
    bytes: &[u8],
    limits: &DecodeLimits,
    path: Option<&Path>,
    min_side: Option<u32>,
) -> Result<DynamicImage, DecodeError> {
    let path = || path.map(Path::to_path_buf);
    if bytes.is_empty() {
        return Err(DecodeError::Empty { path: path() });
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|source| DecodeError::Io {
            path: path(),
            source,
        })?;
    match reader.format() {
        None => return Err(DecodeError::UnknownFormat { path: path() }),
        // The JPEG decoder fills missing data with grey instead of failing; Pillow refuses such
        // files ("image file is truncated"), and so do we.
        Some(ImageFormat::Jpeg) if !jpeg_is_complete(bytes) => {
            return Err(DecodeError::Corrupt {
                path: path(),
                message: "JPEG data ends before its end-of-image marker (truncated file?)"
                    .to_owned(),
            });
        }
        Some(ImageFormat::Jpeg) => {
            if let Some(image) = min_side.and_then(|side| decode_jpeg_scaled(bytes, limits, side)) {
                return Ok(image);
            }
        }
        Some(_) => {}
    }
    // Building a decoder only parses the header. Without limits here, the dimensions check
    // below is ours, and its error can name the dimensions.
    reader.no_limits();
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| from_image_error(e, path()))?;
    let (width, height) = decoder.dimensions();
    let too_large = |limit| DecodeError::TooLarge {
        path: path(),
        width,
        height,
        limit,
    };
    if let Some(limit) = limits.exceeded(width, height, decoder.total_bytes()) {
        return Err(too_large(limit));
    }
    decoder
        .set_limits(limits.image_limits())
        .map_err(|e| match e {
            ImageError::Limits(e) => too_large(e.to_string()),
            e => from_image_error(e, path()),
        })?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| match e {
        ImageError::Limits(e) => too_large(e.to_string()),
        e => from_image_error(e, path()),
    })?;
    image.apply_orientation(orientation);
    Ok(image)
}

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
fn decode_jpeg_scaled(bytes: &[u8], limits: &DecodeLimits, min_side: u32) -> Option<DynamicImage> {
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

fn from_image_error(error: ImageError, path: Option<PathBuf>) -> DecodeError {
    match error {
        ImageError::Unsupported(e) => DecodeError::Unsupported {
            path,
            detail: e.to_string(),
        },
        // Decoders report a file cut short as an early end of their input.
        ImageError::IoError(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            DecodeError::Corrupt {
                path,
                message: "unexpected end of file".to_owned(),
            }
        }
        ImageError::IoError(source) => DecodeError::Io { path, source },
        e => DecodeError::Corrupt {
            path,
            message: e.to_string(),
        },
    }
}

/// Whether a JPEG's marker segments run through to an end-of-image marker.
///
/// Walks the segments of ITU-T T.81 annex B from the start: length-prefixed segments are
/// skipped whole (so an EXIF thumbnail's own markers are never seen), and entropy-coded data
/// ends at the first 0xFF not followed by a stuffed zero or a restart marker. Anything after
/// the first end-of-image marker (vendor trailers, appended videos) is not looked at.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
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
