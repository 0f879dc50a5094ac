//! The public types of the index: what callers pass in and get back, and the options. A leaf
//! module: it imports nothing from the rest of the crate, so every other module can use it.

use std::fmt;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// The id of a stored vector.
pub type Id = u64;

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
    /// A filtered search scores exactly, instead of walking a graph, when the graph (or the
    /// whole collection) holds at most `filter_scan_factor × ef_search` records the filter
    /// accepts: a walk under a filter that a fraction `s` of the records pass visits about
    /// `1/s` times the nodes, while a scan costs one dot product per accepted record. The
    /// default, 64 (12 288 records at ef 192), sits below where the two cost the same on 100k
    /// clustered 1024-d vectors in segments of 50k (`BENCHMARKS.md`, "Filtered search": at
    /// 10% the scan answered 17× faster, at 50% the walk 2×).
    pub filter_scan_factor: usize,
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
            filter_scan_factor: 64,
            compact_fraction: 0.2,
            segment_points: 50_000,
            hnsw: HnswParams::default(),
        }
    }
}

/// Construction parameters of the graph, fixed when an index is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HnswParams {
    /// Neighbours kept per node and layer (hnswlib's `M`), at most 256.
    pub max_connections: usize,
    /// Candidate list size while inserting (hnswlib's `ef_construction`).
    pub ef_construction: usize,
}

/// Measured on 100k clustered 1024-d vectors (`BENCHMARKS.md`, "HNSW"): in segments of 50k,
/// `ef_construction` 150 builds in 0.78x the time of 200 and reached recall@10 0.95 at the
/// same search beam, with more queries/s (sparser neighbour lists cost less per step).
impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            max_connections: 16,
            ef_construction: 150,
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
    /// The format version the index was in, when opening converted it to [`FORMAT_VERSION`](crate::FORMAT_VERSION).
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

/// What identifies a file's content, so unchanged files are skipped and duplicates reuse a vector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStamp {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// Content hash; any algorithm, as long as the caller always uses the same one.
    pub hash: Vec<u8>,
}

/// The stored record of one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The id of the record's vector; a new one on every upsert, never reused.
    pub id: Id,
    /// Present for files, absent for texts.
    pub file: Option<FileStamp>,
}

/// One key and its vector, for [`Collection::upsert_batch`](crate::Collection::upsert_batch).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Path bytes for images, UTF-8 text for texts.
    pub key: Vec<u8>,
    /// The file's stamp; its hash becomes findable through [`Collection::lookup_hash`](crate::Collection::lookup_hash).
    pub file: Option<FileStamp>,
    /// The embedding, L2-normalised by the caller (scores are dot products).
    pub vector: Vec<f32>,
    /// What the image says about itself; stored in the same transaction as the vector, under
    /// the new id. `None` for texts, and for images whose metadata was not read.
    pub meta: Option<ImageMeta>,
}

/// What an image file says about itself, captured at ingest: when it was taken, with what,
/// its size and where. Every field may be unknown; a file with no metadata at all still has
/// one (its modification time as [`TakenSource::Mtime`]).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ImageMeta {
    /// Capture time.
    pub taken: Option<Taken>,
    /// Camera make and model, trimmed, the make not repeated: "Apple iPhone 12".
    pub camera: Option<String>,
    /// Pixel width as stored: as the file's header states it, before EXIF orientation
    /// (0 = unknown).
    pub width: u32,
    /// Pixel height as stored (0 = unknown).
    pub height: u32,
    /// Latitude and longitude in degrees (north and east positive). Kept in the local index
    /// only; nothing serves it unless asked.
    pub gps: Option<(f64, f64)>,
}

/// When a picture was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Taken {
    /// Seconds since the Unix epoch (UTC).
    pub unix: i64,
    /// The zone's offset from UTC in minutes, when the file says it. An EXIF time without
    /// an offset is a wall-clock time: `unix` then reads it in the ingesting machine's zone,
    /// and this is `None`.
    pub offset_minutes: Option<i16>,
    /// Where the time comes from.
    pub source: TakenSource,
}

/// Where a [`Taken`] time comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TakenSource {
    /// The file's EXIF capture date (`DateTimeOriginal`, else `DateTimeDigitized`, else
    /// `DateTime`).
    Exif,
    /// The file's modification time: it carries no capture date.
    Mtime,
}

/// One search result.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// The key of the record (path bytes or text).
    pub key: Vec<u8>,
    /// The record's id.
    pub id: Id,
    /// Dot product with the query.
    pub score: f32,
}

/// A predicate on ids; [`Collection::similar_pairs`](crate::Collection::similar_pairs) pairs
/// only records it accepts.
pub type IdFilter<'a> = &'a (dyn Fn(Id) -> bool + Sync);

/// Two records whose vectors are similar, from
/// [`Collection::similar_pairs`](crate::Collection::similar_pairs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pair {
    /// The lower id.
    pub a: Id,
    /// The higher id.
    pub b: Id,
    /// Dot product of their vectors.
    pub score: f32,
}

impl Pair {
    /// The pair of `x` and `y`, in either order.
    pub fn new(x: Id, y: Id, score: f32) -> Pair {
        Pair {
            a: x.min(y),
            b: x.max(y),
            score,
        }
    }
}

/// How the graphs of a collection came to be at open time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphStatus {
    /// The collection has no segment; there is nothing to load.
    Empty,
    /// Every segment loaded as it was written, and together they hold every stored vector.
    Loaded,
    /// Vectors committed after the last checkpoint (by a run that was stopped or killed) were
    /// in no segment: they were inserted into new ones.
    Updated {
        /// Vectors inserted.
        inserted: usize,
    },
    /// Segments were unusable (missing, damaged, or an unreadable list of them): the vectors
    /// they held, and any other vector no segment held, were inserted into new ones.
    Rebuilt {
        /// Why, for the first unusable segment.
        reason: String,
        /// Vectors inserted.
        inserted: usize,
    },
}

impl GraphStatus {
    /// Whether opening had to repair the graph (worth telling the user on stderr).
    pub fn is_repair(&self) -> bool {
        matches!(
            self,
            GraphStatus::Updated { .. } | GraphStatus::Rebuilt { .. }
        )
    }
}

impl fmt::Display for GraphStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GraphStatus::Empty => write!(f, "empty"),
            GraphStatus::Loaded => write!(f, "graph loaded from its segments"),
            GraphStatus::Updated { inserted } => write!(
                f,
                "{inserted} vectors committed after the last checkpoint (an interrupted run?) \
                 were added to the graph"
            ),
            GraphStatus::Rebuilt { reason, inserted } => {
                write!(
                    f,
                    "graph rebuilt from the store ({inserted} vectors): {reason}"
                )
            }
        }
    }
}

/// Counts describing a collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionStats {
    /// Live records.
    pub live: usize,
    /// Points in the graphs (sealed segments and the tail), tombstones included.
    pub graph_points: usize,
    /// Graph points whose record was removed or replaced.
    pub tombstones: usize,
    /// Data generation: bumped by every committed batch or removal.
    pub generation: u64,
    /// Sealed segments, each an HNSW graph in its own file.
    pub segments: usize,
    /// Points in the tail, the graph still in memory (sealed at the next checkpoint).
    pub unsealed: usize,
}

impl fmt::Display for IndexSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "model '{}' (dim {})", self.model, self.dim)
    }
}

/// What an index is, read from its view without opening it ([`crate::inspect`],
/// [`crate::Reader::info`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexInfo {
    /// The on-disk format version.
    pub format: u32,
    /// The model fingerprint the index was built with ([`IndexSpec::model`]).
    pub model_fingerprint: String,
    /// Where the model came from (a hub id or an absolute directory), as recorded by
    /// [`Index::set_model_source`](crate::Index::set_model_source); `None` for an index that
    /// never recorded one. Only the fingerprint decides whether a model matches.
    pub model_source: Option<String>,
    /// Embedding dimension.
    pub dim: usize,
    /// The graph parameters it was created with.
    pub hnsw: HnswParams,
    /// Bumped by every publish of the view: what a reader sees changes only with it.
    pub generation: u64,
    /// When the view was published (the writer's last checkpoint).
    pub published: SystemTime,
}
