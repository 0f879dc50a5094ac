//! The one list of the file formats xsearch knows about: those it decodes, image formats it
//! recognises but cannot decode (reported, so people know why those photos are missing), and
//! extensions that are certainly not images. The walk, the query parser and the decoder all
//! ask here.

use std::path::Path;

/// How xsearch treats a kind of file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// An image format the decoder handles.
    Decoded,
    /// An image format xsearch recognises but cannot decode: such files are reported.
    Recognised,
    /// A video: not decoded, counted as skipped in the ingest summary (one count, not an error
    /// line each).
    Video,
    /// Certainly not an image (sidecars, documents): the content is not sniffed.
    NotImage,
}

/// Extensions of the formats the decoder handles (camera RAW ones in [`RAW`]).
const DECODED: &[&str] = &[
    "jpg", "jpeg", "jpe", "jfif", "png", "webp", "gif", "bmp", "tif", "tiff", "heic", "heif",
    "hif", "avif", "jxl",
];

/// Extensions of camera RAW formats, decoded through their embedded JPEG preview.
const RAW: &[&str] = &[
    "dng", "cr2", "cr3", "nef", "arw", "raf", "orf", "rw2", "pef",
];

/// Extensions of JPEG files, the other half of a RAW + JPEG pair.
const JPEG: &[&str] = &["jpg", "jpeg", "jpe", "jfif"];

/// Extensions of image formats we recognise but cannot decode.
const RECOGNISED: &[&str] = &["psd", "svg", "ico"];

/// Extensions of video files. (`.ts` is left out: it is far more often TypeScript.)
const VIDEOS: &[&str] = &[
    "mp4", "m4v", "mov", "qt", "avi", "mkv", "webm", "3gp", "3g2", "mts", "m2ts", "mpg", "mpeg",
    "wmv", "flv", "ogv", "vob",
];

/// Extensions that are certainly not images.
const NOT_IMAGES: &[&str] = &[
    "xmp", "json", "txt", "md", "pdf", "html", "db", "aae", "mp3", "wav", "zip",
];

/// What the extension of `path` says about it (case-insensitive); `None` for no or an unknown
/// extension, where only the content can tell.
pub fn by_extension(path: &Path) -> Option<Support> {
    let extension = path.extension()?.to_str()?.to_ascii_lowercase();
    let extension = extension.as_str();
    if DECODED.contains(&extension) || RAW.contains(&extension) {
        Some(Support::Decoded)
    } else if RECOGNISED.contains(&extension) {
        Some(Support::Recognised)
    } else if VIDEOS.contains(&extension) {
        Some(Support::Video)
    } else if NOT_IMAGES.contains(&extension) {
        Some(Support::NotImage)
    } else {
        None
    }
}

/// Whether the extension of `path` names a camera RAW format (case-insensitive).
pub fn has_raw_extension(path: &Path) -> bool {
    has_extension_in(path, RAW)
}

/// Whether the extension of `path` names a JPEG (case-insensitive).
pub fn has_jpeg_extension(path: &Path) -> bool {
    has_extension_in(path, JPEG)
}

fn has_extension_in(path: &Path, list: &[&str]) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| list.contains(&e.to_ascii_lowercase().as_str()))
}

/// Whether the extension of `path` names an image format, decodable or not.
pub fn has_image_extension(path: &Path) -> bool {
    matches!(
        by_extension(path),
        Some(Support::Decoded | Support::Recognised)
    )
}

/// How many leading bytes [`by_signature`] looks at: enough for an ISO base media file's
/// `ftyp` box with a few compatible brands.
pub const SIGNATURE_LEN: usize = 32;

/// What `head` (the first bytes of a file) is: [`Support::Decoded`] for a format the decoder
/// handles, [`Support::Video`] for a video, `None` for anything else.
pub fn by_signature(head: &[u8]) -> Option<Support> {
    let decoded = matches!(
        image::guess_format(head),
        Ok(image::ImageFormat::Jpeg
            | image::ImageFormat::Png
            | image::ImageFormat::WebP
            | image::ImageFormat::Gif
            | image::ImageFormat::Bmp
            | image::ImageFormat::Tiff)
    ) || super::raw::has_signature(head)
        || super::tiff::is_big_tiff(head)
        || other_format(head).is_some();
    if decoded {
        Some(Support::Decoded)
    } else if is_video_signature(head) {
        Some(Support::Video)
    } else {
        None
    }
}

/// Image formats that `image` does not read, decoded by their own modules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Other {
    /// HEIF with HEVC (iPhone photos) or another HEIF codec: libheif.
    Heic,
    /// AVIF (HEIF with AV1): libheif.
    Avif,
    /// JPEG XL, bare codestream or container: jxl-oxide.
    Jxl,
}

/// HEIF brands (ISO/IEC 23008-12): HEVC images and sequences, and the generic image brands.
const HEIF_BRANDS: &[&[u8; 4]] = &[
    b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1",
];

/// AVIF brands.
const AVIF_BRANDS: &[&[u8; 4]] = &[b"avif", b"avis"];

/// Brands of ISO base media files that are videos (MP4, QuickTime, 3GPP, Flash).
const VIDEO_BRANDS: &[&[u8; 4]] = &[
    b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"qt  ", b"M4V ",
    b"M4VH", b"M4VP", b"3gp4", b"3gp5", b"3gp6", b"3gp7", b"3g2a", b"dash", b"f4v ", b"MSNV",
    b"XAVC",
];

/// The brands of an ISO base media file's leading `ftyp` box (major first, then compatible
/// ones, as far as `head` reaches); empty for anything else.
fn ftyp_brands(head: &[u8]) -> impl Iterator<Item = &[u8]> {
    let size = match head.get(..8) {
        Some([a, b, c, d, b'f', b't', b'y', b'p']) => u32::from_be_bytes([*a, *b, *c, *d]) as usize,
        _ => 0,
    };
    let body = head.get(8..size.min(head.len())).unwrap_or_default();
    // Major brand, minor version (skipped), compatible brands.
    let (major, rest) = body.split_at(body.len().min(4));
    std::iter::once(major)
        .chain(rest.chunks_exact(4).skip(1))
        .filter(|brand| brand.len() == 4)
}

/// Which of [`Other`]'s formats `head` (the first bytes of a file) is, if any.
///
/// HEIF files are told apart by their brands: AVIF's win over the generic `mif1` that AVIF
/// files also list, and the major brand over compatible ones.
pub(crate) fn other_format(head: &[u8]) -> Option<Other> {
    const JXL_CONTAINER: &[u8] = b"\0\0\0\x0cJXL \r\n\x87\n";
    if head.starts_with(&[0xff, 0x0a]) || head.starts_with(JXL_CONTAINER) {
        return Some(Other::Jxl);
    }
    let is = |brands: &[&[u8; 4]], brand: &[u8]| brands.iter().any(|b| b.as_slice() == brand);
    let mut brands = ftyp_brands(head);
    let major = brands.next()?;
    if is(AVIF_BRANDS, major) {
        return Some(Other::Avif);
    }
    if is(HEIF_BRANDS, major) && major != b"mif1" && major != b"msf1" {
        return Some(Other::Heic);
    }
    let compatible: Vec<&[u8]> = brands.collect();
    if compatible.iter().any(|b| is(AVIF_BRANDS, b)) {
        Some(Other::Avif)
    } else if is(HEIF_BRANDS, major) || compatible.iter().any(|b| is(HEIF_BRANDS, b)) {
        Some(Other::Heic)
    } else {
        None
    }
}

/// Whether `head` starts like a video file: ISO base media with a video brand (MP4, MOV,
/// 3GP), RIFF AVI, Matroska/WebM (EBML), MPEG program stream, ASF (WMV), FLV.
fn is_video_signature(head: &[u8]) -> bool {
    let mut brands = ftyp_brands(head);
    if let Some(major) = brands.next() {
        return VIDEO_BRANDS.iter().any(|b| b.as_slice() == major) && other_format(head).is_none();
    }
    head.get(..4) == Some(b"RIFF") && head.get(8..12) == Some(b"AVI ")
        || head.starts_with(&[0x1a, 0x45, 0xdf, 0xa3])
        || head.starts_with(&[0, 0, 1, 0xba])
        || head.starts_with(&[0x30, 0x26, 0xb2, 0x75, 0x8e, 0x66, 0xcf, 0x11])
        || head.starts_with(b"FLV\x01")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_are_classified_case_insensitively() {
        assert_eq!(by_extension(Path::new("a/B.JPG")), Some(Support::Decoded));
        assert_eq!(by_extension(Path::new("b.jfif")), Some(Support::Decoded));
        assert_eq!(by_extension(Path::new("c.HEIC")), Some(Support::Decoded));
        assert_eq!(by_extension(Path::new("c.psd")), Some(Support::Recognised));
        assert_eq!(by_extension(Path::new("d.mp4")), Some(Support::Video));
        assert_eq!(by_extension(Path::new("d.MTS")), Some(Support::Video));
        assert_eq!(by_extension(Path::new("d.xmp")), Some(Support::NotImage));
        assert_eq!(by_extension(Path::new("r.NEF")), Some(Support::Decoded));
        assert!(has_raw_extension(Path::new("IMG_0001.CR2")));
        assert!(has_jpeg_extension(Path::new("IMG_0001.Jpeg")));
        assert!(!has_raw_extension(Path::new("IMG_0001.jpg")));
        assert_eq!(by_extension(Path::new("e.xyz")), None);
        assert_eq!(by_extension(Path::new("noext")), None);
        assert!(has_image_extension(Path::new("f.jpe")));
        assert!(!has_image_extension(Path::new("g.mov")));
    }

    #[test]
    fn signatures_of_decoded_formats_and_videos_are_recognised() {
        assert_eq!(
            by_signature(b"\xff\xd8\xff\xe0\0\x10JFIF"),
            Some(Support::Decoded)
        );
        assert_eq!(by_signature(b"\x89PNG\r\n\x1a\n"), Some(Support::Decoded));
        assert_eq!(by_signature(b"hello, world"), None);
        // Matroska/WebM, RIFF AVI, an MPEG-4 from a phone, a QuickTime movie.
        assert_eq!(
            by_signature(b"\x1a\x45\xdf\xa3\x9f\x42"),
            Some(Support::Video)
        );
        assert_eq!(by_signature(b"RIFF\0\0\0\0AVI LIST"), Some(Support::Video));
        assert_eq!(
            by_signature(&ftyp(b"isom", &[b"isom", b"mp42"])),
            Some(Support::Video)
        );
        assert_eq!(
            by_signature(&ftyp(b"qt  ", &[b"qt  "])),
            Some(Support::Video)
        );
        assert_eq!(by_signature(b"FUJIFILMCCD-RAW "), Some(Support::Decoded));
        // Canon CR3 is ISO base media too, with its own brand: a RAW, not a video.
        assert_eq!(
            by_signature(b"\0\0\0\x18ftypcrx \0\0\0\x01"),
            Some(Support::Decoded)
        );
    }

    /// An `ftyp` box: size, type, major brand, minor version 0, compatible brands.
    fn ftyp(major: &[u8; 4], compatible: &[&[u8; 4]]) -> Vec<u8> {
        let size = 16 + 4 * compatible.len() as u32;
        let mut bytes = size.to_be_bytes().to_vec();
        bytes.extend_from_slice(b"ftyp");
        bytes.extend_from_slice(major);
        bytes.extend_from_slice(&[0; 4]);
        compatible.iter().for_each(|b| bytes.extend_from_slice(*b));
        bytes
    }

    #[test]
    fn heif_and_jxl_are_told_from_their_first_bytes() {
        // What iPhones, pillow-heif and Pillow's AVIF plugin write.
        let heic = ftyp(b"heic", &[b"mif1", b"heic", b"miaf"]);
        assert_eq!(other_format(&heic), Some(Other::Heic));
        let avif = ftyp(b"avif", &[b"avif", b"mif1", b"miaf", b"MA1B"]);
        assert_eq!(other_format(&avif), Some(Other::Avif));
        // A generic HEIF major brand: the compatible brands decide, AVIF first.
        let generic_avif = ftyp(b"mif1", &[b"mif1", b"avif"]);
        assert_eq!(other_format(&generic_avif), Some(Other::Avif));
        assert_eq!(other_format(&ftyp(b"mif1", &[b"mif1"])), Some(Other::Heic));
        assert_eq!(other_format(&ftyp(b"isom", &[b"isom"])), None);
        // Bare codestream and container.
        assert_eq!(other_format(b"\xff\x0a\x30\x54"), Some(Other::Jxl));
        assert_eq!(
            other_format(b"\0\0\0\x0cJXL \r\n\x87\n\0\0\0\x14ftypjxl "),
            Some(Other::Jxl)
        );
        // Every committed fixture, read from disk, and the walk's shorter look at it.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/formats");
        for (name, expected) in [
            ("heic_multi.heic", Other::Heic),
            ("avif_10bit.avif", Other::Avif),
            ("jxl_orient6.jxl", Other::Jxl),
        ] {
            let bytes = std::fs::read(dir.join(name)).unwrap();
            assert_eq!(other_format(&bytes), Some(expected), "{name}");
            let head = &bytes[..SIGNATURE_LEN];
            assert_eq!(by_signature(head), Some(Support::Decoded), "{name}");
        }
    }
}
