//! Why an image could not be decoded.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use super::read::human_size;

/// Why an image could not be decoded. Each variant names the file (`None` for in-memory bytes).
///
/// Displays as `PATH: REASON` (`<memory>: REASON` for in-memory bytes); [`DecodeError::reason`]
/// is the part after the path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The file could not be opened or read.
    Io {
        /// The file.
        path: Option<PathBuf>,
        /// The underlying error.
        source: io::Error,
    },
    /// The file has no bytes at all.
    Empty {
        /// The file.
        path: Option<PathBuf>,
    },
    /// The content matches no image format's signature.
    UnknownFormat {
        /// The file.
        path: Option<PathBuf>,
    },
    /// A recognised image format (or feature of one) that this build cannot decode.
    Unsupported {
        /// The file.
        path: Option<PathBuf>,
        /// The decoder's explanation.
        detail: String,
    },
    /// The header announces an image larger than [`DecodeLimits`](crate::decode::DecodeLimits) allow.
    TooLarge {
        /// The file.
        path: Option<PathBuf>,
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
        /// The limit it exceeds, in words.
        limit: String,
    },
    /// Not a regular file: a device, a FIFO, a socket or a directory, which is never read.
    NotAFile {
        /// The file.
        path: Option<PathBuf>,
        /// What it is, in words ("a character device").
        kind: &'static str,
    },
    /// The file is larger than [`max_file_bytes`](super::DecodeLimits::max_file_bytes); nothing of it was kept.
    FileTooLarge {
        /// The file.
        path: Option<PathBuf>,
        /// Its size (or the bytes read before it passed the limit, when it grew meanwhile).
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A decoder (or another stage of decoding this one file) panicked. The panic was
    /// contained: the file is refused, everything else goes on.
    Crashed {
        /// The file.
        path: Option<PathBuf>,
        /// What crashed, in words ("the TIFF decoder").
        stage: String,
        /// The panic's message.
        message: String,
    },
    /// The data is damaged or cut short.
    Corrupt {
        /// The file.
        path: Option<PathBuf>,
        /// The decoder's message.
        message: String,
    },
}

impl DecodeError {
    /// The file the error is about; `None` when decoding in-memory bytes.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Self::Io { path, .. }
            | Self::Empty { path }
            | Self::UnknownFormat { path }
            | Self::Unsupported { path, .. }
            | Self::TooLarge { path, .. }
            | Self::NotAFile { path, .. }
            | Self::FileTooLarge { path, .. }
            | Self::Crashed { path, .. }
            | Self::Corrupt { path, .. } => path.as_deref(),
        }
    }

    /// The same error about `path`: decoders of their own (libheif, jxl-oxide) report without
    /// one, and the dispatch names the file.
    pub(super) fn at(mut self, path: Option<PathBuf>) -> Self {
        match &mut self {
            Self::Io { path: p, .. }
            | Self::Empty { path: p }
            | Self::UnknownFormat { path: p }
            | Self::Unsupported { path: p, .. }
            | Self::TooLarge { path: p, .. }
            | Self::NotAFile { path: p, .. }
            | Self::FileTooLarge { path: p, .. }
            | Self::Crashed { path: p, .. }
            | Self::Corrupt { path: p, .. } => *p = path,
        }
        self
    }

    /// What went wrong, without the path: for records already keyed by the path (the index's
    /// failure list) and for in-memory bytes.
    pub fn reason(&self) -> String {
        match self {
            Self::Io { source, .. } => source.to_string(),
            Self::Empty { .. } => "empty file".to_owned(),
            Self::UnknownFormat { .. } => "not an image: content matches no known format \
                 (supported: JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC, AVIF, JPEG XL, camera RAW)"
                .to_owned(),
            Self::Unsupported { detail, .. } => format!("unsupported image: {detail}"),
            Self::TooLarge {
                width,
                height,
                limit,
                ..
            } => format!("image is {width}x{height}, above the {limit}"),
            Self::NotAFile { kind, .. } => format!("not a regular file: it is {kind}"),
            Self::FileTooLarge { size, limit, .. } => format!(
                "file is {}, over the {} limit for an image",
                human_size(*size),
                human_size(*limit)
            ),
            Self::Crashed { stage, message, .. } => {
                format!("{stage} crashed on this file ({message})")
            }
            Self::Corrupt { message, .. } => format!("corrupt or truncated image: {message}"),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.path() {
            Some(path) => write!(f, "{}: {}", path.to_string_lossy(), self.reason()),
            None => write!(f, "<memory>: {}", self.reason()),
        }
    }
}
