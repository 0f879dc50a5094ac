//! Errors of the index, each naming the thing it is about.

use std::path::PathBuf;

use crate::types::IndexSpec;

/// Everything that can go wrong while opening, writing or searching an index.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// Another process (or another `Index` in this process) holds the index open.
    #[error(
        "{}: the index is in use by another xsearch process\n\nWait for it to finish (or stop it), then run this again.",
        path.display()
    )]
    Locked {
        /// The index directory.
        path: PathBuf,
    },
    /// The directory exists, holds files, and is not an xsearch index: nothing is written
    /// to it.
    #[error(
        "{}: not an xsearch index (the directory holds other files)\n\nChoose a new or empty directory for the index.",
        path.display()
    )]
    NotAnIndex {
        /// The directory.
        path: PathBuf,
    },
    /// The index has no read view: it was last written by a build that did not publish one.
    /// Opening it once for writing ([`crate::Index::open`]) publishes it.
    #[error(
        "{}: the index has no read view yet (it was written by an older version)\n\nOpen it once for writing, which publishes the view, then read it again.",
        path.display()
    )]
    NoView {
        /// The index directory.
        path: PathBuf,
    },
    /// The index was built with another model or embedding size than the one requested.
    #[error(
        "{}: the index was built with {index}, not {requested}\n\nUse the same model, or pick another index directory (--index).",
        path.display()
    )]
    ModelMismatch {
        /// The index directory.
        path: PathBuf,
        /// What the index was built with.
        index: IndexSpec,
        /// What the caller asked for.
        requested: IndexSpec,
    },
    /// The index was written in a format this version cannot read.
    #[error(
        "{}: index format version {found} is not supported (this build reads version {supported})\n\nRebuild the index in a new directory.",
        path.display()
    )]
    Incompatible {
        /// The index directory.
        path: PathBuf,
        /// The format version found on disk.
        found: u32,
        /// The format version this build reads and writes.
        supported: u32,
    },
    /// A stored value could not be decoded.
    #[error("{}: corrupt index data: {what}", path.display())]
    Corrupt {
        /// The index directory.
        path: PathBuf,
        /// Which value, and how it is broken.
        what: String,
    },
    /// A vector does not have the index's dimension.
    #[error("{key}: vector has {found} dimensions, the index stores {expected}")]
    Dimension {
        /// The entry key (lossy UTF-8), or `query`.
        key: String,
        /// The index's dimension.
        expected: usize,
        /// The vector's length.
        found: usize,
    },
    /// A vector holds a NaN or an infinity.
    #[error("{key}: vector holds a NaN or infinite value")]
    NonFinite {
        /// The entry key (lossy UTF-8), or `query`.
        key: String,
    },
    /// The sled store failed.
    #[error("{}: {}", path.display(), store_message(source))]
    Store {
        /// The store directory.
        path: PathBuf,
        /// What sled reported.
        source: sled::Error,
    },
    /// A file operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system reported.
        source: std::io::Error,
    },
    /// `--index` names something that looks like a Milvus URL but is not a valid one.
    #[error("{location}: not an index location: {why}")]
    BadLocation {
        /// What was given.
        location: String,
        /// What is wrong with it.
        why: String,
    },
    /// A Milvus location, in a build without the Milvus client.
    #[error(
        "{url}: this build of xsearch has no Milvus support\n\nUse a build with the `milvus` feature (the released `xsearch` binary has it), or an index directory."
    )]
    NoMilvusSupport {
        /// The location.
        url: String,
    },
    /// No Milvus server answered at the location's address.
    #[error("{url}: no Milvus at {address} ({reason})\n\nStart one, or check the URL and XSEARCH_MILVUS_TOKEN.")]
    NoMilvus {
        /// The location.
        url: String,
        /// `HOST:PORT`.
        address: String,
        /// What the connection attempt reported.
        reason: String,
    },
    /// The Milvus server has no such collection.
    #[error("{url}: no such collection\n\nRun `xsearch index` with this location to create it, or check its name.")]
    NoCollection {
        /// The location.
        url: String,
    },
    /// A Milvus request failed.
    #[error("{url}: Milvus could not {what}: {message}")]
    Milvus {
        /// The location.
        url: String,
        /// The operation, in words ("search the images").
        what: String,
        /// What the server or the client reported.
        message: String,
    },
    /// The Milvus backend cannot do what the embedded index does.
    #[error("{location}: {what} is not available with a Milvus index: {why}")]
    Unsupported {
        /// The location.
        location: String,
        /// The operation ("finding duplicates").
        what: String,
        /// Why, and what to do instead.
        why: String,
    },
    /// Writing a graph segment failed.
    #[error("{}: could not write the graph segment: {message}", path.display())]
    Segment {
        /// The segment file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

impl IndexError {
    /// Maps a sled error, recognising sled's lock failure (an `io::Error` whose text is
    /// "could not acquire lock on ..."; sled gives it no kind of its own).
    pub(crate) fn store(path: &std::path::Path, source: sled::Error) -> Self {
        if let sled::Error::Io(io) = &source {
            if io.to_string().contains("could not acquire lock") {
                return IndexError::Locked {
                    path: path.to_path_buf(),
                };
            }
        }
        IndexError::Store {
            path: path.to_path_buf(),
            source,
        }
    }

    /// The kind of the system error behind this one, if it is one: lets a program say "the
    /// disk is full" in words (`StorageFull`) whether the store or a segment file hit it.
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match self {
            IndexError::Io { source, .. } => Some(source.kind()),
            IndexError::Store {
                source: sled::Error::Io(io),
                ..
            } => Some(io.kind()),
            _ => None,
        }
    }

    /// The file or directory the error is about.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            IndexError::Locked { path }
            | IndexError::NotAnIndex { path }
            | IndexError::NoView { path }
            | IndexError::ModelMismatch { path, .. }
            | IndexError::Incompatible { path, .. }
            | IndexError::Corrupt { path, .. }
            | IndexError::Store { path, .. }
            | IndexError::Io { path, .. }
            | IndexError::Segment { path, .. } => Some(path),
            IndexError::Dimension { .. }
            | IndexError::NonFinite { .. }
            | IndexError::BadLocation { .. }
            | IndexError::NoMilvusSupport { .. }
            | IndexError::NoMilvus { .. }
            | IndexError::NoCollection { .. }
            | IndexError::Milvus { .. }
            | IndexError::Unsupported { .. } => None,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        IndexError::Io {
            path: path.into(),
            source,
        }
    }
}

/// sled's words for its error, except that a system error is said as the system says it
/// (sled prints its debug form, `Os { code: 28, kind: StorageFull, .. }`).
fn store_message(error: &sled::Error) -> String {
    match error {
        sled::Error::Io(io) => io.to_string(),
        other => other.to_string(),
    }
}
