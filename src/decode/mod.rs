//! Decoding image files into upright pixels, safely.
//!
//! - The format comes from the content (magic bytes), never from the file name: a JPEG saved as
//!   `.png` decodes, random bytes named `.jpg` are an unknown format. Every supported format
//!   (JPEG, PNG, WebP, GIF, BMP, TIFF through `image`; HEIC and AVIF through the system's
//!   libheif, in `heif`; JPEG XL through jxl-oxide, in `jxl`) has a signature, so the extension
//!   adds nothing.
//! - The header's dimensions are checked against [`DecodeLimits`] before any pixel buffer is
//!   allocated, so a decompression bomb (a tiny PNG claiming 100000x100000) costs nothing.
//! - EXIF orientation is applied on purpose: people see their photos upright, and search should
//!   see them the same way. A broken EXIF block is ignored (the pixels are still good). HEIF
//!   and JPEG XL carry their own orientation, applied once by their decoders, and any EXIF
//!   orientation beside it is not applied again (see `heif.rs`, `jxl.rs`).
//! - GIFs (and other animations) decode to their first frame.
//! - BMP headers `image` refuses but whose pixels it reads (OS/2 2.x, top-down RLE) are
//!   rewritten into the form it knows (`bmp.rs`).
//! - TIFF variants the pure-Rust decoder refuses (or would crash on) go to libtiff, loaded at
//!   run time when the system has it (`tiff.rs`, `libtiff.rs`).
//! - Camera RAW files (DNG, CR2, CR3, NEF, ARW, RAF, ORF, RW2, PEF) decode to their largest
//!   embedded JPEG preview, turned as the RAW says (`raw/`).
//! - Only regular files are read, no larger than [`DecodeLimits::max_file_bytes`], and the
//!   read is bounded ([`read_file`]): devices, FIFOs and huge files cost nothing.
//! - A decoder that panics on a file fails that file only ([`contain`]).
//! - A JPEG cut short is an error, as in Pillow, not a half-grey picture: the JPEG decoder
//!   pads missing data silently, so the marker structure is checked for its end first.
//! - What a file says about itself (capture time, camera, pixel size, position) is read from
//!   the same bytes by [`read_meta`] (`meta.rs`), without decoding.
//! - A caller that only needs a small picture (the model's preprocessing) can say so with
//!   [`decode_file_scaled`] / [`decode_bytes_scaled`]: a JPEG large enough is then decoded at
//!   1/2 or 1/4 (1/8 with libjpeg-turbo) of its size by a scaled inverse DCT (libjpeg's
//!   `scale_denom`, as Pillow's `draft()`), never below the short side asked for. It skips most
//!   of the IDCT, colour conversion and upsampling work, and the buffer is 4 or 16 times
//!   smaller. The system's libjpeg-turbo does it where it is installed (loaded at run time,
//!   `turbojpeg.rs`: 30% faster, and the decoder Pillow uses), `jpeg-decoder` otherwise
//!   ([`turbojpeg_status`] says which).
//!   Limits are still checked on the full size given by the header, and orientation and the
//!   truncation check apply as on the full-size path. Everything else (small JPEGs, CMYK and
//!   12-bit JPEGs, files jpeg-decoder refuses, other formats) takes the full-size path, which
//!   is also where every error comes from.

mod bmp;
mod contain;
mod dylib;
mod error;
pub mod format;
mod heif;
mod jpeg;
mod jxl;
mod libtiff;
mod limits;
mod meta;
mod raw;
mod read;
mod tiff;
mod turbojpeg;

use std::io::{self, Cursor};
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader};

pub use contain::{contain, panic_is_contained};
pub use error::DecodeError;
pub use limits::DecodeLimits;
pub use meta::{read_file_meta, read_meta};
pub use read::{read_file, read_head, special_kind};

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
    // file is small next to the pixels it decodes to. The read is bounded (`read_file`).
    let bytes = read_file(path, limits)?;
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

/// Whether [`decode_file_scaled`] reduces JPEGs with the system's libjpeg-turbo in this
/// process, or why not: it is not installed (Debian's `libturbojpeg0`), or the environment
/// variable `XSEARCH_TURBOJPEG` is `0`. Without it the pure-Rust `jpeg-decoder` reduces them,
/// to nearly the same pixels (`tests/preprocess_decode.rs`) in about 1.4 times the time.
pub fn turbojpeg_status() -> Result<(), String> {
    turbojpeg::available()
}

/// Every decode goes through here, whole inside [`contain`]: a panic anywhere in it (format
/// detection, any decoder, orientation) is that file's error.
fn decode(
    bytes: &[u8],
    limits: &DecodeLimits,
    path: Option<&Path>,
    min_side: Option<u32>,
) -> Result<DynamicImage, DecodeError> {
    let stage = if raw::is_raw(bytes) {
        "the RAW preview decoder".to_owned()
    } else {
        match image::guess_format(bytes) {
            Ok(format) => format!("the {} decoder", format_name(format)),
            Err(_) => "the image decoder".to_owned(),
        }
    };
    contain(path, &stage, || {
        decode_uncontained(bytes, limits, path, min_side)
    })
}

/// A format's name as people write it.
fn format_name(format: ImageFormat) -> String {
    match format {
        ImageFormat::WebP => "WebP".to_owned(),
        other => format!("{other:?}").to_uppercase(),
    }
}

fn decode_uncontained(
    bytes: &[u8],
    limits: &DecodeLimits,
    path: Option<&Path>,
    min_side: Option<u32>,
) -> Result<DynamicImage, DecodeError> {
    let path = || path.map(Path::to_path_buf);
    if bytes.is_empty() {
        return Err(DecodeError::Empty { path: path() });
    }
    if raw::is_raw(bytes) {
        return raw::decode(bytes, limits, path(), min_side);
    }
    if let Some(other) = format::other_format(bytes) {
        let decoded = match other {
            format::Other::Heic => heif::decode(bytes, limits, heif::HeifKind::Heic),
            format::Other::Avif => heif::decode(bytes, limits, heif::HeifKind::Avif),
            format::Other::Jxl => jxl::decode(bytes, limits),
        };
        return decoded.map_err(|e| e.at(path()));
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|source| DecodeError::Io {
            path: path(),
            source,
        })?;
    match reader.format() {
        // `image` does not recognise BigTIFF, which only the libtiff path reads.
        None if tiff::is_big_tiff(bytes) => {
            return tiff::decode(bytes, limits, path(), || {
                Err(DecodeError::UnknownFormat { path: path() })
            })
        }
        None => return Err(DecodeError::UnknownFormat { path: path() }),
        // The JPEG decoder fills missing data with grey instead of failing; Pillow refuses such
        // files ("image file is truncated"), and so do we.
        Some(ImageFormat::Jpeg) if !jpeg::is_complete(bytes) => {
            return Err(DecodeError::Corrupt {
                path: path(),
                message: "JPEG data ends before its end-of-image marker (truncated file?)"
                    .to_owned(),
            });
        }
        Some(ImageFormat::Jpeg) => {
            if let Some(image) = min_side.and_then(|side| jpeg::decode_scaled(bytes, limits, side))
            {
                return Ok(image);
            }
        }
        Some(ImageFormat::Bmp) => {
            if let Some((rewritten, flip)) = bmp::rewrite(bytes) {
                let image = decode(&rewritten, limits, path().as_deref(), min_side)?;
                return Ok(if flip { image.flipv() } else { image });
            }
        }
        Some(ImageFormat::Tiff) => {
            return tiff::decode(bytes, limits, path(), || {
                decode_with_image(reader, limits, path())
            })
        }
        Some(_) => {}
    }
    decode_with_image(reader, limits, path())
}

/// The `image` crate's decoding of a recognised format, within `limits`, EXIF orientation
/// applied.
fn decode_with_image(
    mut reader: ImageReader<Cursor<&[u8]>>,
    limits: &DecodeLimits,
    path: Option<PathBuf>,
) -> Result<DynamicImage, DecodeError> {
    let path = || path.clone();
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
    // Some decoders accept a header of zero width or height; nothing downstream can use
    // an image without pixels (resizing it divides by its size).
    if width == 0 || height == 0 {
        return Err(DecodeError::Corrupt {
            path: path(),
            message: format!("the header says the image is {width}x{height}"),
        });
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
