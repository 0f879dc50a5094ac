//! `Engine`: a model and an index together, the library's front door.

use std::path::{Path, PathBuf};

use image::DynamicImage;
use xsearch_index::{Entry, Index, IndexSpec, KeyFilter, OpenReport};

use crate::decode::DecodeError;
use crate::ingest::pipeline::{ingest, IngestObserver, IngestOptions, IngestSummary};
use crate::keys::key_path;
use crate::model::hub::{DownloadProgress, DEFAULT_REPO};
use crate::tag::LabelScore;
use crate::{Clip, Embedding, Error, Query, SearchOptions};

/// Whether [`Engine::open`] may create the index.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OpenMode {
    /// Open an existing index; a missing one is [`Error::NoIndex`] (what a search wants).
    #[default]
    Existing,
    /// Create the index if its directory does not exist yet (what an ingest wants).
    Create,
}

/// How to open an [`Engine`]: [`EngineOptions::new`] (or `default()`, the default hub model)
/// refined with setters. `#[non_exhaustive]`, so options added later do not break callers.
///
/// Without [`EngineOptions::index`] the engine holds the model alone: it embeds and tags, and
/// its index methods answer [`Error::NoIndexOpened`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EngineOptions {
    /// A model directory or a Hugging Face hub id (see [`crate::model::ModelFiles::resolve`]).
    pub model: String,
    /// The index directory, if any.
    pub index: Option<PathBuf>,
    /// Whether a missing index is created.
    pub mode: OpenMode,
    /// Load the text tower while the index opens, on another thread, instead of at the first
    /// text (what a fresh process answering a text query wants: both take a while).
    pub preload_text: bool,
    /// How [`Engine::ingest`] walks and batches.
    pub ingest: IngestOptions,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self::new(DEFAULT_REPO)
    }
}

impl EngineOptions {
    /// The model `model` (a directory or a hub id), no index yet.
    pub fn new(model: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            index: None,
            mode: OpenMode::default(),
            preload_text: false,
            ingest: IngestOptions::default(),
        }
    }

    /// The index directory.
    pub fn index(mut self, dir: impl Into<PathBuf>) -> Self {
        self.index = Some(dir.into());
        self
    }

    /// Whether a missing index is created.
    pub fn mode(mut self, mode: OpenMode) -> Self {
        self.mode = mode;
        self
    }

    /// Load the text tower while the index opens.
    pub fn preload_text(mut self, preload: bool) -> Self {
        self.preload_text = preload;
        self
    }

    /// How [`Engine::ingest`] walks and batches.
    pub fn ingest(mut self, options: IngestOptions) -> Self {
        self.ingest = options;
        self
    }
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

/// What an index holds, from [`Engine::status`]; asking loads no tower.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Status {
    /// The index directory.
    pub index: PathBuf,
    /// The model as the engine was opened with it (directory or hub id).
    pub model: String,
    /// The fingerprint of the model the index was built with.
    pub fingerprint: String,
    /// Width of the embeddings.
    pub dim: usize,
    /// Images indexed.
    pub images: usize,
    /// Texts in the text collection.
    pub texts: usize,
    /// Files and folders that could not be indexed, with why.
    pub failures: Vec<Failure>,
}

/// A file or folder that could not be indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The file or folder.
    pub path: PathBuf,
    /// Why, in words.
    pub reason: String,
}

/// A model and the index built with it. `Send + Sync`: one engine serves many threads at once.
pub struct Engine {
    clip: Clip,
    index: Option<Index>,
    options: EngineOptions,
}

// The server and the examples share one engine between threads: keep it so.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Engine>();
};

impl Engine {
    /// Resolves the model and, if the options name one, opens the index, checking they belong
    /// together. `progress` hears about a model download, if one is needed.
    pub fn open(
        options: &EngineOptions,
        progress: Option<&dyn DownloadProgress>,
    ) -> Result<Self, Error> {
        if let Some(dir) = &options.index {
            if options.mode == OpenMode::Existing && !dir.exists() {
                return Err(Error::NoIndex { path: dir.clone() });
            }
        }
        let clip = Clip::open(&options.model, progress)?;
        let index = match &options.index {
            None if options.preload_text => clip.preload_text().map(|()| None)?,
            None => None,
            Some(dir) if !options.preload_text => Some(open_index(&clip, dir)?),
            Some(dir) => Some(std::thread::scope(|s| {
                let text = s.spawn(|| clip.preload_text());
                let index = open_index(&clip, dir);
                let text = text
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                text.and(index)
            })?),
        };
        Ok(Self {
            clip,
            index,
            options: options.clone(),
        })
    }

    fn index(&self) -> Result<&Index, Error> {
        self.index.as_ref().ok_or(Error::NoIndexOpened)
    }

    /// The index directory, if the engine has an index.
    pub fn index_dir(&self) -> Option<&Path> {
        self.index.as_ref().map(Index::path)
    }

    /// How the index's graphs were obtained at open (loaded, caught up, rebuilt, converted).
    pub fn open_report(&self) -> Option<&OpenReport> {
        self.index.as_ref().map(Index::open_report)
    }

    /// Adds or refreshes the images under `roots` (folders or files), walking and batching as
    /// the engine's [`IngestOptions`] say; `observer` hears about progress and skipped files.
    ///
    /// Incremental: a file with the same size and modification time as indexed is not read
    /// again, and a file whose content is indexed under another path reuses its vector.
    pub fn ingest(
        &self,
        roots: &[PathBuf],
        observer: &dyn IngestObserver,
    ) -> Result<IngestSummary, Error> {
        ingest(
            &self.clip,
            self.index()?,
            roots,
            &self.options.ingest,
            observer,
        )
    }

    /// The images closest to `query`, best first, as many and as filtered as `options` say.
    pub fn search(&self, query: &Query, options: &SearchOptions) -> Result<Vec<ImageHit>, Error> {
        let index = self.index()?;
        let vector = query.embed(&self.clip)?;
        let filter = options.image_filter();
        let accept = |key: &[u8]| {
            filter
                .as_ref()
                .is_some_and(|filter| filter.accepts(&key_path(key)))
        };
        let key_filter: Option<KeyFilter<'_>> = filter.is_some().then_some(&accept);
        let hits = index.images().search(&vector, options.k, key_filter)?;
        Ok(hits
            .into_iter()
            .map(|hit| ImageHit {
                path: key_path(&hit.key),
                score: hit.score,
            })
            .collect())
    }

    /// The texts of the text collection closest to `query` (image→text when the query is an
    /// image), `options.k` at most; the image filters do not apply to texts.
    pub fn search_texts(
        &self,
        query: &Query,
        options: &SearchOptions,
    ) -> Result<Vec<TextHit>, Error> {
        let index = self.index()?;
        let vector = query.embed(&self.clip)?;
        let hits = index.texts().search(&vector, options.k, None)?;
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
        let index = self.index()?;
        let mut new: Vec<&str> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for text in texts {
            let text = text.trim();
            if !text.is_empty()
                && seen.insert(text)
                && index.texts().get(text.as_bytes())?.is_none()
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
            index.texts().upsert_batch(entries)?;
        }
        index.checkpoint()?;
        Ok(new.len())
    }

    /// How many images are indexed.
    pub fn image_count(&self) -> Result<usize, Error> {
        Ok(self.index()?.images().len())
    }

    /// How many texts the text collection holds.
    pub fn text_count(&self) -> Result<usize, Error> {
        Ok(self.index()?.texts().len())
    }

    /// Counts, model and failures of the index. Loads no tower.
    pub fn status(&self) -> Result<Status, Error> {
        let index = self.index()?;
        let failures = index
            .failures()?
            .into_iter()
            .map(|(key, failure)| Failure {
                path: key_path(&key),
                reason: failure.reason,
            })
            .collect();
        Ok(Status {
            index: index.path().to_path_buf(),
            model: self.options.model.clone(),
            fingerprint: index.spec().model.clone(),
            dim: index.spec().dim,
            images: index.images().len(),
            texts: index.texts().len(),
            failures,
        })
    }

    /// Embeds texts, in one batch.
    pub fn embed_texts(&self, texts: &[&str]) -> Result<Vec<Embedding>, Error> {
        self.clip.embed_texts(texts)
    }

    /// Decodes and embeds image files; see [`Clip::embed_files`]. A file that cannot be
    /// decoded gets its own error and does not stop the others.
    pub fn embed_files(
        &self,
        paths: &[PathBuf],
    ) -> Result<Vec<Result<Embedding, DecodeError>>, Error> {
        self.clip.embed_files(paths)
    }

    /// Ranks `labels` for each image embedding, best first; see [`crate::tag`].
    pub fn tag(
        &self,
        images: &[Embedding],
        labels: &[&str],
    ) -> Result<Vec<Vec<LabelScore>>, Error> {
        crate::tag(&self.clip, images, labels)
    }

    /// Decodes an image as the engine sees it (limits, EXIF orientation, a large JPEG reduced
    /// to twice the model's input), for a preview. Loads no tower.
    pub fn decode_preview(&self, path: &Path) -> Result<DynamicImage, DecodeError> {
        self.clip.decode(path)
    }

    /// Writes what the index holds in memory to disk. A process about to exit can flush and
    /// then leak the engine rather than drop it: freeing a large graph node by node takes
    /// longer than a whole query, and the exit frees it at once.
    pub fn flush(&self) -> Result<(), Error> {
        if let Some(index) = &self.index {
            index.flush()?;
        }
        Ok(())
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
