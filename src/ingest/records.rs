//! Records made apart from an index, for ingest spread over machines: files embedded into
//! [`FileRecord`]s by the ingest pipeline's image stage without an index
//! ([`crate::Engine::embed_paths`], what `xsearch embed --stdin` runs on each worker), and such
//! records committed into an index through the pipeline's one writer of records
//! ([`crate::Engine::import`]).

use std::path::PathBuf;
use std::time::Instant;

use jiff::tz::TimeZone;
use xsearch_index::{Backend, FileStamp, ImageMeta};

use crate::clip::DEFAULT_BATCH_SIZE;
use crate::engine::Failure;
use crate::ingest::pipeline::{
    embed_batches, read_file_facts, write_batch, FileFacts, IngestObserver, IngestOptions,
    IngestSummary, NoPixels, PreparedFile,
};
use crate::ingest::walk::Candidate;
use crate::keys::path_key;
use crate::{Clip, Embedding, Error};

/// One image file embedded apart from an index: everything the index's record of it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct FileRecord {
    /// Absolute path (links not resolved, as `xsearch index` names files).
    pub path: PathBuf,
    /// Size in bytes when it was read.
    pub size: u64,
    /// Modification time when it was read, in nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// BLAKE3 hash of its bytes (32 bytes), which finds renamed and duplicated files.
    pub hash: Vec<u8>,
    /// What it says about itself (capture time, camera, pixel size, GPS position).
    pub meta: ImageMeta,
    /// Its L2-normalised embedding.
    pub embedding: Embedding,
}

/// The model that embeds, as records name it: an index refuses another model's records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    /// The model's fingerprint (see [`crate::model::ModelFiles::fingerprint`]).
    pub fingerprint: String,
    /// Where it came from: a hub id, or its directory made absolute.
    pub source: String,
    /// Width of its embeddings.
    pub dim: usize,
}

/// Records committed together by [`import`]: there is nothing to embed, so a batch is as
/// large as a metadata backfill's, and a kill loses at most that much (cheap) work.
const IMPORT_BATCH: usize = 64;

/// Reads, decodes and embeds the files of `paths` as ingest does (the same image stage, in
/// batches of [`DEFAULT_BATCH_SIZE`], decoding overlapped with the tower), without an index:
/// no file is skipped as unchanged and no vector is reused. `sink` gets each batch in the
/// order of `paths`, a record or a failure per path.
pub(crate) fn embed_paths<E: From<Error> + Send>(
    clip: &Clip,
    paths: impl Iterator<Item = Result<PathBuf, E>> + Send,
    mut sink: impl FnMut(Vec<Result<FileRecord, Failure>>) -> Result<(), E>,
) -> Result<(), E> {
    // EXIF times without an offset are read in this machine's zone, as ingest reads them.
    let zone = TimeZone::system();
    embed_batches(
        clip,
        DEFAULT_BATCH_SIZE,
        paths,
        |path| match Candidate::at(&path) {
            Ok(candidate) => read_file_facts(clip, None, &zone, candidate, false),
            Err(err) => Ok(unreadable(err.path, err.reason)),
        },
        |batch| {
            let records = batch
                .into_iter()
                .map(|(facts, vector)| match vector {
                    Ok(embedding) => Ok(FileRecord {
                        path: facts.candidate.path,
                        size: facts.candidate.size,
                        mtime_ns: facts.candidate.mtime_ns,
                        hash: facts.hash,
                        meta: facts.meta,
                        embedding,
                    }),
                    Err(NoPixels::Failed(reason)) => Err(Failure {
                        path: facts.candidate.path,
                        reason,
                    }),
                    Err(NoPixels::Reused(_)) => unreachable!("no index, so no vector to reuse"),
                })
                .collect();
            sink(records)
        },
    )
}

/// A file that could not even be looked at, as the image stage reports one it cannot read.
fn unreadable(path: PathBuf, reason: String) -> PreparedFile {
    PreparedFile {
        facts: file_facts(path, 0, 0, Vec::new(), ImageMeta::default(), false),
        pixels: Err(NoPixels::Failed(reason)),
    }
}

fn file_facts(
    path: PathBuf,
    size: u64,
    mtime_ns: i64,
    hash: Vec<u8>,
    meta: ImageMeta,
    updated: bool,
) -> FileFacts {
    FileFacts {
        candidate: Candidate {
            path,
            size,
            mtime_ns,
        },
        updated,
        hash,
        meta,
    }
}

/// Commits `records`, embedded with the model `fingerprint` names, into `index`, whose vectors
/// are of the model `model` names, in batches
/// through ingest's writer of records, checkpointing as ingest does. Idempotent: a record the
/// index holds unchanged (same size, modification time and content hash) is skipped and
/// counted as unchanged; a changed one replaces the old. A failure is recorded as ingest
/// records one, and removes the record of an older version of the file.
pub(crate) fn import<E: From<Error>>(
    index: &dyn Backend,
    model: &str,
    fingerprint: &str,
    records: impl Iterator<Item = Result<Result<FileRecord, Failure>, E>>,
    options: &IngestOptions,
    observer: &dyn IngestObserver,
) -> Result<IngestSummary, E> {
    if fingerprint != model {
        return Err(Error::ForeignRecords {
            path: index.location().to_path_buf(),
            records: fingerprint.to_owned(),
            index: model.to_owned(),
        }
        .into());
    }
    let mut summary = IngestSummary::default();
    let mut batch: Vec<(FileFacts, Result<Vec<f32>, String>)> = Vec::new();
    let mut last_checkpoint = Instant::now();
    let mut flush = |batch: &mut Vec<_>, summary: &mut IngestSummary| -> Result<(), Error> {
        write_batch(index, std::mem::take(batch), observer, summary)?;
        if last_checkpoint.elapsed() >= options.checkpoint_every {
            index.checkpoint()?;
            last_checkpoint = Instant::now();
        }
        Ok(())
    };
    for record in records {
        let record = record?;
        summary.found += 1;
        let path = match &record {
            Ok(record) => &record.path,
            Err(failure) => &failure.path,
        };
        // The same file twice in a stream: the first is committed before the second is
        // judged against it.
        if batch.iter().any(|(facts, _)| facts.candidate.path == *path) {
            flush(&mut batch, &mut summary)?;
        }
        let held = index.images().get(&path_key(path)).map_err(Error::from)?;
        batch.push(match record {
            Ok(record) => {
                let stamp = FileStamp {
                    size: record.size,
                    mtime_ns: record.mtime_ns,
                    hash: record.hash,
                };
                if held.as_ref().and_then(|held| held.file.as_ref()) == Some(&stamp) {
                    summary.unchanged += 1;
                    continue;
                }
                let FileStamp {
                    size,
                    mtime_ns,
                    hash,
                } = stamp;
                let facts = file_facts(
                    record.path,
                    size,
                    mtime_ns,
                    hash,
                    record.meta,
                    held.is_some(),
                );
                (facts, Ok(record.embedding))
            }
            Err(failure) => {
                let facts = file_facts(
                    failure.path,
                    0,
                    0,
                    Vec::new(),
                    ImageMeta::default(),
                    held.is_some(),
                );
                (facts, Err(failure.reason))
            }
        });
        if batch.len() >= IMPORT_BATCH {
            flush(&mut batch, &mut summary)?;
        }
    }
    flush(&mut batch, &mut summary)?;
    index.checkpoint().map_err(Error::from)?;
    Ok(summary)
}
