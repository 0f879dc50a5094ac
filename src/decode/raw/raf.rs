//! Fujifilm RAF: a fixed big-endian header that gives the JPEG preview's offset and length.
//!
//! Layout (as documented by ExifTool and LibRaw): the 16-byte magic, format version (4 bytes),
//! camera id (8), camera name (32), directory version (4), 20 unknown bytes, then at byte 84
//! the JPEG's offset and at 88 its length, both big-endian u32. The JPEG is a complete EXIF
//! JPEG, so its orientation is its own.

use super::{Bytes, RawError};

const MAGIC: &[u8] = b"FUJIFILMCCD-RAW ";

pub(super) fn is_raf(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

pub(super) fn previews(bytes: &[u8]) -> Result<Vec<&[u8]>, RawError> {
    let file = Bytes { data: bytes };
    let header = file.slice("RAF header", 84, 8)?;
    let offset = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    let jpeg = file.slice("RAF preview", offset.into(), len.into())?;
    Ok(vec![jpeg])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raf(offset: u32, len: u32, tail: &[u8]) -> Vec<u8> {
        let mut bytes = MAGIC.to_vec();
        bytes.resize(84, b'0');
        bytes.extend(offset.to_be_bytes());
        bytes.extend(len.to_be_bytes());
        bytes.extend(tail);
        bytes
    }

    #[test]
    fn the_header_gives_the_preview() {
        let bytes = raf(92, 4, &[0xff, 0xd8, 0xff, 0xd9]);
        assert_eq!(
            previews(&bytes).unwrap(),
            vec![&[0xff, 0xd8, 0xff, 0xd9][..]]
        );
    }

    #[test]
    fn a_preview_past_the_end_is_refused() {
        let err = previews(&raf(92, u32::MAX, &[0xff, 0xd8])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "RAF preview at offset 92 (length 4294967295) runs past the end of the file (94 bytes)"
        );
        assert!(matches!(
            previews(MAGIC).unwrap_err(),
            RawError::OutOfBounds {
                what: "RAF header",
                ..
            }
        ));
    }
}
