//! The ingest pipeline: walk → skip what is unchanged → read, hash, decode and preprocess in
//! parallel → embed in batches → commit each batch atomically.
//!
//! Decoding the next batch overlaps with embedding the current one: a producer thread prepares
//! batches on the rayon pool and hands them over a channel of capacity one, so at most three
//! batches of pixels exist at once, whatever the size of the folder.
//!
//! Crash safety comes from the order of writes: a file's record lands in the index together with
//! its vector and its metadata, in one transaction per batch, flushed before the next batch is
//! taken. A run that is killed loses at most the batches in flight; the next run skips
//! everything committed (same size and modification time) and finishes the job.
//!
//! Metadata (capture time, camera, size, position: [`read_meta`]) is read from the bytes the
//! decoder reads. An unchanged file whose record has none (indexed before metadata was
//! captured) gets it on the next run without being decoded or embedded: its bytes are read,
//! its metadata extracted, and committed in batches of [`BACKFILL_BATCH`].

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use jiff::tz::TimeZone;
use rayon::prelude::*;
use xsearch_index::{Backend, Entry, Failure, FileStamp, Id, ImageMeta, Reader, Record};

use crate::clip::{ImageSource, DEFAULT_BATCH_SIZE};
use crate::decode::{read_file, read_file_meta, read_meta};
use crate::ingest::walk::{distinct_roots, walk, Candidate, Found, RawPairs, WalkOptions};
use crate::keys::{key_path, path_key};
use crate::{Clip, Error};

/// How to ingest: [`IngestOptions::default`] refined with setters (`#[non_exhaustive]`, so
/// options added later do not break callers).
///
/// ```
/// let options = xsearch::IngestOptions::default().follow_symlinks(true).batch_size(16);
/// assert_eq!(options.batch_size, 16);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct IngestOptions {
    /// Follow symbolic links while walking (loops are detected and reported).
    pub follow_symlinks: bool,
    /// Which files of a camera RAW + JPEG pair to index.
    pub raw_pairs: RawPairs,
    /// Images embedded together; see `BENCHMARKS.md` for how the default was chosen.
    pub batch_size: usize,
    /// How often a long run checkpoints, publishing what it has committed so far to readers
    /// (other processes searching the index while it runs). A checkpoint seals the vectors
    /// added since the last one into a segment and rewrites the read view (about 0.3-0.6 s at
    /// 100k photos), so readers are at most this much, plus one batch, behind. Default 60 s.
    pub checkpoint_every: Duration,
}

impl Default for IngestOptions {
    fn default() -> Self {
        Self {
            follow_symlinks: false,
            raw_pairs: RawPairs::default(),
            batch_size: DEFAULT_BATCH_SIZE,
            checkpoint_every: Duration::from_secs(60),
        }
    }
}

impl IngestOptions {
    /// Follow symbolic links while walking.
    pub fn follow_symlinks(mut self, follow: bool) -> Self {
        self.follow_symlinks = follow;
        self
    }

    /// Which files of a camera RAW + JPEG pair to index.
    pub fn raw_pairs(mut self, pairs: RawPairs) -> Self {
        self.raw_pairs = pairs;
        self
    }

    /// Images embedded together (at least one).
    pub fn batch_size(mut self, size: usize) -> Self {
        self.batch_size = size;
        self
    }

    /// How often a long run publishes its progress to readers.
    pub fn checkpoint_every(mut self, every: Duration) -> Self {
        self.checkpoint_every = every;
        self
    }

    pub(crate) fn walk(&self) -> WalkOptions {
        WalkOptions {
            follow_symlinks: self.follow_symlinks,
            raw_pairs: self.raw_pairs,
        }
    }
}

/// What the pipeline reports while it runs, for progress bars and logs.
#[derive(Debug)]
#[non_exhaustive]
pub enum IngestEvent<'a> {
    /// The walk is over: `pending` files need work, `unchanged` were already indexed.
    Walked {
        /// Files to read (new or changed).
        pending: usize,
        /// Files skipped because their size and modification time are unchanged.
        unchanged: usize,
    },
    /// A file or folder was skipped; the run goes on.
    Skipped {
        /// The file or folder.
        path: &'a Path,
        /// Why, in words.
        reason: &'a str,
    },
    /// A batch of `files` files was committed to the index.
    Committed {
        /// Files in the batch, failures excluded.
        files: usize,
    },
}

/// Receives [`IngestEvent`]s; called from the pipeline's threads.
pub trait IngestObserver: Sync {
    /// One event.
    fn event(&self, event: IngestEvent<'_>);
}

impl<F: Fn(IngestEvent<'_>) + Sync> IngestObserver for F {
    fn event(&self, event: IngestEvent<'_>) {
        self(event)
    }
}

/// Ignores every event.
impl IngestObserver for () {
    fn event(&self, _: IngestEvent<'_>) {}
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct IngestSummary {
    /// Image files found under the roots.
    pub found: usize,
    /// Skipped without reading: same size and modification time as indexed.
    pub unchanged: usize,
    /// New files embedded.
    pub added: usize,
    /// Changed files embedded again.
    pub updated: usize,
    /// New or changed files whose content was already indexed (renamed or duplicated): their
    /// stored vector was reused instead of embedding them again.
    pub reused: usize,
    /// Unchanged files indexed before metadata was captured that gained it: their bytes were
    /// read for it, nothing was decoded or embedded.
    pub backfilled: usize,
    /// Files that were indexed but are gone from disk, removed from the index.
    pub removed: usize,
    /// Files and folders skipped with an error (listed by `xsearch status`), including files
    /// whose earlier failure is still recorded and that have not changed since.
    pub failed: usize,
    /// Video files found and skipped (counted, not recorded as failures).
    pub videos: usize,
    /// Special files skipped without being opened: FIFOs, sockets, devices, and symbolic links
    /// that lead nowhere.
    pub special: usize,
}

/// What one ingest run covers: a whole library, or the paths a watcher saw change.
pub(crate) struct Scope<'a> {
    /// Folders or files to walk. What was indexed under one of them that is there, and is no
    /// longer on disk, is removed.
    pub roots: &'a [PathBuf],
    /// Paths known to have left (deleted files, folders moved elsewhere), whether or not a
    /// root covers them: what was indexed at or under them, and is not on disk, is removed.
    pub gone: &'a [PathBuf],
    /// Once set, no new batch starts: the batches already prepared are committed whole, the
    /// removals are skipped, and the checkpoint publishes what was committed.
    pub stop: &'a AtomicBool,
}

/// Indexes the image files under `scope.roots` (folders or files) into `index`, and removes
/// what left the disk.
///
/// The folders are walked twice: first to count the work (for progress) and to report what
/// cannot be walked, then to feed the pipeline, each file judged again as it comes. Nothing is
/// kept per file in between, so memory does not grow with the folder.
pub(crate) fn ingest(
    clip: &Clip,
    index: &dyn Backend,
    scope: &Scope<'_>,
    options: &IngestOptions,
    observer: &dyn IngestObserver,
) -> Result<IngestSummary, Error> {
    let stopped = || scope.stop.load(Ordering::Relaxed);
    let roots = distinct_roots(scope.roots, options.walk());
    // EXIF times without an offset are wall-clock times: read in this machine's zone (UTC
    // when it has none configured).
    let zone = TimeZone::system();
    let mut summary = IngestSummary::default();
    let mut pending = 0;
    let mut known_failures = 0usize;
    let mut backfill = Vec::new();
    for found in walk(&roots, options.walk()) {
        if stopped() {
            break;
        }
        match found {
            Ok(Found::Video(_)) => summary.videos += 1,
            Ok(Found::Special { .. }) => summary.special += 1,
            Ok(Found::Image(candidate)) => {
                summary.found += 1;
                match needs_work(index, &candidate)? {
                    Work::New | Work::Changed => pending += 1,
                    Work::Unchanged { id } => {
                        summary.unchanged += 1;
                        if !index.images().has_meta(id)? {
                            backfill.push((id, candidate));
                            if backfill.len() == BACKFILL_BATCH {
                                summary.backfilled +=
                                    backfill_meta(index, clip, &zone, &mut backfill)?;
                            }
                        }
                    }
                    Work::KnownFailure(reason) => {
                        summary.failed += 1;
                        known_failures += 1;
                        observer.event(IngestEvent::Skipped {
                            path: &candidate.path,
                            reason: &reason,
                        });
                    }
                }
            }
            Err(err) => {
                summary.failed += 1;
                index.record_failure(&path_key(&err.path), &err.reason)?;
                observer.event(IngestEvent::Skipped {
                    path: &err.path,
                    reason: &err.reason,
                });
            }
        }
    }
    summary.backfilled += backfill_meta(index, clip, &zone, &mut backfill)?;
    observer.event(IngestEvent::Walked {
        pending,
        unchanged: summary.unchanged,
    });
    if pending > 0 && !stopped() {
        // Another writer of the same index (a second machine on one Milvus collection, a
        // retried Spark task) may commit files between the two walks: counted as it left them.
        let (unchanged, failures) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let work = walk(&roots, options.walk())
            .take_while(|_| !stopped())
            .filter_map(|found| match found {
                Ok(Found::Image(candidate)) => Some(candidate),
                Ok(Found::Video(_) | Found::Special { .. }) | Err(_) => None,
            })
            .filter_map(|candidate| match needs_work(index, &candidate) {
                Ok(Work::New) => Some(Ok((candidate, false))),
                Ok(Work::Changed) => Some(Ok((candidate, true))),
                Ok(Work::Unchanged { .. }) => {
                    unchanged.fetch_add(1, Ordering::Relaxed);
                    None
                }
                Ok(Work::KnownFailure(_)) => {
                    failures.fetch_add(1, Ordering::Relaxed);
                    None
                }
                Err(e) => Some(Err(e)),
            });
        embed(clip, index, &zone, work, options, observer, &mut summary)?;
        // What the second walk found held beyond what the first did.
        let walked_unchanged = summary.unchanged;
        summary.unchanged += unchanged.into_inner().saturating_sub(walked_unchanged);
        summary.failed += failures.into_inner().saturating_sub(known_failures);
    }
    if !stopped() {
        summary.removed = prune(index, &roots, scope.gone)?;
    }
    index.checkpoint()?;
    Ok(summary)
}

/// What a walked file needs.
enum Work {
    /// Not indexed yet.
    New,
    /// Indexed, but its size or modification time changed.
    Changed,
    /// Indexed with the same size and modification time, as record `id`.
    Unchanged { id: Id },
    /// It failed before (this reason), and has not been modified since.
    KnownFailure(String),
}

/// What an index holds of a file, for judging whether it needs work: the writer, or a
/// reader of what a writer published (a dry run reads only).
pub(crate) trait Held {
    /// The record under `key`.
    fn record(&self, key: &[u8]) -> Result<Option<Record>, Error>;
    /// The failure recorded under `key`.
    fn failure(&self, key: &[u8]) -> Result<Option<Failure>, Error>;
}

impl Held for dyn Backend + '_ {
    fn record(&self, key: &[u8]) -> Result<Option<Record>, Error> {
        Ok(self.images().get(key)?)
    }

    fn failure(&self, key: &[u8]) -> Result<Option<Failure>, Error> {
        Ok(Backend::failure(self, key)?)
    }
}

/// A reader's records, with its failures by key (a reader keeps them as a list).
pub(crate) struct ReaderHeld<'a> {
    reader: &'a Reader,
    failures: HashMap<&'a [u8], &'a Failure>,
}

impl<'a> ReaderHeld<'a> {
    pub(crate) fn new(reader: &'a Reader) -> Self {
        let failures = reader
            .failures()
            .iter()
            .map(|(key, failure)| (key.as_slice(), failure))
            .collect();
        Self { reader, failures }
    }
}

impl Held for ReaderHeld<'_> {
    fn record(&self, key: &[u8]) -> Result<Option<Record>, Error> {
        Ok(self.reader.images().get(key).cloned())
    }

    fn failure(&self, key: &[u8]) -> Result<Option<Failure>, Error> {
        Ok(self.failures.get(key).map(|failure| (*failure).clone()))
    }
}

/// An index that holds nothing: every file is new.
impl Held for () {
    fn record(&self, _: &[u8]) -> Result<Option<Record>, Error> {
        Ok(None)
    }

    fn failure(&self, _: &[u8]) -> Result<Option<Failure>, Error> {
        Ok(None)
    }
}

fn needs_work<H: Held + ?Sized>(index: &H, candidate: &Candidate) -> Result<Work, Error> {
    let key = path_key(&candidate.path);
    if let Some(previous) = index.record(&key)? {
        let unchanged = previous
            .file
            .as_ref()
            .is_some_and(|f| f.size == candidate.size && f.mtime_ns == candidate.mtime_ns);
        return Ok(if unchanged {
            Work::Unchanged { id: previous.id }
        } else {
            Work::Changed
        });
    }
    // A failure is not retried until the file changes: a file that crashes a decoder would
    // otherwise cost every run the crash again. The failure keeps its time, not the file's
    // stamp, so "changed" is a modification time from a second at least after the failure's
    // (a change within the same second is retried, to be safe).
    Ok(match index.failure(&key)? {
        Some(failure) if candidate.mtime_ns.div_euclid(1_000_000_000) < failure.time_s as i64 => {
            Work::KnownFailure(failure.reason)
        }
        _ => Work::New,
    })
}

/// Calls `each` with every image file under `roots` that an ingest into `index` would read
/// (new, or changed since indexed; a failure that is not retried yet is left out), in the
/// walk's order, and returns how many. Reads only: what cannot be walked is left to the
/// ingest to record.
pub(crate) fn pending<H: Held + ?Sized, E: From<Error>>(
    index: &H,
    roots: &[PathBuf],
    options: &IngestOptions,
    mut each: impl FnMut(&Path) -> Result<(), E>,
) -> Result<usize, E> {
    let mut count = 0;
    for found in walk(&distinct_roots(roots, options.walk()), options.walk()) {
        if let Ok(Found::Image(candidate)) = found {
            if let Work::New | Work::Changed = needs_work(index, &candidate)? {
                each(&candidate.path)?;
                count += 1;
            }
        }
    }
    Ok(count)
}

/// A file the producer could not turn into pixels for the tower, and why.
pub(crate) enum NoPixels {
    /// Its content is already indexed under another path: this vector can be reused.
    Reused(Vec<f32>),
    /// It could not be read or decoded.
    Failed(String),
}

/// What is known of a file once it was read: everything its record holds but the vector.
pub(crate) struct FileFacts {
    pub candidate: Candidate,
    /// Whether the index holds an older version of it (its record is replaced).
    pub updated: bool,
    /// BLAKE3 of its bytes (empty when it could not be read).
    pub hash: Vec<u8>,
    pub meta: ImageMeta,
}

/// A file ready for the tower: its preprocessed pixels, or what to do instead.
pub(crate) struct PreparedFile {
    pub facts: FileFacts,
    pub pixels: Result<Vec<f32>, NoPixels>,
}

/// A file after the tower: its vector (embedded, or reused), or why it has none.
pub(crate) type EmbeddedFile = (FileFacts, Result<Vec<f32>, NoPixels>);

/// Embeds and commits the files of `work` (each with whether it is an update), a batch at a
/// time.
fn embed(
    clip: &Clip,
    index: &dyn Backend,
    zone: &TimeZone,
    work: impl Iterator<Item = Result<(Candidate, bool), Error>> + Send,
    options: &IngestOptions,
    observer: &dyn IngestObserver,
    summary: &mut IngestSummary,
) -> Result<(), Error> {
    let mut last_checkpoint = Instant::now();
    embed_batches(
        clip,
        options.batch_size,
        work,
        |(candidate, updated)| read_file_facts(clip, Some(index), zone, candidate, updated),
        |batch| {
            commit(index, batch, observer, summary)?;
            if last_checkpoint.elapsed() >= options.checkpoint_every {
                index.checkpoint()?;
                last_checkpoint = Instant::now();
            }
            Ok(())
        },
    )
}

/// The image stage of every path that embeds files in batches (ingest, and `embed --stdin`'s
/// records): `prepare` turns each item of `work` into pixels on the rayon pool, a batch of
/// `batch_size` at a time, while the tower embeds the batch before, and `consume` takes each
/// batch embedded, in the order of `work`.
///
/// A producer thread prepares batches and hands them over a channel of capacity one, so at
/// most three batches of pixels exist at once, however long `work` is.
pub(crate) fn embed_batches<T: Send, E: From<Error> + Send>(
    clip: &Clip,
    batch_size: usize,
    mut work: impl Iterator<Item = Result<T, E>> + Send,
    prepare: impl Fn(T) -> Result<PreparedFile, Error> + Sync,
    mut consume: impl FnMut(Vec<EmbeddedFile>) -> Result<(), E>,
) -> Result<(), E> {
    let batch_size = batch_size.max(1);
    // Load the model before the producer starts, so a broken model fails the run at once.
    clip.pixel_len()?;
    let prepare = &prepare;
    std::thread::scope(|scope| {
        let (sender, receiver) = mpsc::sync_channel::<Vec<PreparedFile>>(1);
        let producer = scope.spawn(move || -> Result<(), E> {
            loop {
                let chunk = work
                    .by_ref()
                    .take(batch_size)
                    .collect::<Result<Vec<_>, E>>()?;
                if chunk.is_empty() {
                    return Ok(());
                }
                let batch = chunk
                    .into_par_iter()
                    .map(prepare)
                    .collect::<Result<Vec<_>, Error>>()?;
                if sender.send(batch).is_err() {
                    return Ok(()); // the consumer stopped on an error; it reports it
                }
            }
        });
        for batch in receiver {
            // The pixels are embedded in one pass; the reused and the failed files keep their
            // slots.
            let (facts, slots): (Vec<_>, Vec<_>) =
                batch.into_iter().map(|f| (f.facts, f.pixels)).unzip();
            let vectors = clip.embed_slots(slots)?;
            consume(facts.into_iter().zip(vectors).collect())?;
        }
        producer
            .join()
            .expect("the ingest producer thread panicked")
    })
}

/// Reads `candidate` once: its content hash and metadata, then its pixels, unless `index`
/// already holds the same content under another path (its vector is reused) or it cannot be
/// read or decoded (the reason is kept).
pub(crate) fn read_file_facts(
    clip: &Clip,
    index: Option<&dyn Backend>,
    zone: &TimeZone,
    candidate: Candidate,
    updated: bool,
) -> Result<PreparedFile, Error> {
    let mut file = PreparedFile {
        facts: FileFacts {
            candidate,
            updated,
            hash: Vec::new(),
            meta: ImageMeta::default(),
        },
        pixels: Err(NoPixels::Failed(String::new())),
    };
    let facts = &mut file.facts;
    let path = &facts.candidate.path;
    let bytes = match read_file(path, clip.decode_limits()) {
        Ok(bytes) => bytes,
        // The record is keyed by the path: store the reason alone.
        Err(err) => {
            file.pixels = Err(NoPixels::Failed(err.reason()));
            return Ok(file);
        }
    };
    facts.hash = blake3::hash(&bytes).as_bytes().to_vec();
    facts.meta = read_meta(&bytes, Some(path), facts.candidate.mtime_ns, zone);
    if let Some(index) = index {
        if let Some((_, vector)) = index.images().lookup_hash(&facts.hash)? {
            file.pixels = Err(NoPixels::Reused(vector));
            return Ok(file);
        }
    }
    // The record is keyed by the path: a failure stores the reason alone.
    file.pixels = clip
        .pixels(ImageSource::Bytes(bytes))?
        .map_err(|err| NoPixels::Failed(err.reason()));
    Ok(file)
}

/// Commits one embedded batch of ingest.
fn commit(
    index: &dyn Backend,
    batch: Vec<EmbeddedFile>,
    observer: &dyn IngestObserver,
    summary: &mut IngestSummary,
) -> Result<(), Error> {
    let files = batch
        .into_iter()
        .map(|(facts, vector)| {
            let vector = match vector {
                Ok(embedding) => Ok(embedding),
                Err(NoPixels::Reused(vector)) => {
                    summary.reused += 1;
                    Ok(vector)
                }
                Err(NoPixels::Failed(reason)) => Err(reason),
            };
            (facts, vector)
        })
        .collect();
    write_batch(index, files, observer, summary)
}

/// Writes a batch of files into the index, the one writer of image records (ingest and
/// [`crate::Engine::import`] both commit through it): the files with a vector in one
/// transaction (record, vector, content hash and metadata together), their earlier failures
/// cleared; each file without one recorded as a failure, and its record, if it held an older
/// version, removed (a picture that is not there any more must not answer searches).
pub(crate) fn write_batch(
    index: &dyn Backend,
    files: Vec<(FileFacts, Result<Vec<f32>, String>)>,
    observer: &dyn IngestObserver,
    summary: &mut IngestSummary,
) -> Result<(), Error> {
    let mut entries = Vec::with_capacity(files.len());
    let mut succeeded = Vec::with_capacity(files.len());
    let mut stale = Vec::new();
    for (facts, vector) in files {
        let FileFacts {
            candidate,
            updated,
            hash,
            meta,
        } = facts;
        let key = path_key(&candidate.path);
        let vector = match vector {
            Ok(vector) => vector,
            Err(reason) => {
                summary.failed += 1;
                index.record_failure(&key, &reason)?;
                if updated {
                    stale.push(key);
                }
                observer.event(IngestEvent::Skipped {
                    path: &candidate.path,
                    reason: &reason,
                });
                continue;
            }
        };
        if updated {
            summary.updated += 1;
        } else {
            summary.added += 1;
        }
        succeeded.push(key.clone());
        entries.push(Entry {
            key,
            file: Some(FileStamp {
                size: candidate.size,
                mtime_ns: candidate.mtime_ns,
                hash,
            }),
            vector,
            meta: Some(meta),
        });
    }
    let files = entries.len();
    index.images().upsert_batch(entries)?;
    if !stale.is_empty() {
        index.images().remove_keys(&stale)?;
    }
    for key in &succeeded {
        index.clear_failure(key)?;
    }
    observer.event(IngestEvent::Committed { files });
    Ok(())
}

/// Files whose metadata is read and committed together when backfilling: the reads run in
/// parallel, and a kill loses at most one batch of (cheap) work.
const BACKFILL_BATCH: usize = 64;

/// Reads the metadata of the unchanged files in `batch` (emptied) and stores it under their
/// records; returns how many gained it. A JPEG's head is all that is read of it. A file that cannot be read now keeps none, and is
/// tried again by the next run.
fn backfill_meta(
    index: &dyn Backend,
    clip: &Clip,
    zone: &TimeZone,
    batch: &mut Vec<(Id, Candidate)>,
) -> Result<usize, Error> {
    let limits = clip.decode_limits();
    let metas: Vec<(Id, ImageMeta)> = batch
        .par_drain(..)
        .filter_map(|(id, candidate)| {
            let meta = read_file_meta(&candidate.path, limits, candidate.mtime_ns, zone);
            Some((id, meta.ok()?))
        })
        .collect();
    if metas.is_empty() {
        return Ok(0);
    }
    Ok(index.images().set_meta(metas)?)
}

/// Removes the records of files under the present `roots` and under `gone` that are no longer
/// on disk, and forgets their failures. A root that is missing altogether (an unplugged drive)
/// prunes nothing: its photos are not gone.
fn prune(index: &dyn Backend, roots: &[PathBuf], gone: &[PathBuf]) -> Result<usize, Error> {
    let areas: Vec<&PathBuf> = roots.iter().filter(|r| r.exists()).chain(gone).collect();
    let is_gone = |path: &Path, area: &Path| path.starts_with(area) && !path.is_file();
    for (key, _) in index.failures()? {
        let path = key_path(&key);
        if areas.iter().any(|area| is_gone(&path, area)) {
            index.clear_failure(&key)?;
        }
    }
    // Only the records under each area are read: a watcher's change to one folder does not
    // pay for the whole library. A set, because areas may overlap.
    let mut vanished = BTreeSet::new();
    for area in areas {
        for item in index.images().with_prefix(&path_key(area))? {
            let (key, _) = item?;
            if is_gone(&key_path(&key), area) {
                vanished.insert(key);
            }
        }
    }
    if !vanished.is_empty() {
        index
            .images()
            .remove_keys(&vanished.iter().cloned().collect::<Vec<_>>())?;
    }
    Ok(vanished.len())
}
