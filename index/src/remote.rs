//! Indexes on a server ([`crate::Location::Milvus`]): the reads a search needs, on top of the
//! writes of [`Backend`], and how to open one. A build without the `milvus` feature knows the
//! locations but opens none ([`IndexError::NoMilvusSupport`]), so callers need no feature of
//! their own.

use crate::backend::Backend;
use crate::conditions::Conditions;
use crate::location::MilvusUrl;
use crate::types::{Hit, ImageMeta, IndexSpec};
use crate::{Id, IndexError};

/// Which collection of an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The images (keys are paths).
    Images,
    /// The texts.
    Texts,
}

/// An index held by a server, for writing (through [`Backend`]) and searching.
pub trait Remote: Backend {
    /// The model the index was made for.
    fn spec(&self) -> &IndexSpec;
    /// Where its model came from, as its first writer had it.
    fn model_source(&self) -> Option<&str>;
    /// Records in `part`.
    fn count(&self, part: Part) -> Result<usize, IndexError>;
    /// The `k` records of `part` most similar to `query`, best first, among those `conditions`
    /// accept.
    fn search(
        &self,
        part: Part,
        query: &[f32],
        k: usize,
        conditions: Option<&Conditions>,
    ) -> Result<Vec<Hit>, IndexError>;
    /// The key of the image `id`.
    fn key(&self, id: Id) -> Result<Option<Vec<u8>>, IndexError>;
    /// The vector of the image `id`.
    fn vector(&self, id: Id) -> Result<Option<Vec<f32>>, IndexError>;
    /// The metadata of the image `id`.
    fn meta_of(&self, id: Id) -> Result<Option<ImageMeta>, IndexError>;
}

/// How [`open_remote`] opens an index.
#[derive(Debug, Clone, Copy)]
pub enum Open<'a> {
    /// An existing index made for `spec`'s model.
    Existing(&'a IndexSpec),
    /// The index, created for `spec`'s model (from `source`) when missing.
    Create(&'a IndexSpec, &'a str),
    /// An existing index, whatever its model (to read what it records).
    Any,
}

/// Opens the index at `url` as `how` says.
#[cfg(feature = "milvus")]
pub fn open_remote(url: &MilvusUrl, how: Open<'_>) -> Result<Box<dyn Remote>, IndexError> {
    use crate::milvus_backend::Milvus;
    Ok(Box::new(match how {
        Open::Existing(spec) => Milvus::open(url, Some((spec, None)))?,
        Open::Create(spec, source) => Milvus::open(url, Some((spec, Some(source))))?,
        Open::Any => Milvus::open(url, None)?,
    }))
}

/// Opens the index at `url`: not in this build.
#[cfg(not(feature = "milvus"))]
pub fn open_remote(url: &MilvusUrl, _how: Open<'_>) -> Result<Box<dyn Remote>, IndexError> {
    Err(IndexError::NoMilvusSupport {
        url: url.to_string(),
    })
}
