//! Vector store for xsearch: sled holds the truth, HNSW graphs are derived from it.
//!
//! ```
//! use xsearch_index::{Entry, Index, IndexSpec};
//!
//! # fn main() -> Result<(), xsearch_index::IndexError> {
//! let dir = tempfile::tempdir().unwrap();
//! let spec = IndexSpec { model: "clip-rn50".into(), dim: 2 };
//! let index = Index::open(dir.path(), &spec)?;
//! index.images().upsert_batch(vec![
//!     Entry { key: b"/photos/sea.jpg".to_vec(), file: None, vector: vec![1.0, 0.0], meta: None },
//!     Entry { key: b"/photos/cat.jpg".to_vec(), file: None, vector: vec![0.0, 1.0], meta: None },
//! ])?;
//! let hits = index.images().search(&[0.8, 0.6], 1, None)?;
//! assert_eq!(hits[0].key, b"/photos/sea.jpg");
//! index.close()?;
//! # Ok(())
//! # }
//! ```
//!
//! # Concepts
//!
//! - **Index**: a directory holding a sled store (`store/`), graph segments (`graph/`) and
//!   the read view (`view`).
//!   It carries a format version, the model fingerprint and the embedding dimension; opening
//!   it with another model or dimension is [`IndexError::ModelMismatch`].
//! - **Collection**: keyed vectors. An index has two: [`Index::images`] (keys are path bytes)
//!   and [`Index::texts`] (keys are UTF-8 texts, for image → text search).
//! - **Id**: every upsert gives its vector a fresh [`Id`] from a counter; ids are never reused,
//!   and the vector under an id never changes.
//! - **Segment**: an immutable HNSW graph (built by hnsw_rs) over some of a collection's
//!   vectors, in its own file, mapped when the index opens and searched in place. A search
//!   asks every segment and merges their answers.
//! - **Tail**: the graph in memory that new vectors are inserted into. It is sealed into a
//!   segment when it reaches [`IndexOptions::segment_points`] points and at every checkpoint,
//!   so a writer's memory is bounded by one segment whatever the collection's size.
//! - **Image metadata**: an [`ImageMeta`] per image record (capture time, camera, size,
//!   position), stored with its vector in the same transaction ([`Entry::meta`]) or later
//!   ([`Collection::set_meta`], for records stored before it existed), removed with its
//!   record. The fields filters check are kept in memory per live id ([`MetaTable`]:
//!   [`Collection::meta_table`], [`ReadCollection::meta_table`]).
//! - **Tombstone**: a graph point whose record was removed or replaced. Graphs cannot delete,
//!   so searches skip them; checkpoints rebuild a segment when they exceed
//!   [`IndexOptions::compact_fraction`] of it, and merge small segments.
//! - **Generation**: a counter bumped by every committed batch or removal, for callers that
//!   cache results.
//! - **Writer**: an [`Index`], the one process that holds the store's lock and writes. A
//!   second writer gets [`IndexError::Locked`]. It never writes into a directory that holds
//!   other files and no index ([`IndexError::NotAnIndex`]), and deletes only graph files its
//!   meta records it wrote.
//! - **View**: the file `view` in the index directory, published by the writer at open (when
//!   stale) and at every [`Index::checkpoint`]: the spec, per collection its segment files
//!   and live records, and the failures, replaced atomically. A segment the published view
//!   names is deleted only after a newer view stops naming it.
//! - **Reader**: a [`Reader`] opens the view and maps the segments it names, with no lock and
//!   no write, so any number of readers work beside the writer, on read-only media too. It
//!   sees the writer's last checkpoint ([`IndexInfo::generation`], [`IndexInfo::published`]);
//!   its searches run the same code as the writer's. [`inspect`] reads the spec alone.
//!
//! # Durability
//!
//! [`Collection::upsert_batch`] and [`Collection::remove`] commit one sled transaction and
//! flush it: a kill loses at most the batch in flight. Segment files are written and synced
//! before meta lists them, and deleted only after meta stops listing them. After a kill, the
//! next open finds the vectors that no segment holds (those of the tail) and inserts them
//! into new segments ([`GraphStatus::Updated`]); a missing or damaged segment is rebuilt from
//! the store ([`GraphStatus::Rebuilt`]). [`Index::open_report`] says which, for the caller
//! to print.

mod backend;
mod checksum;
mod collection;
mod conditions;
mod error;
mod exact;
mod filter;
mod graphs;
mod ids;
mod index;
mod kernels;
mod location;
mod meta_table;
#[cfg(feature = "milvus")]
mod milvus_backend;
mod pairs;
mod reader;
mod remote;
mod search;
mod segment;
mod store;
mod sync;
mod types;
mod view;

pub use backend::{Backend, RecordIter, Records};
pub use collection::Collection;
pub use conditions::Conditions;
pub use error::IndexError;
pub use graphs::tail::ClampedDot;
pub use ids::IdSet;
pub use index::Index;
pub use location::{Consistency, Location, MilvusUrl};
pub use meta_table::{CameraId, MetaFields, MetaTable};
#[cfg(feature = "milvus")]
pub use milvus_backend::{Milvus, MilvusRecords};
pub use reader::{inspect, ReadCollection, Reader};
pub use remote::{open_remote, Open, Part, Remote};
pub use types::{
    CollectionStats, Entry, Failure, FileStamp, GraphStatus, Hit, HnswParams, Id, IdFilter,
    ImageMeta, IndexInfo, IndexOptions, IndexSpec, IndexStats, OpenReport, Pair, Record, Taken,
    TakenSource,
};

/// The on-disk format this build writes. It also reads format 1, converting it on open.
pub const FORMAT_VERSION: u32 = 2;
