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

use std::io::{self, Cursor};
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader};

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
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The file could not be opened or read.
    #[error("{}: {source}", origin(.path))]
    Io {
        /// The file.
        path: Option<PathBuf>,
        /// The underlying error.
        source: io::Error,
    },
    /// The file has no bytes at all.
    #[error("{}: empty file", origin(.path))]
    Empty {
        /// The file.
        path: Option<PathBuf>,
    },
    /// The content matches no image format's signature.
    #[error(
        "{}: not an image: content matches no known format \
         (supported: JPEG, PNG, WebP, GIF, BMP, TIFF)",
        origin(.path)
    )]
    UnknownFormat {
        /// The file.
        path: Option<PathBuf>,
    },
    /// A recognised image format (or feature of one) that this build cannot decode.
    #[error("{}: unsupported image: {detail}", origin(.path))]
    Unsupported {
        /// The file.
        path: Option<PathBuf>,
        /// The decoder's explanation.
        detail: String,
    },
    /// The header announces an image larger than [`DecodeLimits`] allow.
    #[error("{}: image is {width}x{height}, above the {limit}", origin(.path))]
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
    #[error("{}: corrupt or truncated image: {message}", origin(.path))]
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
}

fn origin(path: &Option<PathBuf>) -> std::borrow::Cow<'_, str> {
    match path {
        Some(path) => path.to_string_lossy(),
        None => "<memory>".into(),
    }
}

/// Decode the image file at `path`: format from its content, within `limits`, EXIF orientation
/// applied, first frame of an animation.
pub fn decode_file(path: &Path, limits: &DecodeLimits) -> Result<DynamicImage, DecodeError> {
    // Whole-file reads: the JPEG decoder buffers its whole input anyway, and the compressed
    // file is small next to the pixels it decodes to.
    let bytes = std::fs::read(path).map_err(|source| DecodeError::Io {
        path: Some(path.to_path_buf()),
        source,
    })?;
    decode(&bytes, limits, Some(path))
}

/// [`decode_file`] for an image already in memory.
pub fn decode_bytes(bytes: &[u8], limits: &DecodeLimits) -> Result<DynamicImage, DecodeError> {
    decode(bytes, limits, None)
}

fn decode(
    bytes: &[u8],
    limits: &DecodeLimits,
    path: Option<&Path>,
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
