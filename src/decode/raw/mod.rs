//! Camera RAW files, read through the largest JPEG preview the camera embedded in them.
//!
//! Developing the sensor data (demosaicing, white balance, the camera's colour matrix) is slow
//! and needs a per-camera database; every camera also stores a JPEG of the developed picture,
//! usually at or near full size, for its own screen. rclip reads that preview (its PR #285:
//! over 3 times faster than developing), and so do we. A preview smaller than the model's
//! input is still used: it is what the camera showed, and the model upsamples it.
//!
//! Containers, each parsed here with every offset and length checked against the file:
//! - TIFF-based (DNG, CR2, NEF, ARW, ORF, RW2, PEF, SRW): IFD0, its chain, SubIFDs and the EXIF
//!   IFD are walked ([`tiff`]); previews are JPEG strips, `JPEGInterchangeFormat` blocks and
//!   Panasonic's `JpgFromRaw` blob.
//! - RAF (Fujifilm): the header's preview offset and length ([`raf`]).
//! - CR3 (Canon): the ISO-BMFF `PRVW` box inside its `uuid` box ([`cr3`]).
//!
//! The orientation the RAW's own metadata states is applied to the preview unless the preview
//! JPEG carries its own EXIF orientation (then the JPEG decoder applies that one), so it is
//! applied exactly once.

mod cr3;
mod jpeg;
mod raf;
mod tiff;

use std::path::PathBuf;

use image::metadata::Orientation;
use image::DynamicImage;

use super::{DecodeError, DecodeLimits};

/// Why no preview could be taken from a RAW file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RawError {
    /// An offset or length points outside the file.
    #[error(
        "{what} at offset {offset} (length {len}) runs past the end of the file ({size} bytes)"
    )]
    OutOfBounds {
        /// What was being read.
        what: &'static str,
        /// Where it starts.
        offset: u64,
        /// How many bytes it claims.
        len: u64,
        /// The file's size.
        size: u64,
    },
    /// A directory or box chain comes back to where it has already been.
    #[error("{what} chain loops back to offset {offset}")]
    Loop {
        /// The kind of chain.
        what: &'static str,
        /// The offset seen twice.
        offset: u64,
    },
    /// More directories, boxes or nesting than any camera writes.
    #[error("more than {limit} {what}: not a camera file")]
    TooMany {
        /// What there are too many of.
        what: &'static str,
        /// The bound.
        limit: usize,
    },
    /// The structure is not what the format defines.
    #[error("{0}")]
    Malformed(&'static str),
    /// The file is a RAW container, but holds no JPEG preview we can decode.
    #[error("no embedded JPEG preview (developing the sensor data is not supported)")]
    NoPreview,
}

/// The preview chosen from a RAW file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preview<'a> {
    /// The complete JPEG, borrowed from the file's bytes.
    pub jpeg: &'a [u8],
    /// Its size from its frame header.
    pub width: u16,
    /// Its height.
    pub height: u16,
    /// The orientation to apply after decoding the JPEG: the one the RAW container states,
    /// unless the JPEG states its own (which decoding it applies).
    pub orientation: Option<Orientation>,
}

/// Whether `bytes` are a camera RAW container this module reads (by content, not by name).
///
/// CR2, ORF, RW2, RAF and CR3 have signatures of their own. DNG, NEF, ARW, PEF and SRW are
/// TIFF files: they count as RAW when a directory holds sensor data (a colour filter array or
/// linear raw photometric interpretation) or a `DNGVersion` tag, which no ordinary TIFF has.
pub(super) fn is_raw(bytes: &[u8]) -> bool {
    raf::is_raf(bytes) || cr3::is_cr3(bytes) || tiff::is_raw_tiff(bytes)
}

/// Whether `head` (a file's first 16 bytes) starts like a RAW container that is not a plain
/// TIFF (those are sniffed as TIFF): RAF, CR3, and ORF and RW2 with their own TIFF magic.
pub(super) fn has_signature(head: &[u8]) -> bool {
    raf::is_raf(head)
        || cr3::is_cr3(head)
        || [&b"IIRO"[..], b"IIRS", b"MMOR", b"IIU\0"]
            .iter()
            .any(|magic| head.starts_with(magic))
}

/// The largest embedded JPEG preview of a RAW file (by pixel count, then by length).
pub(super) fn largest_preview(bytes: &[u8]) -> Result<Preview<'_>, RawError> {
    let (candidates, orientation) = if raf::is_raf(bytes) {
        (raf::previews(bytes)?, None)
    } else if cr3::is_cr3(bytes) {
        cr3::previews(bytes)?
    } else {
        tiff::previews(bytes)?
    };
    candidates
        .into_iter()
        .filter_map(|jpeg| {
            let (width, height) = jpeg::frame_size(jpeg)?;
            Some(Preview {
                jpeg,
                width,
                height,
                orientation: orientation.filter(|_| !jpeg::has_orientation(jpeg)),
            })
        })
        .max_by_key(|p| (u32::from(p.width) * u32::from(p.height), p.jpeg.len()))
        .ok_or(RawError::NoPreview)
}

/// A RAW file through its largest preview, decoded like any JPEG (limits, scaled decoding,
/// its own EXIF orientation), then turned as the RAW says.
pub(super) fn decode(
    bytes: &[u8],
    limits: &DecodeLimits,
    path: Option<PathBuf>,
    min_side: Option<u32>,
) -> Result<DynamicImage, DecodeError> {
    let preview = largest_preview(bytes).map_err(|e| match e {
        RawError::NoPreview => DecodeError::Unsupported {
            path: path.clone(),
            detail: format!("camera raw file with {e}"),
        },
        e => DecodeError::Corrupt {
            path: path.clone(),
            message: format!("camera raw: {e}"),
        },
    })?;
    let mut image = super::decode(preview.jpeg, limits, path.as_deref(), min_side)?;
    if let Some(orientation) = preview.orientation {
        image.apply_orientation(orientation);
    }
    Ok(image)
}

/// Reads within a file's bytes, every offset and length checked.
#[derive(Clone, Copy)]
struct Bytes<'a> {
    data: &'a [u8],
}

impl<'a> Bytes<'a> {
    fn slice(&self, what: &'static str, offset: u64, len: u64) -> Result<&'a [u8], RawError> {
        let size = self.data.len() as u64;
        let end = offset.checked_add(len).filter(|&end| end <= size);
        match end {
            // Both fit in usize: they are at most the slice's length.
            Some(end) => Ok(&self.data[offset as usize..end as usize]),
            None => Err(RawError::OutOfBounds {
                what,
                offset,
                len,
                size,
            }),
        }
    }

    /// A JPEG candidate: in bounds and starting with a start-of-image marker, else nothing.
    fn jpeg(&self, offset: u64, len: u64) -> Option<&'a [u8]> {
        self.slice("preview", offset, len)
            .ok()
            .filter(|j| j.starts_with(&[0xff, 0xd8]))
    }
}

/// TIFF orientation values 1-8 as `image`'s orientation.
fn orientation(value: u32) -> Option<Orientation> {
    u8::try_from(value).ok().and_then(Orientation::from_exif)
}
