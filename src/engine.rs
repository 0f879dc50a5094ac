//! `Engine`: a model and an index together, the library's front door.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use image::DynamicImage;
use xsearch_index::{
    open_remote, Backend, Entry, Hit, Id, IdFilter, IdSet, ImageMeta, Index, IndexError, IndexSpec,
    Location, Open, OpenReport, Pair, Part, Reader, Remote, Taken,
};

use crate::decode::DecodeError;
use crate::dupes::{self, DupSource, Image};
use crate::ingest::pipeline::{
    ingest, pending, IngestObserver, IngestOptions, IngestSummary, ReaderHeld, Scope,
};
use crate::ingest::records::{self, FileRecord, ModelInfo};
use crate::ingest::watch::{watch, WatchObserver, WatchOptions};
use crate::keys::key_path;
use crate::latest::Latest;
use crate::model::hub::{DownloadProgress, DEFAULT_REPO};
use crate::search::ImageFilter;
use crate::tag::LabelScore;
use crate::{Clip, DupGroup, DupesOptions, Embedding, Error, ImageId, Query, SearchOptions};

/// How [`Engine::open`] opens the index.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OpenMode {
    /// Open an existing index for reading and writing; a missing one is [`Error::NoIndex`].
    /// One writer at a time: another process holding the index is [`IndexError::Locked`].
    #[default]
    Existing,
    /// Create the index if its directory does not exist yet (what an ingest wants).
    Create,
    /// Open an existing index read-only (what a search wants): the state its writer last
    /// published, at its last checkpoint. Takes no lock and writes nothing, so any number of
    /// readers work while a writer ingests, and an index on read-only media can be searched.
    /// An index last written by an older xsearch has nothing published yet: it is upgraded
    /// once, by opening it as a writer, when its directory is writable.
    Read,
}

/// How to open an [`Engine`]: [`EngineOptions::new`] (or `default()`, the default hub model)
/// refined with setters. `#[non_exhaustive]`, so options added later do not break callers.
///
/// Without [`EngineOptions::index`] the engine holds the model alone: it embeds and tags, and
/// its index methods answer [`Error::NoIndexOpened`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EngineOptions {
    /// A model directory or a Hugging Face hub id (see [`crate::model::ModelFiles::resolve`]);
    /// `None`: the model the index records it was built with, else [`DEFAULT_REPO`].
    pub model: Option<String>,
    /// The index, if any: a directory, or a Milvus collection's URL
    /// (`milvus://HOST:PORT/COLLECTION`, `milvus+tls://…`; see [`Location`]).
    pub index: Option<PathBuf>,
    /// Without `model` or `index`: the index whose recorded model to take, without opening
    /// that index (to embed or tag in an index's space without holding it).
    pub model_of: Option<PathBuf>,
    /// Whether a missing index is created.
    pub mode: OpenMode,
    /// Load the text tower while the index opens, on another thread, instead of at the first
    /// text (what a fresh process answering a text query wants: both take a while).
    pub preload_text: bool,
    /// How [`Engine::ingest`] walks and batches.
    pub ingest: IngestOptions,
}

impl Default for EngineOptions {
    /// The model the index records (or the default hub model), no index yet.
    fn default() -> Self {
        Self {
            model: None,
            index: None,
            model_of: None,
            mode: OpenMode::default(),
            preload_text: false,
            ingest: IngestOptions::default(),
        }
    }
}

impl EngineOptions {
    /// The model `model` (a directory or a hub id), no index yet.
    pub fn new(model: impl Into<String>) -> Self {
        Self::default().model(model)
    }

    /// The model: a directory or a hub id.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// The index: a directory or a Milvus URL.
    pub fn index(mut self, dir: impl Into<PathBuf>) -> Self {
        self.index = Some(dir.into());
        self
    }

    /// Without a model named, the model the index at `location` records (the default hub
    /// model when there is none there), without opening that index.
    pub fn model_of(mut self, location: impl Into<PathBuf>) -> Self {
        self.model_of = Some(location.into());
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
    /// The image's id in the index (see [`ImageId`]).
    pub id: ImageId,
    /// Absolute path of the image.
    pub path: PathBuf,
    /// Cosine similarity with the query.
    pub score: f32,
    /// When the picture was taken (or its file modified, as [`Taken::source`] says); `None`
    /// for an image indexed before metadata was captured and not yet backfilled.
    pub taken: Option<Taken>,
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
    /// The index directory (or Milvus URL).
    pub index: PathBuf,
    /// Where the index's model came from (hub id or absolute directory), as the index
    /// records it; `None` for an index written before xsearch recorded it.
    pub model: Option<String>,
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
    index: Option<Store>,
    options: EngineOptions,
}

/// The index as the engine opened it: the writer, or a reader of what a writer published, or
/// an index on a server.
// One per engine, so the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Store {
    Write(Index),
    /// The reader of the newest view [`Engine::refresh`] found.
    Read(Latest),
    /// An index on a server (Milvus), which any number of processes read and write at once;
    /// `writable` unless opened with [`OpenMode::Read`].
    Remote {
        remote: Box<dyn Remote>,
        writable: bool,
    },
}

// The server and the examples share one engine between threads: keep it so.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Engine>();
};

impl Engine {
    /// Resolves the model and, if the options name one, opens the index, checking they belong
    /// together. Without a model in the options, the model the index records is used (the
    /// default hub model for a new index). `progress` hears about a model download, if one is
    /// needed.
    pub fn open(
        options: &EngineOptions,
        progress: Option<&dyn DownloadProgress>,
    ) -> Result<Self, Error> {
        if let Some(dir) = &options.index {
            let is_dir = matches!(Location::parse(dir)?, Location::Dir(_));
            if is_dir && options.mode != OpenMode::Create && !dir.exists() {
                return Err(Error::NoIndex { path: dir.clone() });
            }
        }
        let clip = open_model(options, progress)?;
        let index = match &options.index {
            None if options.preload_text => clip.preload_text().map(|()| None)?,
            None => None,
            Some(dir) if !options.preload_text => Some(Store::open(&clip, dir, options.mode)?),
            Some(dir) => Some(std::thread::scope(|s| {
                let text = s.spawn(|| clip.preload_text());
                let index = Store::open(&clip, dir, options.mode);
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

    /// What the index in `dir` holds, read without a model and without a lock: what its writer
    /// last published. Loads and resolves no model, so it works while the model is away.
    ///
    /// A Milvus location is asked for its counts: no lock there either.
    pub fn inspect(dir: &Path) -> Result<Status, Error> {
        if let Location::Milvus(url) = Location::parse(dir)? {
            let remote = open_remote(&url, Open::Any)?;
            return Store::Remote {
                remote,
                writable: false,
            }
            .status();
        }
        if !dir.exists() {
            return Err(Error::NoIndex {
                path: dir.to_path_buf(),
            });
        }
        Store::Read(Latest::new(Reader::open(dir)?)).status()
    }

    fn index(&self) -> Result<&Store, Error> {
        self.index.as_ref().ok_or(Error::NoIndexOpened)
    }

    /// The index directory, if the engine has an index.
    pub fn index_dir(&self) -> Option<&Path> {
        self.index.as_ref().map(Store::path)
    }

    /// How the index's graphs were obtained at open (loaded, caught up, rebuilt, converted);
    /// `None` without an index or when it was opened read-only (a reader repairs nothing).
    pub fn open_report(&self) -> Option<&OpenReport> {
        match self.index.as_ref()? {
            Store::Write(index) => Some(index.open_report()),
            Store::Read(_) | Store::Remote { .. } => None,
        }
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
        let scope = Scope {
            roots,
            gone: &[],
            stop: &AtomicBool::new(false),
        };
        ingest(
            &self.clip,
            self.index()?.writer()?,
            &scope,
            &self.options.ingest,
            observer,
        )
    }

    /// Calls `each` with every image file under `roots` that [`Engine::ingest`] would read
    /// (new, or changed since indexed; a failure not retried yet is left out), in the walk's
    /// order, and returns how many. Writes nothing: a reader works (the writer's last
    /// checkpoint), and an engine without an index holds nothing, so every image is pending.
    /// For spreading an ingest over machines: embed these with [`Engine::embed_paths`], then
    /// [`Engine::import`] the records.
    pub fn pending<E: From<Error>>(
        &self,
        roots: &[PathBuf],
        each: impl FnMut(&Path) -> Result<(), E>,
    ) -> Result<usize, E> {
        let options = &self.options.ingest;
        match &self.index {
            None => pending(&(), roots, options, each),
            Some(Store::Write(index)) => pending(index as &dyn Backend, roots, options, each),
            Some(Store::Remote { remote, .. }) => {
                pending(remote.as_ref() as &dyn Backend, roots, options, each)
            }
            Some(Store::Read(latest)) => {
                let reader = latest.get();
                pending(&ReaderHeld::new(&reader), roots, options, each)
            }
        }
    }

    /// The model this engine embeds with, as [`FileRecord`]s are labelled. Loads no tower.
    pub fn model_info(&self) -> ModelInfo {
        ModelInfo {
            fingerprint: self.clip.files().fingerprint(),
            source: self.clip.files().source().to_owned(),
            dim: self.clip.embed_dim(),
        }
    }

    /// Embeds the image files of `paths` as [`Engine::ingest`] does (the same decoding,
    /// metadata, hashing and batched, overlapped embedding), without an index: every file is
    /// read and embedded. `sink` gets each batch (8 files), in the order of `paths`: per path
    /// its [`FileRecord`], or a [`Failure`] saying why it has none. Memory stays bounded
    /// however long `paths` is: at most three batches are in flight.
    pub fn embed_paths<E: From<Error> + Send>(
        &self,
        paths: impl Iterator<Item = Result<PathBuf, E>> + Send,
        sink: impl FnMut(Vec<Result<FileRecord, Failure>>) -> Result<(), E>,
    ) -> Result<(), E> {
        records::embed_paths(&self.clip, paths, sink)
    }

    /// Commits records made by [`Engine::embed_paths`] with the model `fingerprint` names
    /// (on this machine or others) into the index, through the same writer as
    /// [`Engine::ingest`], in batches, checkpointing as ingest does. Records of another model
    /// are [`Error::ForeignRecords`]. Idempotent: a record the index holds unchanged (same
    /// size, modification time and content hash) is counted as unchanged and skipped, a
    /// changed one replaces the old, so a stream imported twice adds nothing the second time.
    /// A failure is recorded as ingest records one (listed by [`Engine::status`]). Nothing is
    /// pruned: files deleted from disk leave the index with the next [`Engine::ingest`].
    pub fn import<E: From<Error>>(
        &self,
        fingerprint: &str,
        records: impl Iterator<Item = Result<Result<FileRecord, Failure>, E>>,
        observer: &dyn IngestObserver,
    ) -> Result<IngestSummary, E> {
        let index = self.index()?.writer()?;
        // The index holds this engine's model's vectors: opening checked it.
        let model = self.spec().model;
        let options = &self.options.ingest;
        records::import(index, &model, fingerprint, records, options, observer)
    }

    /// Indexes `roots` as [`Engine::ingest`] does, then keeps the index in step with them
    /// until `stop` is set: new, changed, deleted and moved files, applied in sets once the
    /// file system has been quiet for [`WatchOptions::debounce`], each committed and
    /// published to readers; and a full rescan every [`WatchOptions::rescan_every`], for what
    /// events miss. A moved file keeps its vector (found by content hash), and a folder or
    /// root that vanishes (an unplugged drive) is removed only by a rescan that finds it gone
    /// while its parent is there; a missing root never is.
    ///
    /// Blocks until `stop` is set (from another thread or a signal handler): the pass under way
    /// then commits the batches already prepared and publishes them, and this returns. Searches
    /// through this engine on other threads run meanwhile. `observer` hears about every pass.
    pub fn watch(
        &self,
        roots: &[PathBuf],
        options: &WatchOptions,
        observer: &dyn WatchObserver,
        stop: &AtomicBool,
    ) -> Result<(), Error> {
        watch(
            &self.clip,
            self.index()?.writer()?,
            roots,
            &self.options.ingest,
            options,
            observer,
            stop,
        )
    }

    /// The images closest to `query`, best first, as many and as filtered as `options` say:
    /// the filters are one set of ids the index checks as it walks its graphs; the score
    /// floor and the order apply to the hits found.
    pub fn search(&self, query: &Query, options: &SearchOptions) -> Result<Vec<ImageHit>, Error> {
        let index = self.index()?;
        let vector = self.embed_query(query)?;
        let ids = match (index, options.image_filter()) {
            (Store::Remote { .. }, _) | (_, None) => None,
            (_, Some(filter)) => index.image_ids(&filter)?,
        };
        let hits = match index {
            Store::Remote { remote, .. } => {
                let conditions = options.image_filter().map(|filter| filter.conditions());
                remote.search(Part::Images, &vector, options.k, conditions.as_ref())?
            }
            _ => index.search(Part::Images, &vector, options.k, ids.as_ref())?,
        };
        let hits = hits
            .into_iter()
            .map(|hit| {
                Ok(ImageHit {
                    id: ImageId(hit.id),
                    path: key_path(&hit.key),
                    score: hit.score,
                    taken: index.meta_of(hit.id)?.and_then(|meta| meta.taken),
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(options.finish(hits, |hit| hit.score, |hit| hit.taken))
    }

    /// What the indexed image `id` (as [`ImageHit::id`] gives it) says about itself: capture time,
    /// camera, pixel size, GPS position. `None` when the id is not a live image, or its
    /// metadata has not been captured yet (the next ingest backfills it).
    pub fn image_meta(&self, id: ImageId) -> Result<Option<ImageMeta>, Error> {
        Ok(self.index()?.meta_of(id.0)?)
    }

    /// The texts of the text collection closest to `query` (image→text when the query is an
    /// image), `options.k` at most; the image filters do not apply to texts.
    pub fn search_texts(
        &self,
        query: &Query,
        options: &SearchOptions,
    ) -> Result<Vec<TextHit>, Error> {
        let index = self.index()?;
        let vector = self.embed_query(query)?;
        let hits = index.search(Part::Texts, &vector, options.k, None)?;
        Ok(hits
            .into_iter()
            .map(|hit| TextHit {
                text: String::from_utf8_lossy(&hit.key).into_owned(),
                score: hit.score,
            })
            .collect())
    }

    /// Groups of duplicate images: byte-identical files, and near-duplicates whose embeddings
    /// reach `options.threshold` (cosine) pair by pair, each group with a suggested keeper.
    /// Groups come largest first, then by score, then by first path. Reads the index only
    /// (a reader works while a writer ingests) and never deletes or moves a file; how groups
    /// are made is on [`DupGroup`].
    pub fn duplicates(&self, options: &DupesOptions) -> Result<Vec<DupGroup>, Error> {
        dupes::find(self.index()?, options)
    }

    /// The query's vector, [`Term::Indexed`](crate::Term::Indexed) terms taken from the index.
    fn embed_query(&self, query: &Query) -> Result<Embedding, Error> {
        query.embed_with(&self.clip, &|id| {
            self.index()?
                .vector(id.0)?
                .ok_or(Error::UnknownImage { id })
        })
    }

    /// The path of the indexed image `id`; `None` when the index holds no such id (any more).
    pub fn image_path(&self, id: ImageId) -> Result<Option<PathBuf>, Error> {
        Ok(self.index()?.image_key(id)?.map(|key| key_path(&key)))
    }

    /// For an engine opened with [`OpenMode::Read`]: if the writer has published since the
    /// reader was opened (a checkpoint), reads the newer state, so a long-lived reader (the
    /// server) follows an ingest running beside it. Searches in flight finish on the state
    /// they started with; every later one sees the newer. Costs a read of the view's small
    /// header when nothing changed. Whether anything did; a writer sees its own changes
    /// anyway (`false`).
    pub fn refresh(&self) -> Result<bool, Error> {
        match self.index()? {
            // A server's readers see every acknowledged write already.
            Store::Write(_) | Store::Remote { .. } => Ok(false),
            Store::Read(latest) => latest.refresh(&self.spec()),
        }
    }

    fn spec(&self) -> IndexSpec {
        spec_of(&self.clip)
    }

    /// Adds texts to the text collection; texts already there are not embedded again.
    /// Returns how many were new.
    pub fn add_texts(&self, texts: &[String]) -> Result<usize, Error> {
        let index = self.index()?.writer()?;
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
                    meta: None,
                })
                .collect();
            index.texts().upsert_batch(entries)?;
        }
        index.checkpoint()?;
        Ok(new.len())
    }

    /// How many images are indexed.
    pub fn image_count(&self) -> Result<usize, Error> {
        self.index()?.len(Part::Images)
    }

    /// How many texts the text collection holds.
    pub fn text_count(&self) -> Result<usize, Error> {
        self.index()?.len(Part::Texts)
    }

    /// Counts, model and failures of the index. Loads no tower.
    pub fn status(&self) -> Result<Status, Error> {
        self.index()?.status()
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

    /// [`Engine::decode_preview`] for an image in memory (an upload to search with): the
    /// format from its content alone, the same limits.
    pub fn decode_bytes(&self, bytes: &[u8]) -> Result<DynamicImage, DecodeError> {
        self.clip.decode_bytes(bytes)
    }

    /// Writes what the index holds in memory to disk. A process about to exit can flush and
    /// then leak the engine rather than drop it: freeing a large graph node by node takes
    /// longer than a whole query, and the exit frees it at once.
    pub fn flush(&self) -> Result<(), Error> {
        if let Some(Store::Write(index)) = &self.index {
            index.flush()?;
        }
        Ok(())
    }
}

/// Texts embedded together by [`Engine::add_texts`].
const TEXT_BATCH: usize = 64;

/// Resolves the model the options name or, without one, the model the index (or
/// [`EngineOptions::model_of`]'s) records (the default hub model when there is no index yet,
/// or it records none).
fn open_model(
    options: &EngineOptions,
    progress: Option<&dyn DownloadProgress>,
) -> Result<Clip, Error> {
    if let Some(model) = &options.model {
        return Clip::open(model, progress);
    }
    let recorded = match options.index.as_ref().or(options.model_of.as_ref()) {
        Some(location) => recorded_model(location)?,
        None => None,
    };
    let Some((location, fingerprint)) = recorded else {
        return Clip::open(DEFAULT_REPO, progress);
    };
    Clip::open(&location, progress).map_err(|err| match err {
        Error::Model(cause) => Error::RecordedModel {
            location,
            fingerprint,
            cause: Box::new(cause),
        },
        err => err,
    })
}

/// Where the model of the index at `location` came from and its fingerprint, if it records them.
fn recorded_model(location: &Path) -> Result<Option<(String, String)>, Error> {
    Ok(match Location::parse(location)? {
        // No index there yet (`inspect` would call the place "not an index").
        Location::Dir(dir) if !dir.exists() => None,
        Location::Dir(dir) => match xsearch_index::inspect(dir) {
            // A folder that holds something else is worth saying before any model is fetched.
            Err(err @ IndexError::NotAnIndex { .. }) => return Err(err.into()),
            Ok(info) => info
                .model_source
                .map(|source| (source, info.model_fingerprint)),
            // No index yet, or one whose view is missing or unreadable: the store decides later.
            Err(_) => None,
        },
        Location::Milvus(url) => match open_remote(&url, Open::Any) {
            Ok(remote) => remote
                .model_source()
                .map(|source| (source.to_string(), remote.spec().model.clone())),
            Err(IndexError::NoCollection { .. }) => None,
            // No server: better said before a model is loaded.
            Err(err) => return Err(err.into()),
        },
    })
}

/// What an index built with `clip`'s model records.
fn spec_of(clip: &Clip) -> IndexSpec {
    IndexSpec {
        model: clip.files().fingerprint(),
        dim: clip.embed_dim(),
    }
}

impl DupSource for Store {
    fn images(&self) -> Result<Vec<Image>, Error> {
        match self {
            Store::Write(index) => index
                .images()
                .iter()
                .map(|item| {
                    let (key, record) = item?;
                    let meta = index.images().meta_of(record.id)?;
                    Ok(Image::new(&key, record, meta))
                })
                .collect(),
            Store::Read(latest) => {
                let reader = latest.get();
                Ok(reader
                    .images()
                    .iter()
                    .map(|(key, record)| {
                        let meta = reader.images().meta_of(record.id).cloned();
                        Image::new(key, record.clone(), meta)
                    })
                    .collect())
            }
            Store::Remote { .. } => Err(self.no_dupes()),
        }
    }

    fn similar_pairs(
        &self,
        min_score: f32,
        accept: Option<IdFilter<'_>>,
    ) -> Result<Vec<Pair>, Error> {
        Ok(match self {
            Store::Write(index) => index.images().similar_pairs(min_score, accept)?,
            Store::Read(latest) => latest.get().images().similar_pairs(min_score, accept)?,
            Store::Remote { .. } => return Err(self.no_dupes()),
        })
    }

    fn vector(&self, id: Id) -> Result<Option<Vec<f32>>, Error> {
        Ok(match self {
            Store::Write(index) => index.images().vector(id)?,
            Store::Read(latest) => latest.get().images().vector(id).map(<[f32]>::to_vec),
            Store::Remote { remote, .. } => remote.vector(id)?,
        })
    }
}

impl Store {
    /// Opens the index at `dir` as `mode` says, checking it was built with `clip`'s model. A
    /// writer records where the model came from, so later commands need not name it.
    fn open(clip: &Clip, dir: &Path, mode: OpenMode) -> Result<Store, Error> {
        let spec = spec_of(clip);
        if let Location::Milvus(url) = Location::parse(dir)? {
            let how = match mode {
                OpenMode::Create => Open::Create(&spec, clip.files().source()),
                OpenMode::Existing | OpenMode::Read => Open::Existing(&spec),
            };
            return Ok(Store::Remote {
                remote: open_remote(&url, how)?,
                writable: mode != OpenMode::Read,
            });
        }
        if mode != OpenMode::Read {
            let index = Index::open(dir, &spec)?;
            let source = clip.files().source();
            if index.model_source().as_deref() != Some(source) {
                index.set_model_source(source)?;
            }
            return Ok(Store::Write(index));
        }
        let reader = match Reader::open(dir) {
            Err(no_view @ IndexError::NoView { .. }) => {
                // Last written by an older xsearch, which published nothing for readers: a
                // writer's open publishes it, where the directory can be written and no
                // writer holds it. Otherwise the reader's error stands.
                match Index::open(dir, &spec) {
                    Ok(index) => drop(index),
                    Err(mismatch @ IndexError::ModelMismatch { .. }) => return Err(mismatch.into()),
                    Err(_) => return Err(no_view.into()),
                }
                Reader::open(dir)?
            }
            opened => opened?,
        };
        reader.check_spec(&spec)?;
        Ok(Store::Read(Latest::new(reader)))
    }

    fn path(&self) -> &Path {
        match self {
            Store::Write(index) => index.path(),
            Store::Read(latest) => latest.path(),
            Store::Remote { remote, .. } => remote.location(),
        }
    }

    /// The writer, for changes; a reader refuses them.
    fn writer(&self) -> Result<&dyn Backend, Error> {
        match self {
            Store::Write(index) => Ok(index),
            Store::Remote {
                remote,
                writable: true,
            } => Ok(remote.as_ref()),
            Store::Read(_) | Store::Remote { .. } => Err(Error::ReadOnly {
                path: self.path().to_path_buf(),
            }),
        }
    }

    /// Why duplicates cannot be found in a server's index.
    fn no_dupes(&self) -> Error {
        IndexError::Unsupported {
            location: self.path().display().to_string(),
            what: "finding duplicates".to_string(),
            why: "it pairs every image with its graph neighbours, which Milvus does not \
                  expose; run it on a directory index"
                .to_string(),
        }
        .into()
    }

    /// The key (path bytes) of the live image `id`.
    fn image_key(&self, id: ImageId) -> Result<Option<Vec<u8>>, IndexError> {
        match self {
            Store::Write(index) => index.images().key(id.0),
            Store::Read(latest) => Ok(latest.get().images().key(id.0).map(<[u8]>::to_vec)),
            Store::Remote { remote, .. } => remote.key(id.0),
        }
    }

    /// The `k` nearest records of `part`; an id `filter` applies to the embedded index only
    /// (a server's index takes [`xsearch_index::Conditions`], see [`Engine::search`]).
    fn search(
        &self,
        part: Part,
        vector: &[f32],
        k: usize,
        filter: Option<&IdSet>,
    ) -> Result<Vec<Hit>, IndexError> {
        match (self, part) {
            (Store::Write(index), Part::Images) => index.images().search(vector, k, filter),
            (Store::Write(index), Part::Texts) => index.texts().search(vector, k, filter),
            (Store::Read(latest), Part::Images) => latest.get().images().search(vector, k, filter),
            (Store::Read(latest), Part::Texts) => latest.get().texts().search(vector, k, filter),
            (Store::Remote { remote, .. }, part) => remote.search(part, vector, k, None),
        }
    }

    fn meta_of(&self, id: Id) -> Result<Option<ImageMeta>, IndexError> {
        match self {
            Store::Write(index) => index.images().meta_of(id),
            Store::Read(latest) => Ok(latest.get().images().meta_of(id).cloned()),
            Store::Remote { remote, .. } => remote.meta_of(id),
        }
    }

    /// The ids of the images `filter` accepts (`None`: all): a range of the sorted keys for
    /// the folder, one pass over the in-memory metadata table for the time and the camera.
    fn image_ids(&self, filter: &ImageFilter) -> Result<Option<IdSet>, IndexError> {
        let by_folder = match (self, filter.key_prefix()) {
            (_, None) => None,
            (Store::Write(index), Some(prefix)) => Some(index.images().ids_with_prefix(prefix)?),
            (Store::Read(latest), Some(prefix)) => {
                Some(latest.get().images().ids_with_prefix(prefix))
            }
            // Milvus takes the filter as an expression instead (`Engine::search`).
            (Store::Remote { .. }, Some(_)) => return Err(self.no_id_filter()),
        };
        let by_meta = match (self, filter.needs_meta()) {
            (_, false) => None,
            (Store::Write(index), true) => Some(filter.select(&index.images().meta_table())),
            (Store::Read(latest), true) => Some(filter.select(latest.get().images().meta_table())),
            (Store::Remote { .. }, true) => return Err(self.no_id_filter()),
        };
        Ok(match (by_folder, by_meta) {
            (Some(mut ids), Some(by_meta)) => {
                ids.intersect(&by_meta);
                Some(ids)
            }
            (ids, None) | (None, ids) => ids,
        })
    }

    /// A server's index filters by expression, never by a set of ids.
    fn no_id_filter(&self) -> IndexError {
        IndexError::Unsupported {
            location: self.path().display().to_string(),
            what: "filtering by a set of ids".to_string(),
            why: "Milvus filters by expression".to_string(),
        }
    }

    fn len(&self, part: Part) -> Result<usize, Error> {
        Ok(match (self, part) {
            (Store::Write(index), Part::Images) => index.images().len(),
            (Store::Write(index), Part::Texts) => index.texts().len(),
            (Store::Read(latest), Part::Images) => latest.get().images().len(),
            (Store::Read(latest), Part::Texts) => latest.get().texts().len(),
            (Store::Remote { remote, .. }, part) => remote.count(part)?,
        })
    }

    fn status(&self) -> Result<Status, Error> {
        let (model, fingerprint, dim, failures, images, texts) = match self {
            Store::Write(index) => (
                index.model_source(),
                index.spec().model.clone(),
                index.spec().dim,
                index.failures()?,
                index.images().len(),
                index.texts().len(),
            ),
            Store::Read(latest) => {
                // One reader for every count, so they belong to the same publish.
                let reader = latest.get();
                (
                    reader.info().model_source.clone(),
                    reader.info().model_fingerprint.clone(),
                    reader.info().dim,
                    reader.failures().to_vec(),
                    reader.images().len(),
                    reader.texts().len(),
                )
            }
            Store::Remote { remote, .. } => (
                remote.model_source().map(str::to_string),
                remote.spec().model.clone(),
                remote.spec().dim,
                remote.failures()?,
                remote.count(Part::Images)?,
                remote.count(Part::Texts)?,
            ),
        };
        Ok(Status {
            index: self.path().to_path_buf(),
            model,
            fingerprint,
            dim,
            images,
            texts,
            failures: failures
                .into_iter()
                .map(|(key, failure)| Failure {
                    path: key_path(&key),
                    reason: failure.reason,
                })
                .collect(),
        })
    }
}
