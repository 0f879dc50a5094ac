//! TIFF: the pure-Rust decoder (`image`'s, over the `tiff` crate) first, then libtiff
//! ([`super::libtiff`]) for what it refuses. Files that `tiff` 0.11.3 would crash on (tiled
//! with separate colour planes: an assertion in its `decoder/image.rs`) and BigTIFF (which
//! `image` does not recognise) go to libtiff directly.

use std::io::Cursor;
use std::path::PathBuf;

use image::DynamicImage;
use tiff::decoder::{ChunkType, Decoder};
use tiff::tags::Tag;

use super::libtiff::{self, Failure};
use super::{DecodeError, DecodeLimits};

/// BigTIFF's header: byte order, then 43 instead of TIFF's 42.
pub(super) fn is_big_tiff(bytes: &[u8]) -> bool {
    bytes.starts_with(b"II\x2b\0") || bytes.starts_with(b"MM\0\x2b")
}

/// Whether the `tiff` crate panics on this file: tiled, with one plane per sample.
fn crashes_pure_rust(bytes: &[u8]) -> bool {
    let Ok(mut decoder) = Decoder::new(Cursor::new(bytes)) else {
        return false;
    };
    matches!(decoder.get_chunk_type(), ChunkType::Tile)
        && decoder
            .find_tag_unsigned::<u16>(Tag::PlanarConfiguration)
            .is_ok_and(|planar| planar == Some(2))
}

/// Decodes a TIFF; `pure_rust` is the ordinary path, tried first where it can be trusted.
pub(super) fn decode(
    bytes: &[u8],
    limits: &DecodeLimits,
    path: Option<PathBuf>,
    pure_rust: impl FnOnce() -> Result<DynamicImage, DecodeError>,
) -> Result<DynamicImage, DecodeError> {
    let needs_libtiff = if is_big_tiff(bytes) {
        Some("BigTIFF")
    } else if crashes_pure_rust(bytes) {
        Some("tiled TIFF with separate colour planes")
    } else {
        None
    };
    if let Some(what) = needs_libtiff {
        let refused = || DecodeError::Unsupported {
            path: path.clone(),
            detail: format!(
                "{what} needs libtiff (install it, for example `apt install libtiff6`)"
            ),
        };
        return with_libtiff(bytes, limits, path.clone(), refused);
    }
    match pure_rust() {
        Err(e @ (DecodeError::Unsupported { .. } | DecodeError::Corrupt { .. })) => {
            let hint = !libtiff::available();
            let original = || {
                match e {
                DecodeError::Unsupported { path, detail } if hint => DecodeError::Unsupported {
                    path,
                    detail: format!("{detail} (libtiff reads more TIFF variants: install it, for example `apt install libtiff6`)"),
                },
                e => e,
            }
            };
            with_libtiff(bytes, limits, path, original)
        }
        result => result,
    }
}

/// libtiff's decoding, or `otherwise` when it is missing or cannot read the file.
fn with_libtiff(
    bytes: &[u8],
    limits: &DecodeLimits,
    path: Option<PathBuf>,
    otherwise: impl FnOnce() -> DecodeError,
) -> Result<DynamicImage, DecodeError> {
    match libtiff::decode(bytes, limits) {
        Ok(image) => Ok(image),
        Err(Failure::TooLarge(width, height, limit)) => Err(DecodeError::TooLarge {
            path,
            width,
            height,
            limit,
        }),
        Err(Failure::Missing | Failure::Unreadable) => Err(otherwise()),
    }
}
