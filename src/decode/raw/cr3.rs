//! Canon CR3: an ISO base media file (the MP4 box structure) whose preview is a `PRVW` box.
//!
//! Layout (Laurent Clévy's "Describing the CR3 format", LibRaw, ExifTool): `ftyp` with major
//! brand `crx `; `moov` holds Canon's `uuid` box (85c0b687-820f-11e0-8111-f4ce462b6a48) whose
//! `CMT1` box is a TIFF IFD0 (with the orientation); a top-level `uuid` box
//! (eaf42b5e-1c98-4b88-b9fb-b7dc406e4d16) holds, after 8 bytes, the `PRVW` box: 4 + 2 unknown
//! bytes, width and height (u16), 2 unknown bytes, the JPEG's length (u32), then the JPEG.
//! All big-endian.

use image::metadata::Orientation;

use super::{tiff, Bytes, RawError};

const CANON_UUID: [u8; 16] = [
    0x85, 0xc0, 0xb6, 0x87, 0x82, 0x0f, 0x11, 0xe0, 0x81, 0x11, 0xf4, 0xce, 0x46, 0x2b, 0x6a, 0x48,
];
const PREVIEW_UUID: [u8; 16] = [
    0xea, 0xf4, 0x2b, 0x5e, 0x1c, 0x98, 0x4b, 0x88, 0xb9, 0xfb, 0xb7, 0xdc, 0x40, 0x6e, 0x4d, 0x16,
];
/// More boxes at one level than a CR3 has (its `moov` holds about ten).
const MAX_BOXES: usize = 256;

pub(super) fn is_cr3(bytes: &[u8]) -> bool {
    bytes.get(4..12) == Some(b"ftypcrx ")
}

/// A box: its type and its payload's offset and length.
struct BoxRef {
    kind: [u8; 4],
    start: u64,
    len: u64,
}

/// The boxes laid end to end in `[start, end)`.
fn boxes(file: Bytes<'_>, start: u64, end: u64) -> Result<Vec<BoxRef>, RawError> {
    let mut found = Vec::new();
    let mut at = start;
    while at < end {
        if found.len() == MAX_BOXES {
            return Err(RawError::TooMany {
                what: "boxes in one CR3 box",
                limit: MAX_BOXES,
            });
        }
        let header = file.slice("CR3 box", at, 8)?;
        let size = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let kind = [header[4], header[5], header[6], header[7]];
        let (header_len, size) = match size {
            0 => (8, end - at),
            1 => {
                let large = file.slice("CR3 box", at + 8, 8)?;
                (16, u64::from_be_bytes(large.try_into().expect("8 bytes")))
            }
            n => (8, u64::from(n)),
        };
        if size < header_len {
            return Err(RawError::Malformed("CR3 box smaller than its header"));
        }
        // The whole box must lie inside its parent (and so inside the file).
        let box_end = at
            .checked_add(size)
            .filter(|&e| e <= end)
            .ok_or(RawError::OutOfBounds {
                what: "CR3 box",
                offset: at,
                len: size,
                size: end,
            })?;
        found.push(BoxRef {
            kind,
            start: at + header_len,
            len: size - header_len,
        });
        at = box_end;
    }
    Ok(found)
}

/// The `uuid` box among `list` with this UUID: its payload after the UUID.
fn uuid_box(
    file: Bytes<'_>,
    list: &[BoxRef],
    uuid: &[u8; 16],
) -> Result<Option<(u64, u64)>, RawError> {
    for b in list.iter().filter(|b| &b.kind == b"uuid" && b.len >= 16) {
        if file.slice("CR3 uuid", b.start, 16)? == uuid {
            return Ok(Some((b.start + 16, b.len - 16)));
        }
    }
    Ok(None)
}

pub(super) fn previews(bytes: &[u8]) -> Result<(Vec<&[u8]>, Option<Orientation>), RawError> {
    let file = Bytes { data: bytes };
    let top = boxes(file, 0, bytes.len() as u64)?;
    let mut orientation = None;
    if let Some(moov) = top.iter().find(|b| &b.kind == b"moov") {
        let inside = boxes(file, moov.start, moov.start + moov.len)?;
        if let Some((start, len)) = uuid_box(file, &inside, &CANON_UUID)? {
            let canon = boxes(file, start, start + len)?;
            if let Some(cmt1) = canon.iter().find(|b| &b.kind == b"CMT1") {
                orientation = tiff::ifd0_orientation(bytes, cmt1.start)?;
            }
        }
    }
    let mut previews = Vec::new();
    if let Some((start, len)) = uuid_box(file, &top, &PREVIEW_UUID)? {
        let skip = 8.min(len);
        for prvw in boxes(file, start + skip, start + len)?
            .iter()
            .filter(|b| &b.kind == b"PRVW")
        {
            let header = file.slice("CR3 PRVW header", prvw.start, 16)?;
            let jpeg_len = u32::from_be_bytes([header[12], header[13], header[14], header[15]]);
            if prvw
                .len
                .checked_sub(16)
                .is_none_or(|room| u64::from(jpeg_len) > room)
            {
                return Err(RawError::OutOfBounds {
                    what: "CR3 preview",
                    offset: prvw.start + 16,
                    len: jpeg_len.into(),
                    size: prvw.start + prvw.len,
                });
            }
            previews.extend(file.jpeg(prvw.start + 16, jpeg_len.into()));
        }
    }
    Ok((previews, orientation))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut b = ((8 + payload.len()) as u32).to_be_bytes().to_vec();
        b.extend(kind);
        b.extend(payload);
        b
    }

    fn cr3_with(prvw_payload: &[u8]) -> Vec<u8> {
        let mut file = boxed(b"ftyp", b"crx \0\0\0\x01");
        let mut uuid = PREVIEW_UUID.to_vec();
        uuid.extend([0; 8]);
        uuid.extend(boxed(b"PRVW", prvw_payload));
        file.extend(boxed(b"uuid", &uuid));
        file
    }

    #[test]
    fn the_prvw_box_gives_the_preview() {
        let mut payload = vec![0; 12];
        payload.extend(4u32.to_be_bytes());
        payload.extend([0xff, 0xd8, 0xff, 0xd9]);
        let file = cr3_with(&payload);
        assert!(is_cr3(&file));
        assert_eq!(
            previews(&file).unwrap().0,
            vec![&[0xff, 0xd8, 0xff, 0xd9][..]]
        );
    }

    #[test]
    fn a_preview_longer_than_its_box_is_refused() {
        let mut payload = vec![0; 12];
        payload.extend(u32::MAX.to_be_bytes());
        payload.extend([0xff, 0xd8, 0xff, 0xd9]);
        assert!(matches!(
            previews(&cr3_with(&payload)).unwrap_err(),
            RawError::OutOfBounds {
                what: "CR3 preview",
                ..
            }
        ));
    }

    #[test]
    fn boxes_larger_than_their_parent_or_smaller_than_a_header_are_refused() {
        let mut file = boxed(b"ftyp", b"crx \0\0\0\x01");
        file.extend(u32::MAX.to_be_bytes());
        file.extend(b"moov");
        assert!(matches!(
            previews(&file).unwrap_err(),
            RawError::OutOfBounds {
                what: "CR3 box",
                ..
            }
        ));
        let mut tiny = boxed(b"ftyp", b"crx \0\0\0\x01");
        tiny.extend(4u32.to_be_bytes());
        tiny.extend(b"moov");
        assert_eq!(
            previews(&tiny).unwrap_err(),
            RawError::Malformed("CR3 box smaller than its header")
        );
    }
}
