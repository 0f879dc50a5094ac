//! The ingest pipeline: walk → skip what is unchanged → read, hash, decode and preprocess in
//! parallel → embed in batches → commit each batch atomically.
//!
//! Decoding the next batch overlaps with embedding the current one: a producer thread prepares
//! batches on the rayon pool and hands them over a channel of capacity one, so at most three
//! batches of pixels exist at once, whatever the size of the folder.
//!
//! Crash safety comes from the order of writes: a file's record lands in the index together with
//! its vector, in one transaction per batch, flushed before the next batch is taken. A run that
//! is killed loses at most the batches in flight; the next run skips everything committed
//! (same size and modification time) and finishes the job.

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use rayon::prelude::*;
use xsearch_index::{Entry, FileStamp, Index};

use crate::decode::decode_bytes_scaled;
use crate::ingest::walk::{distinct_roots, walk, Candidate, Found, WalkOptions};
use crate::{Clip, Error};

/// Images embedded together by default. Measured (`BENCHMARKS.md`, "Ingest speed"): the image
/// tower's CPU time per image falls by 27% from batch 1 to 8 and by 4% more up to 32, and
/// ingest overlapped decoding with the tower best at 8 of 2, 4 and 8; larger batches only
/// lengthen the unoverlapped first and last batch and hold more pixels.
pub const DEFAULT_BATCH_SIZE: usize = 8;

/// How to ingest.
#[derive(Debug, Clone, Copy)]
pub struct IngestOptions {
    /// How to walk the folders.
    pub walk: WalkOptions,
    /// Images embedded together; see `BENCHMARKS.md` for how the default was chosen.
    pub batch_size: usize,
}

impl Default for IngestOptions {
    fn default() -> Self {
        Self {
            walk: WalkOptions::default(),
            batch_size: DEFAULT_BATCH_SIZE,
        }
    }
}

/// What the pipeline reports while it runs, for progress bars and logs.
#[derive(Debug)]
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
    /// Files that were indexed but are gone from disk, removed from the index.
    pub removed: usize,
    /// Files and folders skipped with an error (listed by `xsearch status`).
    pub failed: usize,
    /// Video files found and skipped (counted, not recorded as failures).
    pub videos: usize,
}

/// Indexes the image files under `roots` (folders or files) into `index`.
///
/// The folders are walked twice: first to count the work (for progress) and to report what
/// cannot be walked, then to feed the pipeline, each file judged again as it comes. Nothing is
/// kept per file in between, so memory does not grow with the folder.
pub fn ingest(
    clip: &Clip,
    index: &Index,
    roots: &[PathBuf],
    options: &IngestOptions,
    observer: &dyn IngestObserver,
) -> Result<IngestSummary, Error> {
    let roots = distinct_roots(roots, options.walk);
    let mut summary = IngestSummary::default();
    let mut pending = 0;
    for found in walk(&roots, options.walk) {
        match found {
            Ok(Found::Video(_)) => summary.videos += 1,
            Ok(Found::Image(candidate)) => {
                summary.found += 1;
                match needs_work(index, &candidate)? {
                    Some(_) => pending += 1,
                    None => summary.unchanged += 1,
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
    observer.event(IngestEvent::Walked {
        pending,
        unchanged: summary.unchanged,
    });
    if pending > 0 {
        let work = walk(&roots, options.walk)
            .filter_map(|found| match found {
                Ok(Found::Image(candidate)) => Some(candidate),
                Ok(Found::Video(_)) | Err(_) => None,
            })
            .filter_map(|candidate| match needs_work(index, &candidate) {
                Ok(Some(updated)) => Some(Ok((candidate, updated))),
                Ok(None) => None,
                Err(e) => Some(Err(e)),
            });
        embed(
            clip,
            index,
            work,
            options.batch_size.max(1),
            observer,
            &mut summary,
        )?;
    }
    summary.removed = prune(index, &roots)?;
    index.checkpoint()?;
    Ok(summary)
}

/// `None` when the file is indexed with the same size and modification time; otherwise
/// whether it is indexed at all (a changed file) or new.
fn needs_work(index: &Index, candidate: &Candidate) -> Result<Option<bool>, Error> {
    let previous = index.images().get(&path_key(&candidate.path))?;
    let unchanged = previous
        .as_ref()
        .and_then(|r| r.file.as_ref())
        .is_some_and(|f| f.size == candidate.size && f.mtime_ns == candidate.mtime_ns);
    Ok((!unchanged).then_some(previous.is_some()))
}

/// One file, made ready for the model by the producer.
enum Prepared {
    /// Preprocessed pixels, ready for the image tower.
    Pixels(Vec<f32>),
    /// Its content is already indexed under another path: this vector can be reused.
    Reused(Vec<f32>),
    /// It could not be read or decoded.
    Failed(String),
}

struct PreparedFile {
    candidate: Candidate,
    updated: bool,
    hash: Vec<u8>,
    prepared: Prepared,
}

/// Embeds and commits the files of `work` (each with whether it is an update), a batch at a
/// time.
fn embed(
    clip: &Clip,
    index: &Index,
    mut work: impl Iterator<Item = Result<(Candidate, bool), Error>> + Send,
    batch_size: usize,
    observer: &dyn IngestObserver,
    summary: &mut IngestSummary,
) -> Result<(), Error> {
    // Load the model before the producer starts, so a broken model fails the run at once.
    let pixel_len = clip.pixel_len()?;
    std::thread::scope(|scope| {
        let (sender, receiver) = mpsc::sync_channel::<Vec<PreparedFile>>(1);
        let producer = scope.spawn(move || -> Result<(), Error> {
            loop {
                let chunk = work
                    .by_ref()
                    .take(batch_size)
                    .collect::<Result<Vec<_>, Error>>()?;
                if chunk.is_empty() {
                    return Ok(());
                }
                let batch = chunk
                    .into_par_iter()
                    .map(|(candidate, updated)| prepare(clip, index, candidate, updated))
                    .collect::<Result<Vec<_>, Error>>()?;
                if sender.send(batch).is_err() {
                    return Ok(()); // the consumer stopped on an error; it reports it
                }
            }
        });
        for batch in receiver {
            commit(clip, index, batch, pixel_len, observer, summary)?;
        }
        producer
            .join()
            .expect("the ingest producer thread panicked")
    })
}

fn prepare(
    clip: &Clip,
    index: &Index,
    candidate: Candidate,
    updated: bool,
) -> Result<PreparedFile, Error> {
    let mut file = PreparedFile {
        candidate,
        updated,
        hash: Vec::new(),
        prepared: Prepared::Failed(String::new()),
    };
    let bytes = match std::fs::read(&file.candidate.path) {
        Ok(bytes) => bytes,
        Err(err) => {
            file.prepared = Prepared::Failed(format!("cannot read: {err}"));
            return Ok(file);
        }
    };
    file.hash = blake3::hash(&bytes).as_bytes().to_vec();
    if let Some((_, vector)) = index.images().lookup_hash(&file.hash)? {
        file.prepared = Prepared::Reused(vector);
        return Ok(file);
    }
    file.prepared = match decode_bytes_scaled(&bytes, clip.decode_limits(), clip.min_source_side())
    {
        Ok(image) => {
            drop(bytes);
            Prepared::Pixels(clip.preprocess(&image)?)
        }
        // The record is keyed by the path: store the reason alone.
        Err(err) => Prepared::Failed(err.reason()),
    };
    Ok(file)
}

fn commit(
    clip: &Clip,
    index: &Index,
    batch: Vec<PreparedFile>,
    pixel_len: usize,
    observer: &dyn IngestObserver,
    summary: &mut IngestSummary,
) -> Result<(), Error> {
    let mut pixels = Vec::with_capacity(batch.len() * pixel_len);
    for file in &batch {
        if let Prepared::Pixels(p) = &file.prepared {
            pixels.extend_from_slice(p);
        }
    }
    let mut embeddings = clip.embed_pixels(pixels)?.into_iter();
    let mut entries = Vec::with_capacity(batch.len());
    let mut succeeded = Vec::with_capacity(batch.len());
    for file in batch {
        let key = path_key(&file.candidate.path);
        let vector = match file.prepared {
            Prepared::Pixels(_) => embeddings.next().expect("one embedding per image"),
            Prepared::Reused(vector) => {
                summary.reused += 1;
                vector
            }
            Prepared::Failed(reason) => {
                summary.failed += 1;
                index.record_failure(&key, &reason)?;
                observer.event(IngestEvent::Skipped {
                    path: &file.candidate.path,
                    reason: &reason,
                });
                continue;
            }
        };
        if file.updated {
            summary.updated += 1;
        } else {
            summary.added += 1;
        }
        succeeded.push(key.clone());
        entries.push(Entry {
            key,
            file: Some(FileStamp {
                size: file.candidate.size,
                mtime_ns: file.candidate.mtime_ns,
                hash: file.hash,
            }),
            vector,
        });
    }
    let files = entries.len();
    index.images().upsert_batch(entries)?;
    for key in &succeeded {
        index.clear_failure(key)?;
    }
    observer.event(IngestEvent::Committed { files });
    Ok(())
}

/// Removes the records of files under `roots` that are no longer on disk. A root that is
/// missing altogether (an unplugged drive) prunes nothing: its photos are not gone.
fn prune(index: &Index, roots: &[PathBuf]) -> Result<usize, Error> {
    let present: Vec<&PathBuf> = roots.iter().filter(|r| r.exists()).collect();
    let mut gone = Vec::new();
    for item in index.images().iter() {
        let (key, _) = item?;
        let path = key_path(&key);
        if present.iter().any(|root| path.starts_with(root)) && !path.is_file() {
            gone.push(key);
        }
    }
    if !gone.is_empty() {
        index.images().remove(&gone)?;
    }
    Ok(gone.len())
}

/// The index key of a path: its bytes as the OS gives them, so names that are not UTF-8 survive.
pub fn path_key(path: &Path) -> Vec<u8> {
    path.as_os_str().as_encoded_bytes().to_vec()
}

/// The path of an index key, inverse of [`path_key`].
pub fn key_path(key: &[u8]) -> PathBuf {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        PathBuf::from(std::ffi::OsStr::from_bytes(key))
    }
    #[cfg(not(unix))]
    {
        PathBuf::from(String::from_utf8_lossy(key).into_owned())
    }
}
