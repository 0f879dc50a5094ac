//! xsearch: find images by describing them.
//!
//! xsearch embeds images and texts with CLIP (OpenAI's ResNet-50 in open_clip's layout) into one
//! space where the dot product of two L2-normalised embeddings measures how well they match.
//!
//! ```no_run
//! let clip = xsearch::Clip::open("timm/resnet50_clip.openai", None)?;
//! let texts = clip.embed_texts(&["a dog on a beach"])?;
//! assert_eq!(texts[0].len(), clip.embed_dim());
//! # Ok::<(), xsearch::Error>(())
//! ```
//!
//! Glossary:
//! - *tower*: one half of CLIP, the image encoder (a ResNet) or the text encoder (a transformer);
//! - *embedding*: an L2-normalised vector in the space both towers share;
//! - *model directory*: `open_clip_config.json` + `open_clip_model.safetensors`, as on the hub.

mod clip;
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
