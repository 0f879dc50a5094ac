//! The little a RAW reader needs to know about a JPEG preview: its size from the frame header,
//! and whether its own EXIF block states an orientation.

use crate::decode::jpeg::{exif_orientation, segments};

/// Width and height of a baseline, extended or progressive JPEG; `None` for anything else,
/// lossless JPEG included (CR2 and DNG store their sensor data as lossless JPEG, which is not
/// a picture to show and which our decoder does not read).
pub(super) fn frame_size(jpeg: &[u8]) -> Option<(u16, u16)> {
    let (marker, header) = segments(jpeg)
        .find(|(m, _)| (0xc0..=0xcf).contains(m) && ![0xc4, 0xc8, 0xcc].contains(m))?;
    if !(0xc0..=0xc2).contains(&marker) || header.len() < 5 {
        return None;
    }
    let height = u16::from_be_bytes([header[1], header[2]]);
    let width = u16::from_be_bytes([header[3], header[4]]);
    (width > 0 && height > 0).then_some((width, height))
}

/// Whether the JPEG's own EXIF block has an orientation tag (its decoder then applies it).
pub(super) fn has_orientation(jpeg: &[u8]) -> bool {
    exif_orientation(jpeg).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_size_of_a_baseline_frame_after_other_segments() {
        let mut jpeg = vec![0xff, 0xd8, 0xff, 0xe0, 0, 4, 1, 2];
        jpeg.extend([0xff, 0xc4, 0, 2]);
        jpeg.extend([0xff, 0xc0, 0, 11, 8, 0, 30, 0, 40, 1, 1, 0x11, 0]);
        assert_eq!(frame_size(&jpeg), Some((40, 30)));
        assert!(!has_orientation(&jpeg));
    }

    #[test]
    fn lossless_frames_and_cut_headers_have_no_size() {
        let lossless = [
            0xff, 0xd8, 0xff, 0xc3, 0, 11, 8, 0, 30, 0, 40, 1, 1, 0x11, 0,
        ];
        assert_eq!(frame_size(&lossless), None);
        assert_eq!(frame_size(&[0xff, 0xd8, 0xff, 0xc0, 0, 11, 8]), None);
        assert_eq!(frame_size(&[0xff, 0xd8, 0xff, 0xe0, 0xff, 0xff]), None);
    }
}
