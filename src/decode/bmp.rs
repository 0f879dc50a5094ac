//! BMP headers that `image` refuses although their pixels are in a layout it reads, rewritten
//! into the form it knows (as Pillow reads them):
//! - OS/2 2.x headers (64 bytes): their first 40 bytes are a Windows `BITMAPINFOHEADER`, the
//!   rest OS/2-only fields, and the palette has 4-byte entries like Windows'.
//! - Top-down RLE (a negative height with RLE8/RLE4, which the BMP spec leaves undefined but
//!   writers produce): decoded bottom-up, then flipped.
//! - A plane count other than 1 (the field is meaningless in files; Pillow ignores it).

/// Offsets in the file header and `BITMAPINFOHEADER`.
const PIXELS_OFFSET: usize = 10;
const HEADER_SIZE: usize = 14;
const HEIGHT: usize = 22;
const PLANES: usize = 26;
const COMPRESSION: usize = 30;
const OS2_V2_HEADER: u32 = 64;
const WINDOWS_HEADER: u32 = 40;

/// The file rewritten so `image` reads it, and whether its rows must be flipped afterwards;
/// `None` when the file needs no rewriting (or is too short to be a BMP with this header).
pub(super) fn rewrite(bytes: &[u8]) -> Option<(Vec<u8>, bool)> {
    let u32_at = |at: usize| Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
    let header = u32_at(HEADER_SIZE)?;
    let compression = u32_at(COMPRESSION)?;
    let height = i32::from_le_bytes(bytes.get(HEIGHT..HEIGHT + 4)?.try_into().ok()?);
    let planes = u16::from_le_bytes(bytes.get(PLANES..PLANES + 2)?.try_into().ok()?);
    // OS/2 2.x numbers its compressions differently above 2 (Huffman, RLE24): left alone.
    let os2 = header == OS2_V2_HEADER && compression <= 2;
    let rle = matches!(compression, 1 | 2);
    let flip = rle && height < 0 && height != i32::MIN;
    if !os2 && !flip && planes == 1 {
        return None;
    }
    let mut out = bytes.to_vec();
    out[PLANES..PLANES + 2].copy_from_slice(&1u16.to_le_bytes());
    if flip {
        out[HEIGHT..HEIGHT + 4].copy_from_slice(&(-height).to_le_bytes());
    }
    if os2 {
        let extra = (OS2_V2_HEADER - WINDOWS_HEADER) as usize;
        let info_end = HEADER_SIZE + WINDOWS_HEADER as usize;
        let pixels = u32_at(PIXELS_OFFSET)?.checked_sub(extra as u32)?;
        // A file cut short inside the OS/2 header is left to `image`, which refuses it.
        if out.len() < info_end + extra {
            return None;
        }
        out.drain(info_end..info_end + extra).for_each(drop);
        out[HEADER_SIZE..HEADER_SIZE + 4].copy_from_slice(&WINDOWS_HEADER.to_le_bytes());
        out[PIXELS_OFFSET..PIXELS_OFFSET + 4].copy_from_slice(&pixels.to_le_bytes());
        let size = u32::try_from(out.len()).ok()?;
        out[2..6].copy_from_slice(&size.to_le_bytes());
    }
    Some((out, flip))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BMP header: `header` bytes of info header, then nothing.
    fn bmp(header: u32, height: i32, planes: u16, compression: u32, offset: u32) -> Vec<u8> {
        let mut b = vec![0u8; 14 + header as usize];
        b[..2].copy_from_slice(b"BM");
        b[PIXELS_OFFSET..PIXELS_OFFSET + 4].copy_from_slice(&offset.to_le_bytes());
        b[HEADER_SIZE..HEADER_SIZE + 4].copy_from_slice(&header.to_le_bytes());
        b[HEIGHT..HEIGHT + 4].copy_from_slice(&height.to_le_bytes());
        b[PLANES..PLANES + 2].copy_from_slice(&planes.to_le_bytes());
        b[COMPRESSION..COMPRESSION + 4].copy_from_slice(&compression.to_le_bytes());
        b
    }

    #[test]
    fn ordinary_headers_are_left_alone() {
        assert_eq!(rewrite(&bmp(40, -4, 1, 0, 54)), None);
        assert_eq!(rewrite(b"BM"), None);
    }

    #[test]
    fn os2_v2_headers_become_windows_ones() {
        let (out, flip) = rewrite(&bmp(64, 4, 1, 0, 78)).unwrap();
        assert!(!flip);
        assert_eq!(out.len(), 54);
        assert_eq!(u32::from_le_bytes(out[14..18].try_into().unwrap()), 40);
        assert_eq!(u32::from_le_bytes(out[10..14].try_into().unwrap()), 54);
        assert_eq!(u32::from_le_bytes(out[2..6].try_into().unwrap()), 54);
    }

    #[test]
    fn top_down_rle_is_flipped_and_planes_set_to_one() {
        let (out, flip) = rewrite(&bmp(40, -4, 3, 1, 54)).unwrap();
        assert!(flip);
        assert_eq!(i32::from_le_bytes(out[22..26].try_into().unwrap()), 4);
        assert_eq!(u16::from_le_bytes(out[26..28].try_into().unwrap()), 1);
    }
}
