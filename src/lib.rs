//! xsearch: find images by describing them.
//!
//! xsearch embeds images and texts with CLIP (OpenAI's ResNet-50 in open_clip's layout) into one
//! space where the dot product of two L2-normalised embeddings measures how well they match, and
//! keeps image embeddings in an index that answers text, image and combined queries.
//!
//! This example runs as written against the small shapes model shipped in `fixtures/`:
//!
//! ```
//! use xsearch::{Engine, EngineConfig, Query};
//!
//! # let dir = tempfile::tempdir().unwrap();
//! # let photos = dir.path().join("photos");
//! # xsearch_shapes::write_dataset(&photos, 40, 3).unwrap();
//! # let model = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/models/shapes-tiny").to_string();
//! let engine = Engine::open(
//!     &EngineConfig { model, index: dir.path().join("index"), create: true, preload_text: false },
//!     None, // no download progress to report
//! )?;
//! let summary = engine.ingest(&[photos], &Default::default(), &())?;
//! assert_eq!(summary.added, 40);
//!
//! let hits = engine.search(&Query::text("a red circle"), 3, None)?;
//! assert_eq!(hits.len(), 3);
//! assert!(hits[0].score >= hits[2].score);
//! # Ok::<(), xsearch::Error>(())
//! ```
//!
//! Glossary:
//! - *tower*: one half of CLIP, the image encoder (a ResNet) or the text encoder (a transformer);
//! - *embedding*: an L2-normalised vector in the space both towers share;
//! - *model directory*: `open_clip_config.json` + `open_clip_model.safetensors`, as on the hub.

mod clip;
pub mod decode;
mod engine;
mod error;
pub mod ingest;
pub mod kernels;
pub mod model;
pub mod query;
mod tag;

pub use clip::{Clip, Embedding};
pub use engine::{Engine, EngineConfig, ImageHit, TextHit};
pub use error::Error;
pub use query::{Query, Term};
pub use tag::{tag, LabelScore};
