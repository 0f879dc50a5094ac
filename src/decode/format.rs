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
    /// Certainly not an image (videos, sidecars, documents): the content is not sniffed.
    NotImage,
}

/// Extensions of the formats the decoder handles (camera RAW ones in [`RAW`]).
const DECODED: &[&str] = &[
    "jpg", "jpeg", "jpe", "jfif", "png", "webp", "gif", "bmp", "tif", "tiff",
];

/// Extensions of camera RAW formats, decoded through their embedded JPEG preview.
const RAW: &[&str] = &[
    "dng", "cr2", "cr3", "nef", "arw", "raf", "orf", "rw2", "pef",
];

/// Extensions of JPEG files, the other half of a RAW + JPEG pair.
const JPEG: &[&str] = &["jpg", "jpeg", "jpe", "jfif"];

/// Extensions of image formats we recognise but cannot decode.
const RECOGNISED: &[&str] = &["heic", "heif", "avif", "jxl", "psd", "svg", "ico"];

/// Extensions that are certainly not images.
const NOT_IMAGES: &[&str] = &[
    "mp4", "mov", "avi", "mkv", "m4v", "3gp", "xmp", "json", "txt", "md", "pdf", "html", "db",
    "aae", "mp3", "wav", "zip",
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

/// How many leading bytes [`has_image_signature`] looks at.
pub const SIGNATURE_LEN: usize = 16;

/// Whether `head` (the first bytes of a file) starts with the signature of a format the
/// decoder handles.
pub fn has_image_signature(head: &[u8]) -> bool {
    matches!(
        image::guess_format(head),
        Ok(image::ImageFormat::Jpeg
            | image::ImageFormat::Png
            | image::ImageFormat::WebP
            | image::ImageFormat::Gif
            | image::ImageFormat::Bmp
            | image::ImageFormat::Tiff)
    ) || super::raw::has_signature(head)
        || super::tiff::is_big_tiff(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_are_classified_case_insensitively() {
        assert_eq!(by_extension(Path::new("a/B.JPG")), Some(Support::Decoded));
        assert_eq!(by_extension(Path::new("b.jfif")), Some(Support::Decoded));
        assert_eq!(by_extension(Path::new("c.HEIC")), Some(Support::Recognised));
        assert_eq!(by_extension(Path::new("d.mp4")), Some(Support::NotImage));
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
    fn signatures_of_decoded_formats_are_recognised() {
        assert!(has_image_signature(b"\xff\xd8\xff\xe0\0\x10JFIF"));
        assert!(has_image_signature(b"\x89PNG\r\n\x1a\n"));
        assert!(!has_image_signature(b"hello, world"));
        assert!(has_image_signature(b"FUJIFILMCCD-RAW "));
        assert!(has_image_signature(b"\0\0\0\x18ftypcrx \0\0\0\x01"));
    }
}
