//! xsearch: find images by describing them.
//!
//! xsearch embeds images and texts with CLIP (OpenAI's ResNet-50 in open_clip's layout) into one
//! space where the dot product of two L2-normalised embeddings measures how well they match, and
//! keeps image embeddings in an index that answers text, image and combined queries.
//!
//! This example runs as written against the small shapes model shipped in `fixtures/`:
//!
//! ```
//! use xsearch::{Engine, EngineOptions, OpenMode, Query, SearchOptions};
//!
//! # let dir = tempfile::tempdir().unwrap();
//! # let photos = dir.path().join("photos");
//! # xsearch_shapes::write_dataset(&photos, 40, 3).unwrap();
//! # let model = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/models/shapes-tiny");
//! let options = EngineOptions::new(model)
//!     .index(dir.path().join("index"))
//!     .mode(OpenMode::Create);
//! let engine = Engine::open(&options, None)?; // None: no download progress to report
//! let summary = engine.ingest(&[photos], &())?; // (): no progress callback
//! assert_eq!(summary.added, 40);
//!
//! let hits = engine.search(&Query::text("a red circle"), &SearchOptions::new(3))?;
//! assert_eq!(hits.len(), 3);
//! assert!(hits[0].score >= hits[2].score);
//! # Ok::<(), xsearch::Error>(())
//! ```
//!
//! `examples/embed_engine.rs` embeds the engine as an application would: its own progress
//! callback, and searches from several threads on one engine.
//!
//! Glossary:
//! - *tower*: one half of CLIP, the image encoder (a ResNet) or the text encoder (a transformer);
//! - *embedding*: an L2-normalised vector in the space both towers share;
//! - *model directory*: `open_clip_config.json` + `open_clip_model.safetensors`, as on the hub.

mod clip;
pub mod decode;
mod dupes;
mod engine;
mod error;
mod id;
mod ingest;
pub mod kernels;
mod keys;
mod latest;
pub mod model;
pub mod query;
mod search;
mod tag;
mod taken;

pub use clip::{Clip, Embedding, DEFAULT_BATCH_SIZE, MAX_TEXT_CHARS};
pub use decode::DecodeError;
pub use dupes::{DupGroup, DupKind, DupesOptions, DEFAULT_THRESHOLD};
pub use engine::{Engine, EngineOptions, Failure, ImageHit, OpenMode, Status, TextHit};
pub use error::Error;
pub use id::{ImageId, ParseIdError};
pub use ingest::pipeline::{IngestEvent, IngestObserver, IngestOptions, IngestSummary};
pub use ingest::records::{FileRecord, ModelInfo};
pub use ingest::walk::RawPairs;
pub use ingest::watch::{Pass, WatchEvent, WatchObserver, WatchOptions};
pub use model::hub::DownloadProgress;
pub use model::Error as ModelError;
pub use query::{ParseError, Query, Term};
pub use search::{SearchOptions, Sort};
pub use tag::{tag, LabelScore};
pub use taken::format_taken;
/// The index's format version, and what opening it found (a conversion, repairs).
pub use xsearch_index::{
    GraphStatus, IndexError, OpenReport, FORMAT_VERSION as INDEX_FORMAT_VERSION,
};
/// What an image says about itself, captured at ingest ([`Engine::image_meta`],
/// [`ImageHit::taken`]).
pub use xsearch_index::{ImageMeta, Taken, TakenSource};
/// Where an index lives: a directory or a Milvus collection ([`EngineOptions::index`]).
pub use xsearch_index::{Location, MilvusUrl};
