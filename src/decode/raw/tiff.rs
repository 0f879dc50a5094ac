//! A small TIFF directory walker for the TIFF-based RAW formats (DNG, CR2, NEF, ARW, ORF, RW2,
//! PEF, SRW): it reads directory entries and nothing else, so a RAW's compressed sensor data
//! (which general TIFF decoders reject or misread) is never touched.
//!
//! Walked: IFD0 and the chain after it (CR2's IFD0 holds its full-size preview, NEF's and
//! ARW's IFD1 a thumbnail), every SubIFD (DNG and NEF keep previews there) and the EXIF IFD.
//! Bounded: each directory is visited once (a chain that loops is refused), at most
//! [`MAX_IFDS`] directories and [`MAX_DEPTH`] levels of nesting, and every entry's data is
//! checked against the file before it is read.

use std::collections::HashSet;

use image::metadata::Orientation;

use super::{orientation, Bytes, RawError};

/// More directories than any camera writes (DNG: a handful; NEF: about ten).
const MAX_IFDS: usize = 64;
/// SubIFDs of SubIFDs, EXIF inside those: cameras nest two levels.
const MAX_DEPTH: usize = 4;
/// SubIFD offsets read from one entry.
const MAX_SUBIFDS: u32 = 16;

const TAG_COMPRESSION: u16 = 0x103;
const TAG_PHOTOMETRIC: u16 = 0x106;
const TAG_STRIP_OFFSETS: u16 = 0x111;
const TAG_ORIENTATION: u16 = 0x112;
const TAG_STRIP_BYTE_COUNTS: u16 = 0x117;
const TAG_SUBIFDS: u16 = 0x14a;
const TAG_JPEG_OFFSET: u16 = 0x201;
const TAG_JPEG_LENGTH: u16 = 0x202;
const TAG_EXIF_IFD: u16 = 0x8769;
const TAG_DNG_VERSION: u16 = 0xc612;
/// Panasonic RW2's `JpgFromRaw`: a whole JPEG as the entry's data.
const TAG_RW2_JPEG: u16 = 0x2e;
const TAG_MAKER_NOTE: u16 = 0x927c;
/// Olympus maker note: `CameraSettings` IFD, and in it the preview's offset and length.
const TAG_OLYMPUS_CAMERA_SETTINGS: u16 = 0x2020;
const TAG_OLYMPUS_PREVIEW_START: u16 = 0x101;
const TAG_OLYMPUS_PREVIEW_LENGTH: u16 = 0x102;
/// Pentax maker note: the preview's length and offset.
const TAG_PENTAX_PREVIEW_LENGTH: u16 = 0x3;
const TAG_PENTAX_PREVIEW_START: u16 = 0x4;

/// Photometric interpretations of sensor data: colour filter array, linear raw.
const SENSOR_PHOTOMETRIC: [u32; 2] = [32803, 34892];
/// Old-style and new-style JPEG compression.
const JPEG_COMPRESSION: [u32; 2] = [6, 7];

/// A TIFF structure: its header at `base`, offsets relative to it.
pub(super) struct Tiff<'a> {
    file: Bytes<'a>,
    base: u64,
    big_endian: bool,
    magic: u16,
}

/// One directory entry, its value field still raw.
struct Entry {
    tag: u16,
    kind: u16,
    count: u32,
    field: [u8; 4],
}

impl<'a> Tiff<'a> {
    /// The TIFF whose header starts at `base` in `data`; the magic number is not checked here
    /// (RAW formats use their own: ORF `RO`, RW2 `U`).
    pub(super) fn new(data: &'a [u8], base: u64) -> Result<Self, RawError> {
        let file = Bytes { data };
        let header = file.slice("TIFF header", base, 8)?;
        let big_endian = match &header[..2] {
            b"II" => false,
            b"MM" => true,
            _ => return Err(RawError::Malformed("not a TIFF byte order mark")),
        };
        let mut tiff = Self {
            file,
            base,
            big_endian,
            magic: 0,
        };
        tiff.magic = tiff.u16(&header[2..4]);
        Ok(tiff)
    }

    fn u16(&self, b: &[u8]) -> u16 {
        let b = [b[0], b[1]];
        if self.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    }

    fn u32(&self, b: &[u8]) -> u32 {
        let b = [b[0], b[1], b[2], b[3]];
        if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    }

    fn first_ifd(&self) -> Result<u64, RawError> {
        let header = self.file.slice("TIFF header", self.base, 8)?;
        Ok(u64::from(self.u32(&header[4..8])))
    }

    /// The entries of the directory at `offset` and the offset of the next one (0: none).
    fn ifd(&self, offset: u64) -> Result<(Vec<Entry>, u64), RawError> {
        let start = self.base + offset;
        let count = self.u16(self.file.slice("IFD", start, 2)?);
        let body = self
            .file
            .slice("IFD", start + 2, u64::from(count) * 12 + 4)?;
        let entries = body
            .chunks_exact(12)
            .map(|e| Entry {
                tag: self.u16(&e[0..2]),
                kind: self.u16(&e[2..4]),
                count: self.u32(&e[4..8]),
                field: [e[8], e[9], e[10], e[11]],
            })
            .collect();
        let next = self.u32(&body[body.len() - 4..]);
        Ok((entries, u64::from(next)))
    }

    /// The bytes of an entry's value: in the entry itself when they fit in 4 bytes.
    fn data<'e>(&self, entry: &'e Entry) -> Result<&'e [u8], RawError>
    where
        'a: 'e,
    {
        let unit: u64 = match entry.kind {
            1 | 2 | 6 | 7 => 1,
            3 | 8 => 2,
            4 | 9 | 11 | 13 => 4,
            5 | 10 | 12 => 8,
            _ => return Err(RawError::Malformed("unknown TIFF field type")),
        };
        let len = unit * u64::from(entry.count);
        if len <= 4 {
            return Ok(&entry.field[..len as usize]);
        }
        let offset = u64::from(self.u32(&entry.field));
        self.file.slice("TIFF value", self.base + offset, len)
    }

    /// An entry's SHORT or LONG values, at most `max` of them.
    fn values(&self, entry: &Entry, max: u32) -> Result<Vec<u32>, RawError> {
        if entry.count > max {
            return Err(RawError::TooMany {
                what: "values in a TIFF entry",
                limit: max as usize,
            });
        }
        let data = self.data(entry)?;
        Ok(match entry.kind {
            3 | 8 => data
                .chunks_exact(2)
                .map(|b| u32::from(self.u16(b)))
                .collect(),
            4 | 9 | 13 => data.chunks_exact(4).map(|b| self.u32(b)).collect(),
            _ => return Err(RawError::Malformed("TIFF entry is not an integer")),
        })
    }

    fn value(&self, entry: &Entry) -> Option<u32> {
        self.values(entry, 1).ok()?.first().copied()
    }

    /// The first value of the entry tagged `tag` among `entries`.
    fn tag_value(&self, entries: &[Entry], tag: u16) -> Option<u32> {
        entries
            .iter()
            .find(|e| e.tag == tag)
            .and_then(|e| self.value(e))
    }
}

/// What a walk over a TIFF RAW's directories found.
struct Walk<'a> {
    tiff: Tiff<'a>,
    seen: HashSet<u64>,
    previews: Vec<&'a [u8]>,
    /// A directory holds sensor data, or the file declares itself a DNG.
    sensor_data: bool,
    orientation: Option<Orientation>,
}

impl<'a> Walk<'a> {
    fn new(tiff: Tiff<'a>) -> Self {
        Self {
            tiff,
            seen: HashSet::new(),
            previews: Vec::new(),
            sensor_data: false,
            orientation: None,
        }
    }

    /// Visits IFD0 and its chain, with everything below each.
    fn run(&mut self) -> Result<(), RawError> {
        let mut offset = self.tiff.first_ifd()?;
        let mut first = true;
        while offset != 0 {
            offset = self.visit(offset, 0, first)?;
            first = false;
        }
        Ok(())
    }

    /// Visits one directory and the directories it points to; returns its next offset.
    fn visit(&mut self, offset: u64, depth: usize, ifd0: bool) -> Result<u64, RawError> {
        if !self.seen.insert(offset) {
            return Err(RawError::Loop {
                what: "TIFF directory",
                offset,
            });
        }
        if self.seen.len() > MAX_IFDS {
            return Err(RawError::TooMany {
                what: "TIFF directories",
                limit: MAX_IFDS,
            });
        }
        let (entries, next) = self.tiff.ifd(offset)?;
        let find = |tag| entries.iter().find(|e| e.tag == tag);
        let value = |tag| find(tag).and_then(|e| self.tiff.value(e));
        let photometric = value(TAG_PHOTOMETRIC);
        if photometric.is_some_and(|p| SENSOR_PHOTOMETRIC.contains(&p))
            || find(TAG_DNG_VERSION).is_some()
        {
            self.sensor_data = true;
        }
        if ifd0 {
            self.orientation = value(TAG_ORIENTATION).and_then(orientation);
        }
        let file = self.tiff.file;
        let base = self.tiff.base;
        if let (Some(start), Some(len)) = (value(TAG_JPEG_OFFSET), value(TAG_JPEG_LENGTH)) {
            self.previews
                .extend(file.jpeg(base + u64::from(start), len.into()));
        }
        let jpeg_strip = value(TAG_COMPRESSION).is_some_and(|c| JPEG_COMPRESSION.contains(&c))
            && !photometric.is_some_and(|p| SENSOR_PHOTOMETRIC.contains(&p));
        if jpeg_strip {
            // A preview is one strip; sensor data in many strips or tiles is not a preview.
            if let (Some(start), Some(len)) =
                (value(TAG_STRIP_OFFSETS), value(TAG_STRIP_BYTE_COUNTS))
            {
                self.previews
                    .extend(file.jpeg(base + u64::from(start), len.into()));
            }
        }
        // Its count is the JPEG's length in bytes, its field the JPEG's offset.
        if let Some(blob) = find(TAG_RW2_JPEG).filter(|e| matches!(e.kind, 1 | 7) && e.count > 4) {
            let start = self.tiff.u32(&blob.field);
            self.previews
                .extend(file.jpeg(base + u64::from(start), blob.count.into()));
        }
        let note = find(TAG_MAKER_NOTE)
            .filter(|e| matches!(e.kind, 1 | 7) && e.count > 4)
            .map(|e| base + u64::from(self.tiff.u32(&e.field)));
        let mut children = Vec::new();
        if let Some(e) = find(TAG_SUBIFDS) {
            children.extend(self.tiff.values(e, MAX_SUBIFDS)?);
        }
        if let Some(exif) = value(TAG_EXIF_IFD) {
            children.push(exif);
        }
        if let Some(start) = note {
            self.maker_note(start)?;
        }
        for child in children.into_iter().filter(|&c| c != 0) {
            if depth + 1 > MAX_DEPTH {
                return Err(RawError::TooMany {
                    what: "levels of nested TIFF directories",
                    limit: MAX_DEPTH,
                });
            }
            let mut sibling = u64::from(child);
            // A SubIFD may have a chain of its own (rare; DNG forbids it), walked the same way.
            while sibling != 0 {
                sibling = self.visit(sibling, depth + 1, false)?;
            }
        }
        Ok(next)
    }
}

impl Walk<'_> {
    /// Previews in Olympus (ORF) and Pentax (PEF) maker notes, where those cameras keep their
    /// largest one; other maker notes are left alone.
    fn maker_note(&mut self, start: u64) -> Result<(), RawError> {
        let file = self.tiff.file;
        let head = file.slice("maker note", start, 12)?;
        let byte_order = |mark: &[u8]| match mark {
            b"II" => Ok(false),
            b"MM" => Ok(true),
            _ => Err(RawError::Malformed("maker note without a byte order mark")),
        };
        if head.starts_with(b"OLYMPUS\0") {
            // Offsets count from the maker note's start; its IFD follows a 12-byte header.
            let note = Tiff {
                file,
                base: start,
                big_endian: byte_order(&head[8..10])?,
                magic: 0,
            };
            let (entries, _) = note.ifd(12)?;
            let Some(settings) = note.tag_value(&entries, TAG_OLYMPUS_CAMERA_SETTINGS) else {
                return Ok(());
            };
            self.note_preview(
                &note,
                settings.into(),
                (TAG_OLYMPUS_PREVIEW_START, TAG_OLYMPUS_PREVIEW_LENGTH),
                start,
            )?;
        } else if head.starts_with(b"AOC\0") {
            // Offsets count from the file's TIFF header; the IFD follows a 6-byte header.
            let note = Tiff {
                file,
                base: self.tiff.base,
                big_endian: byte_order(&head[4..6])?,
                magic: 0,
            };
            self.note_preview(
                &note,
                start + 6 - self.tiff.base,
                (TAG_PENTAX_PREVIEW_START, TAG_PENTAX_PREVIEW_LENGTH),
                self.tiff.base,
            )?;
        }
        Ok(())
    }

    /// The preview that the maker-note IFD at `ifd` points at with its (start, length) `tags`,
    /// the start counted from `origin`.
    fn note_preview(
        &mut self,
        note: &Tiff<'_>,
        ifd: u64,
        (start_tag, length_tag): (u16, u16),
        origin: u64,
    ) -> Result<(), RawError> {
        let (entries, _) = note.ifd(ifd)?;
        if let (Some(at), Some(len)) = (
            note.tag_value(&entries, start_tag),
            note.tag_value(&entries, length_tag),
        ) {
            self.previews
                .extend(self.tiff.file.jpeg(origin + u64::from(at), len.into()));
        }
        Ok(())
    }
}

/// Whether a TIFF-structured file is a camera RAW: CR2, ORF and RW2 by their signatures, the
/// others by sensor data or a DNG version in their directories.
pub(super) fn is_raw_tiff(bytes: &[u8]) -> bool {
    let Ok(tiff) = Tiff::new(bytes, 0) else {
        return false;
    };
    match tiff.magic {
        42 if bytes.get(8..10) == Some(b"CR") => true,
        42 => {
            let mut walk = Walk::new(tiff);
            // A walk that fails part way still tells what it saw before.
            let _ = walk.run();
            walk.sensor_data
        }
        0x4f52 | 0x5352 | 0x55 => true,
        _ => false,
    }
}

/// The JPEG previews of a TIFF-based RAW and the orientation its IFD0 states.
pub(super) fn previews(bytes: &[u8]) -> Result<(Vec<&[u8]>, Option<Orientation>), RawError> {
    let mut walk = Walk::new(Tiff::new(bytes, 0)?);
    walk.run()?;
    Ok((walk.previews, walk.orientation))
}

/// The orientation IFD0 of the TIFF at `base` states (CR3 keeps one in its `CMT1` box).
pub(super) fn ifd0_orientation(bytes: &[u8], base: u64) -> Result<Option<Orientation>, RawError> {
    let tiff = Tiff::new(bytes, base)?;
    let (entries, _) = tiff.ifd(tiff.first_ifd()?)?;
    Ok(entries
        .iter()
        .find(|e| e.tag == TAG_ORIENTATION)
        .and_then(|e| tiff.value(e))
        .and_then(orientation))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A little-endian TIFF with IFD0 at 8 holding `entries` (tag, type, count, field), then
    /// `next` as its next-IFD offset, then `tail`.
    fn tiff(entries: &[(u16, u16, u32, u32)], next: u32, tail: &[u8]) -> Vec<u8> {
        let mut b = b"II*\0\x08\0\0\0".to_vec();
        b.extend((entries.len() as u16).to_le_bytes());
        for &(tag, kind, count, field) in entries {
            b.extend(tag.to_le_bytes());
            b.extend(kind.to_le_bytes());
            b.extend(count.to_le_bytes());
            b.extend(field.to_le_bytes());
        }
        b.extend(next.to_le_bytes());
        b.extend(tail);
        b
    }

    const CFA_ENTRY: (u16, u16, u32, u32) = (TAG_PHOTOMETRIC, 3, 1, 32803);

    #[test]
    fn a_chain_that_loops_is_refused() {
        let bytes = tiff(&[CFA_ENTRY], 8, &[]);
        assert!(is_raw_tiff(&bytes));
        let err = previews(&bytes).unwrap_err();
        assert_eq!(
            err.to_string(),
            "TIFF directory chain loops back to offset 8"
        );
    }

    #[test]
    fn a_subifd_pointing_back_to_ifd0_is_refused() {
        let bytes = tiff(&[CFA_ENTRY, (TAG_SUBIFDS, 4, 1, 8)], 0, &[]);
        assert_eq!(
            previews(&bytes).unwrap_err(),
            RawError::Loop {
                what: "TIFF directory",
                offset: 8
            }
        );
    }

    #[test]
    fn offsets_past_the_end_and_huge_counts_are_refused() {
        let far = tiff(&[CFA_ENTRY], 0x7fff_ffff, &[]);
        assert_eq!(
            previews(&far).unwrap_err().to_string(),
            "IFD at offset 2147483647 (length 2) runs past the end of the file (26 bytes)"
        );
        // 65535 entries claimed in a 26-byte file: refused before anything is allocated.
        let mut huge = tiff(&[CFA_ENTRY], 0, &[]);
        huge[8..10].copy_from_slice(&u16::MAX.to_le_bytes());
        assert!(matches!(
            previews(&huge).unwrap_err(),
            RawError::OutOfBounds { what: "IFD", .. }
        ));
        let many_subifds = tiff(&[CFA_ENTRY, (TAG_SUBIFDS, 4, u32::MAX, 40)], 0, &[]);
        assert_eq!(
            previews(&many_subifds).unwrap_err().to_string(),
            "more than 16 values in a TIFF entry: not a camera file"
        );
    }

    #[test]
    fn a_preview_that_runs_past_the_end_is_no_preview() {
        let jpeg = [0xff, 0xd8, 0xff, 0xd9];
        let bytes = tiff(
            &[
                CFA_ENTRY,
                (TAG_JPEG_OFFSET, 4, 1, 50),
                (TAG_JPEG_LENGTH, 4, 1, 1 << 30),
            ],
            0,
            &jpeg,
        );
        assert_eq!(previews(&bytes).unwrap().0, Vec::<&[u8]>::new());
        let fits = tiff(
            &[
                CFA_ENTRY,
                (TAG_JPEG_OFFSET, 4, 1, 50),
                (TAG_JPEG_LENGTH, 4, 1, 4),
            ],
            0,
            &jpeg,
        );
        assert_eq!(previews(&fits).unwrap().0, vec![&jpeg[..]]);
    }

    #[test]
    fn plain_tiffs_are_not_raw() {
        let rgb = tiff(&[(TAG_PHOTOMETRIC, 3, 1, 2)], 0, &[]);
        assert!(!is_raw_tiff(&rgb));
        let dng = tiff(&[(TAG_DNG_VERSION, 1, 4, 0x0104)], 0, &[]);
        assert!(is_raw_tiff(&dng));
        assert!(is_raw_tiff(b"II*\0\x10\0\0\0CR\x02\0"));
    }
}
