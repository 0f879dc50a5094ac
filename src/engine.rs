//! `Engine`: a model and an index together, the library's front door.

use std::path::{Path, PathBuf};

use xsearch_index::{Entry, Index, IndexSpec, KeyFilter, OpenReport};

use crate::ingest::pipeline::{
    ingest, key_path, path_key, IngestObserver, IngestOptions, IngestSummary,
};
use crate::model::hub::DownloadProgress;
use crate::{Clip, Error, Query};

/// Where the model and the index are.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// A model directory or a Hugging Face hub id (see [`crate::model::ModelFiles::resolve`]).
    pub model: String,
    /// The index directory.
    pub index: PathBuf,
    /// Create the index if the directory does not exist yet (what `xsearch index` does);
    /// otherwise a missing index is [`Error::NoIndex`].
    pub create: bool,
    /// Load the text tower while the index opens, on another thread, instead of at the first
    /// text (what a fresh `xsearch query "..."` process wants: both take a while).
    pub preload_text: bool,
}

/// An image found by a search.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageHit {
    /// Absolute path of the image.
    pub path: PathBuf,
    /// Cosine similarity with the query.
    pub score: f32,
}

/// A text found by a search of the text collection.
#[derive(Debug, Clone, PartialEq)]
pub struct TextHit {
    /// The text.
    pub text: String,
    /// Cosine similarity with the query.
    pub score: f32,
}

/// A model and the index built with it.
pub struct Engine {
    clip: Clip,
    index: Index,
}

impl Engine {
    /// Resolves the model and opens the index, checking they belong together.
    pub fn open(
        config: &EngineConfig,
        progress: Option<&dyn DownloadProgress>,
    ) -> Result<Self, Error> {
        if !config.create && !config.index.exists() {
            return Err(Error::NoIndex {
                path: config.index.clone(),
            });
        }
        let clip = Clip::open(&config.model, progress)?;
        if !config.preload_text {
            return Self::with_clip(clip, &config.index);
        }
        let (index, text) = std::thread::scope(|s| {
            let text = s.spawn(|| clip.preload_text());
            let index = open_index(&clip, &config.index);
            let text = text
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (index, text)
        });
        let index = index?;
        text?;
        Ok(Self { clip, index })
    }

    /// Opens (or creates) the index at `dir` for an already opened model.
    pub fn with_clip(clip: Clip, dir: &Path) -> Result<Self, Error> {
        let index = open_index(&clip, dir)?;
        Ok(Self { clip, index })
    }

    /// The model.
    pub fn clip(&self) -> &Clip {
        &self.clip
    }

    /// The index.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// How the index's graphs were obtained at open (loaded, caught up, rebuilt).
    pub fn open_report(&self) -> &OpenReport {
        self.index.open_report()
    }

    /// Adds or refreshes the images under `roots`; see [`crate::ingest::pipeline`].
    pub fn ingest(
        &self,
        roots: &[PathBuf],
        options: &IngestOptions,
        observer: &dyn IngestObserver,
    ) -> Result<IngestSummary, Error> {
        ingest(&self.clip, &self.index, roots, options, observer)
    }

    /// The `k` images closest to `query`, best first, optionally only those under `within`.
    pub fn search(
        &self,
        query: &Query,
        k: usize,
        within: Option<&Path>,
    ) -> Result<Vec<ImageHit>, Error> {
        let vector = query.embed(&self.clip)?;
        let within =
            within.map(|dir| std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf()));
        let accept = |key: &[u8]| {
            within
                .as_ref()
                .is_some_and(|dir| key_path(key).starts_with(dir))
        };
        let filter: Option<KeyFilter<'_>> = within.is_some().then_some(&accept);
        let hits = self.index.images().search(&vector, k, filter)?;
        Ok(hits
            .into_iter()
            .map(|hit| ImageHit {
                path: key_path(&hit.key),
                score: hit.score,
            })
            .collect())
    }

    /// The `k` texts of the text collection closest to `query` (image→text when the query is
    /// an image).
    pub fn search_texts(&self, query: &Query, k: usize) -> Result<Vec<TextHit>, Error> {
        let vector = query.embed(&self.clip)?;
        let hits = self.index.texts().search(&vector, k, None)?;
        Ok(hits
            .into_iter()
            .map(|hit| TextHit {
                text: String::from_utf8_lossy(&hit.key).into_owned(),
                score: hit.score,
            })
            .collect())
    }

    /// Adds texts to the text collection; texts already there are not embedded again.
    /// Returns how many were new.
    pub fn add_texts(&self, texts: &[String]) -> Result<usize, Error> {
        let mut new: Vec<&str> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for text in texts {
            let text = text.trim();
            if !text.is_empty()
                && seen.insert(text)
                && self.index.texts().get(text.as_bytes())?.is_none()
            {
                new.push(text);
            }
        }
        for chunk in new.chunks(TEXT_BATCH) {
            let vectors = self.clip.embed_texts(chunk)?;
            let entries = chunk
                .iter()
                .zip(vectors)
                .map(|(text, vector)| Entry {
                    key: text.as_bytes().to_vec(),
                    file: None,
                    vector,
                })
                .collect();
            self.index.texts().upsert_batch(entries)?;
        }
        self.index.checkpoint()?;
        Ok(new.len())
    }

    /// The index key of an image path (its bytes), for callers that look records up.
    pub fn image_key(path: &Path) -> Vec<u8> {
        path_key(path)
    }
}

/// Texts embedded together by [`Engine::add_texts`].
const TEXT_BATCH: usize = 64;

/// Opens (or creates) the index at `dir`, checking it was built with `clip`'s model.
fn open_index(clip: &Clip, dir: &Path) -> Result<Index, Error> {
    let spec = IndexSpec {
        model: clip.files().fingerprint(),
        dim: clip.embed_dim(),
    };
    Ok(Index::open(dir, &spec)?)
}
