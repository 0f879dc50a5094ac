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
//!     Entry { key: b"/photos/sea.jpg".to_vec(), file: None, vector: vec![1.0, 0.0] },
//!     Entry { key: b"/photos/cat.jpg".to_vec(), file: None, vector: vec![0.0, 1.0] },
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
//! - **Index**: a directory holding a sled store (`store/`) and graph segments (`graph/`).
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
//! - **Tombstone**: a graph point whose record was removed or replaced. Graphs cannot delete,
//!   so searches skip them; checkpoints rebuild a segment when they exceed
//!   [`IndexOptions::compact_fraction`] of it, and merge small segments.
//! - **Generation**: a counter bumped by every committed batch or removal, for callers that
//!   cache results.
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

mod collection;
mod error;
mod exact;
mod graph;
mod legacy;
mod merge;
mod segment;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sled::{Db, Tree};

pub use collection::{
    Collection, CollectionStats, Entry, FileStamp, GraphStatus, Hit, KeyFilter, Record,
};
pub use error::IndexError;
pub use graph::{ClampedDot, HnswParams};

use collection::{decode, encode, Context, IMAGES, TEXTS};

/// The id of a stored vector.
pub type Id = u64;

/// The on-disk format this build writes. It also reads format 1, converting it on open.
pub const FORMAT_VERSION: u32 = 2;

/// What an index is for: vectors of one model, of one dimension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpec {
    /// Model fingerprint (e.g. the hub id and weights hash); compared as an opaque string.
    pub model: String,
    /// Embedding dimension.
    pub dim: usize,
}

/// Tuning knobs; [`Default`] is what xsearch uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IndexOptions {
    /// Collections with at most this many records are searched exactly.
    pub exact_threshold: usize,
    /// Candidate list size of HNSW searches (at least the number of results fetched). The
    /// default, 192, reached recall@10 0.95 on 100k clustered 1024-d vectors in segments of
    /// 50k (64 reached 0.75), at about 5 ms per query on one core: a person looking for photos
    /// wants the best ten, and the milliseconds do not show.
    pub ef_search: usize,
    /// Rebuild a segment at checkpoint when tombstones exceed this fraction of its points.
    pub compact_fraction: f64,
    /// Points per segment: the tail is sealed when it has this many, and merges build no
    /// larger segment. It bounds a writer's memory (the tail's vectors, hnsw_rs's links at
    /// about 2.2 KB per point, sled's cache: a writer of 50k 1024-d vectors peaked at 0.41 GB).
    /// Searches ask every segment, but a smaller graph reaches the same recall with a smaller
    /// beam: on 100k vectors, two segments of 50k answered as fast as one of 100k at
    /// recall@10 0.95, and built in 0.8x the time.
    pub segment_points: usize,
    /// Graph parameters for a new index; an existing index keeps the ones it was created with.
    pub hnsw: HnswParams,
}

impl Default for IndexOptions {
    fn default() -> Self {
        IndexOptions {
            exact_threshold: 5_000,
            ef_search: 192,
            compact_fraction: 0.2,
            segment_points: 50_000,
            hnsw: HnswParams::default(),
        }
    }
}

/// How each collection's graph was obtained at open time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenReport {
    /// The image collection.
    pub images: GraphStatus,
    /// The text collection.
    pub texts: GraphStatus,
    /// The format version the index was in, when opening converted it to [`FORMAT_VERSION`].
    pub converted_from: Option<u32>,
}

/// Why a file could not be indexed, and when that was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The error, as the user should read it.
    pub reason: String,
    /// Seconds since the Unix epoch.
    pub time_s: u64,
}

/// Counts for `xsearch status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexStats {
    /// The image collection.
    pub images: CollectionStats,
    /// The text collection.
    pub texts: CollectionStats,
    /// Files whose last attempt failed.
    pub failures: usize,
}

/// An open index directory. Holding it locks the directory against other processes.
pub struct Index {
    path: PathBuf,
    spec: IndexSpec,
    db: Db,
    failures: Tree,
    images: Collection,
    texts: Collection,
    report: OpenReport,
}

/// sled's page cache. Its default (1 GiB) lets the cache grow with the store, so an ingest's
/// memory would grow with the library; searches run on the segments, and exact scans (at most
/// `exact_threshold` vectors, 20 MB at 1024-d) stream through, so 64 MiB is plenty.
const STORE_CACHE_BYTES: u64 = 64 << 20;

/// How long opening waits for the store's lock before reporting [`IndexError::Locked`]. sled
/// releases the lock from a background thread a moment after its last handle is dropped, so
/// an index closed by this process can look locked for a few milliseconds; another process
/// holding it still gets the error well within a second.
const LOCK_WAIT: Duration = Duration::from_millis(300);

fn open_store(path: &Path) -> Result<Db, IndexError> {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        let opened = sled::Config::new()
            .path(path.join("store"))
            .cache_capacity(STORE_CACHE_BYTES)
            .open()
            .map_err(|e| IndexError::store(path, e));
        match opened {
            Err(IndexError::Locked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            opened => return opened,
        }
    }
}

impl Index {
    /// Opens (or creates) the index in `dir` with default options.
    pub fn open(dir: impl AsRef<Path>, spec: &IndexSpec) -> Result<Index, IndexError> {
        Index::open_with(dir, spec, IndexOptions::default())
    }

    /// Opens (or creates) the index in `dir`.
    ///
    /// Fails with [`IndexError::Locked`] if another process has it open,
    /// [`IndexError::ModelMismatch`] if it was built for another model or dimension, and
    /// [`IndexError::Incompatible`] if its format version is neither [`FORMAT_VERSION`] nor
    /// an older one this build converts. The segments are mapped, or repaired: see
    /// [`Index::open_report`].
    pub fn open_with(
        dir: impl AsRef<Path>,
        spec: &IndexSpec,
        options: IndexOptions,
    ) -> Result<Index, IndexError> {
        let path = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&path).map_err(|e| IndexError::io(&path, e))?;
        let db = open_store(&path)?;
        let tree = |name: &str| db.open_tree(name).map_err(|e| IndexError::store(&path, e));
        let meta = tree("meta")?;
        let failures = tree("failures")?;
        let (params, found) = check_meta(&path, &meta, spec, options.hnsw)?;
        let converting = found != FORMAT_VERSION;
        let ctx = |names| {
            Collection::open(
                Context {
                    db: &db,
                    meta: &meta,
                    path: &path,
                    graph_dir: path.join("graph"),
                    dim: spec.dim,
                    options,
                    params,
                    converting,
                },
                names,
            )
        };
        let (images, images_status) = ctx(IMAGES)?;
        let (texts, texts_status) = ctx(TEXTS)?;
        if converting {
            finish_conversion(&path, &meta, [&images, &texts])?;
        }
        Ok(Index {
            path,
            spec: spec.clone(),
            db,
            failures,
            images,
            texts,
            report: OpenReport {
                images: images_status,
                texts: texts_status,
                converted_from: converting.then_some(found),
            },
        })
    }

    /// The image collection (keys: path bytes).
    pub fn images(&self) -> &Collection {
        &self.images
    }

    /// The text collection (keys: UTF-8 texts).
    pub fn texts(&self) -> &Collection {
        &self.texts
    }

    /// How the graphs were obtained at open; repairs are worth a line on stderr.
    pub fn open_report(&self) -> &OpenReport {
        &self.report
    }

    /// The model and dimension of this index.
    pub fn spec(&self) -> &IndexSpec {
        &self.spec
    }

    /// The index directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Remembers that `key` (a path) could not be indexed. Durable at the next commit,
    /// checkpoint or close.
    pub fn record_failure(&self, key: &[u8], reason: &str) -> Result<(), IndexError> {
        let time_s = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let failure = Failure {
            reason: reason.to_string(),
            time_s,
        };
        self.failures
            .insert(key, encode(&failure))
            .map_err(|e| IndexError::store(&self.path, e))?;
        Ok(())
    }

    /// Forgets the failure of `key`; returns whether there was one.
    pub fn clear_failure(&self, key: &[u8]) -> Result<bool, IndexError> {
        let old = self
            .failures
            .remove(key)
            .map_err(|e| IndexError::store(&self.path, e))?;
        Ok(old.is_some())
    }

    /// Every recorded failure, in key order.
    pub fn failures(&self) -> Result<Vec<(Vec<u8>, Failure)>, IndexError> {
        self.failures
            .iter()
            .map(|item| {
                let (key, bytes) = item.map_err(|e| IndexError::store(&self.path, e))?;
                let failure = decode(&bytes).map_err(|e| IndexError::Corrupt {
                    path: self.path.clone(),
                    what: format!("failures: {e}"),
                })?;
                Ok((key.to_vec(), failure))
            })
            .collect()
    }

    /// Counts of both collections and of failures.
    pub fn stats(&self) -> Result<IndexStats, IndexError> {
        Ok(IndexStats {
            images: self.images.stats()?,
            texts: self.texts.stats()?,
            failures: self.failures.len(),
        })
    }

    /// Seals the vectors added since the last checkpoint into segments, merges small segments
    /// and compacts those with too many tombstones, and flushes everything. Call it at the end
    /// of an ingest run.
    pub fn checkpoint(&self) -> Result<(), IndexError> {
        self.images.checkpoint()?;
        self.texts.checkpoint()?;
        self.flush()
    }

    /// Makes everything written so far durable, without sealing the tails.
    pub fn flush(&self) -> Result<(), IndexError> {
        self.db
            .flush()
            .map_err(|e| IndexError::store(&self.path, e))?;
        Ok(())
    }

    /// Checkpoints and releases the directory.
    pub fn close(self) -> Result<(), IndexError> {
        self.checkpoint()
    }
}

/// Meta keys shared by both collections.
const META_FORMAT: &str = "format_version";
const META_MODEL: &str = "model";
const META_DIM: &str = "dim";
const META_HNSW: &str = "hnsw";

/// The oldest format version that opening converts (to [`FORMAT_VERSION`]).
const OLDEST_CONVERTIBLE: u32 = 1;

/// Initialises meta for a new index, or checks an existing one against `spec`; returns the
/// graph parameters the index was created with, and the format version it is in.
fn check_meta(
    path: &Path,
    meta: &Tree,
    spec: &IndexSpec,
    hnsw: HnswParams,
) -> Result<(HnswParams, u32), IndexError> {
    let store = |e| IndexError::store(path, e);
    let corrupt = |what: String| IndexError::Corrupt {
        path: path.to_path_buf(),
        what,
    };
    let Some(version) = meta.get(META_FORMAT).map_err(store)? else {
        meta.insert(META_MODEL, spec.model.as_bytes())
            .map_err(store)?;
        meta.insert(META_DIM, &(spec.dim as u64).to_be_bytes())
            .map_err(store)?;
        meta.insert(META_HNSW, encode(&hnsw)).map_err(store)?;
        // The version goes last: an index without it is one whose creation did not finish.
        meta.insert(META_FORMAT, &FORMAT_VERSION.to_be_bytes())
            .map_err(store)?;
        meta.flush().map_err(store)?;
        return Ok((hnsw, FORMAT_VERSION));
    };
    let found = <[u8; 4]>::try_from(version.as_ref())
        .map(u32::from_be_bytes)
        .map_err(|_| corrupt("meta: format version".into()))?;
    if !(OLDEST_CONVERTIBLE..=FORMAT_VERSION).contains(&found) {
        return Err(IndexError::Incompatible {
            path: path.to_path_buf(),
            found,
            supported: FORMAT_VERSION,
        });
    }
    let model = meta.get(META_MODEL).map_err(store)?.unwrap_or_default();
    let dim = meta.get(META_DIM).map_err(store)?.unwrap_or_default();
    let index = IndexSpec {
        model: String::from_utf8_lossy(&model).into_owned(),
        dim: <[u8; 8]>::try_from(dim.as_ref())
            .map(|b| u64::from_be_bytes(b) as usize)
            .map_err(|_| corrupt("meta: dim".into()))?,
    };
    if index != *spec {
        return Err(IndexError::ModelMismatch {
            path: path.to_path_buf(),
            index,
            requested: spec.clone(),
        });
    }
    let params = meta.get(META_HNSW).map_err(store)?.unwrap_or_default();
    let params = decode(&params).map_err(|e| corrupt(format!("meta: hnsw parameters: {e}")))?;
    Ok((params, found))
}

/// Ends a conversion once both collections have stored their segment lists: drops the old
/// format's meta keys and records the new version, atomically. A conversion cut short runs
/// again on the next open, and picks up the segment lists already stored.
fn finish_conversion(
    path: &Path,
    meta: &Tree,
    collections: [&Collection; 2],
) -> Result<(), IndexError> {
    let mut batch = sled::Batch::default();
    for collection in collections {
        for key in legacy::KEYS {
            batch.remove(collection.meta_key(key));
        }
    }
    batch.insert(META_FORMAT, &FORMAT_VERSION.to_be_bytes());
    meta.apply_batch(batch)
        .and_then(|()| meta.flush().map(drop))
        .map_err(|e| IndexError::store(path, e))
}

// The CLI shares one index between its embedding and search threads.
const _: fn() = || {
    fn shareable<T: Send + Sync>() {}
    shareable::<Index>();
};
