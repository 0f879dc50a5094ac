//! The store boundary: what ingest, the watcher and the text collection need from an index,
//! whichever backend holds it. [`Index`] (sled and graph segments, on this machine) and, with
//! the `milvus` feature, [`crate::Milvus`] (a Milvus collection, shared by any number of
//! machines) implement it; the engine writes through it alone.

use std::path::Path;

use crate::types::{Entry, Failure, ImageMeta, Record};
use crate::{Collection, Id, Index, IndexError};

/// The records and failures of an index, as a writer sees them.
pub trait Backend: Send + Sync {
    /// Where the index lives: its directory, or its URL.
    fn location(&self) -> &Path;
    /// The image collection (keys are path bytes).
    fn images(&self) -> &dyn Records;
    /// The text collection (keys are UTF-8 texts).
    fn texts(&self) -> &dyn Records;
    /// Remembers that `key` could not be indexed, and why (replacing an earlier failure).
    fn record_failure(&self, key: &[u8], reason: &str) -> Result<(), IndexError>;
    /// Forgets the failure of `key`; whether there was one.
    fn clear_failure(&self, key: &[u8]) -> Result<bool, IndexError>;
    /// The failure recorded for `key`.
    fn failure(&self, key: &[u8]) -> Result<Option<Failure>, IndexError>;
    /// Every failure, by key.
    fn failures(&self) -> Result<Vec<(Vec<u8>, Failure)>, IndexError>;
    /// Makes what was written visible to readers and durable (the embedded index seals its
    /// graph and publishes its view; Milvus needs nothing).
    fn checkpoint(&self) -> Result<(), IndexError>;
}

/// A collection's records: key → id, vector, file stamp and image metadata.
pub trait Records: Send + Sync {
    /// Stores a batch (a key already present is replaced); the ids, in the order of `entries`.
    fn upsert_batch(&self, entries: Vec<Entry>) -> Result<Vec<Id>, IndexError>;
    /// Removes the records of `keys`; how many there were.
    fn remove_keys(&self, keys: &[Vec<u8>]) -> Result<usize, IndexError>;
    /// Stores the metadata of records already stored; how many were written.
    fn set_meta(&self, items: Vec<(Id, ImageMeta)>) -> Result<usize, IndexError>;
    /// Whether the record `id` has its metadata (a record stored before metadata was
    /// captured has none until backfilled).
    fn has_meta(&self, id: Id) -> Result<bool, IndexError>;
    /// The record stored under `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Record>, IndexError>;
    /// A record whose file has content hash `hash`, with its vector (rename reuse).
    fn lookup_hash(&self, hash: &[u8]) -> Result<Option<(Id, Vec<f32>)>, IndexError>;
    /// The records whose key starts with `prefix`, in key order.
    fn with_prefix(&self, prefix: &[u8]) -> Result<RecordIter<'_>, IndexError>;
}

/// Records with their keys, as [`Records::with_prefix`] yields them.
pub type RecordIter<'a> = Box<dyn Iterator<Item = Result<(Vec<u8>, Record), IndexError>> + 'a>;

impl Backend for Index {
    fn location(&self) -> &Path {
        self.path()
    }

    fn images(&self) -> &dyn Records {
        Index::images(self)
    }

    fn texts(&self) -> &dyn Records {
        Index::texts(self)
    }

    fn record_failure(&self, key: &[u8], reason: &str) -> Result<(), IndexError> {
        Index::record_failure(self, key, reason)
    }

    fn clear_failure(&self, key: &[u8]) -> Result<bool, IndexError> {
        Index::clear_failure(self, key)
    }

    fn failure(&self, key: &[u8]) -> Result<Option<Failure>, IndexError> {
        Index::failure(self, key)
    }

    fn failures(&self) -> Result<Vec<(Vec<u8>, Failure)>, IndexError> {
        Index::failures(self)
    }

    fn checkpoint(&self) -> Result<(), IndexError> {
        Index::checkpoint(self)
    }
}

impl Records for Collection {
    fn upsert_batch(&self, entries: Vec<Entry>) -> Result<Vec<Id>, IndexError> {
        Collection::upsert_batch(self, entries)
    }

    fn remove_keys(&self, keys: &[Vec<u8>]) -> Result<usize, IndexError> {
        Collection::remove(self, keys)
    }

    fn set_meta(&self, items: Vec<(Id, ImageMeta)>) -> Result<usize, IndexError> {
        Collection::set_meta(self, items)
    }

    fn has_meta(&self, id: Id) -> Result<bool, IndexError> {
        Ok(self.meta_table().get(id).is_some())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Record>, IndexError> {
        Collection::get(self, key)
    }

    fn lookup_hash(&self, hash: &[u8]) -> Result<Option<(Id, Vec<f32>)>, IndexError> {
        Collection::lookup_hash(self, hash)
    }

    fn with_prefix(&self, prefix: &[u8]) -> Result<RecordIter<'_>, IndexError> {
        Ok(Box::new(self.iter_prefix(prefix)))
    }
}
