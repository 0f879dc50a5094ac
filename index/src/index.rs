//! An open index, as its one writer holds it: the store, both collections, the failures.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use sled::{Db, Tree};

use crate::collection::{Collection, Context};
use crate::graphs::legacy::finish_conversion;
use crate::store::codec::{decode, encode};
use crate::store::keys::{IMAGES, TEXTS};
use crate::store::meta::check_meta;
use crate::store::open_db;
use crate::types::{Failure, IndexOptions, IndexSpec, IndexStats, OpenReport};
use crate::{IndexError, FORMAT_VERSION};

/// An open index directory. Holding it locks the directory against other processes.
pub struct Index {
    path: PathBuf,
    spec: IndexSpec,
    db: Db,
    failures: Tree,
    images: Collection,
    texts: Collection,
    report: OpenReport,
}

impl Index {
    /// Opens (or creates) the index in `dir` with default options.
    pub fn open(dir: impl AsRef<Path>, spec: &IndexSpec) -> Result<Index, IndexError> {
        Index::open_with(dir, spec, IndexOptions::default())
    }

    /// Opens (or creates) the index in `dir`.
    ///
    /// Fails with [`IndexError::Locked`] if another process has it open,
    /// [`IndexError::ModelMismatch`] if it was built for another model or dimension, and
    /// [`IndexError::Incompatible`] if its format version is neither [`FORMAT_VERSION`] nor
    /// an older one this build converts. The segments are mapped, or repaired: see
    /// [`Index::open_report`].
    pub fn open_with(
        dir: impl AsRef<Path>,
        spec: &IndexSpec,
        options: IndexOptions,
    ) -> Result<Index, IndexError> {
        let path = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&path).map_err(|e| IndexError::io(&path, e))?;
        let db = open_db(&path)?;
        let tree = |name: &str| db.open_tree(name).map_err(|e| IndexError::store(&path, e));
        let meta = tree("meta")?;
        let failures = tree("failures")?;
        let (stored, found) = check_meta(&path, &meta, spec, options.hnsw)?;
        let converting = found != FORMAT_VERSION;
        let ctx = |names| {
            Collection::open(
                Context {
                    db: &db,
                    meta: &meta,
                    path: &path,
                    dim: spec.dim,
                    options,
                    params: stored.hnsw,
                    converting,
                },
                names,
            )
        };
        let (images, images_status, images_changed) = ctx(IMAGES)?;
        let (texts, texts_status, texts_changed) = ctx(TEXTS)?;
        if converting {
            finish_conversion(&path, &meta, [IMAGES, TEXTS])?;
        }
        for (collection, changed) in [(&images, images_changed), (&texts, texts_changed)] {
            if changed {
                collection.graphs().remove_unreferenced_files()?;
            }
        }
        Ok(Index {
            path,
            spec: spec.clone(),
            db,
            failures,
            images,
            texts,
            report: OpenReport {
                images: images_status,
                texts: texts_status,
                converted_from: converting.then_some(found),
            },
        })
    }

    /// The image collection (keys: path bytes).
    pub fn images(&self) -> &Collection {
        &self.images
    }

    /// The text collection (keys: UTF-8 texts).
    pub fn texts(&self) -> &Collection {
        &self.texts
    }

    /// How the graphs were obtained at open; repairs are worth a line on stderr.
    pub fn open_report(&self) -> &OpenReport {
        &self.report
    }

    /// The model and dimension of this index.
    pub fn spec(&self) -> &IndexSpec {
        &self.spec
    }

    /// The index directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Remembers that `key` (a path) could not be indexed. Durable at the next commit,
    /// checkpoint or close.
    pub fn record_failure(&self, key: &[u8], reason: &str) -> Result<(), IndexError> {
        let time_s = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let failure = Failure {
            reason: reason.to_string(),
            time_s,
        };
        self.failures
            .insert(key, encode(&failure))
            .map_err(|e| IndexError::store(&self.path, e))?;
        Ok(())
    }

    /// Forgets the failure of `key`; returns whether there was one.
    pub fn clear_failure(&self, key: &[u8]) -> Result<bool, IndexError> {
        let old = self
            .failures
            .remove(key)
            .map_err(|e| IndexError::store(&self.path, e))?;
        Ok(old.is_some())
    }

    /// Every recorded failure, in key order.
    pub fn failures(&self) -> Result<Vec<(Vec<u8>, Failure)>, IndexError> {
        self.failures
            .iter()
            .map(|item| {
                let (key, bytes) = item.map_err(|e| IndexError::store(&self.path, e))?;
                let failure = decode(&bytes).map_err(|e| IndexError::Corrupt {
                    path: self.path.clone(),
                    what: format!("failures: {e}"),
                })?;
                Ok((key.to_vec(), failure))
            })
            .collect()
    }

    /// Counts of both collections and of failures.
    pub fn stats(&self) -> Result<IndexStats, IndexError> {
        Ok(IndexStats {
            images: self.images.stats()?,
            texts: self.texts.stats()?,
            failures: self.failures.len(),
        })
    }

    /// Seals the vectors added since the last checkpoint into segments, merges small segments
    /// and compacts those with too many tombstones, and flushes everything. Call it at the end
    /// of an ingest run.
    pub fn checkpoint(&self) -> Result<(), IndexError> {
        self.images.checkpoint()?;
        self.texts.checkpoint()?;
        self.flush()?;
        // Segments replaced by merges, and files left half-written by a killed run.
        for collection in [&self.images, &self.texts] {
            collection.graphs().remove_unreferenced_files()?;
        }
        Ok(())
    }

    /// Makes everything written so far durable, without sealing the tails.
    pub fn flush(&self) -> Result<(), IndexError> {
        self.db
            .flush()
            .map_err(|e| IndexError::store(&self.path, e))?;
        Ok(())
    }

    /// Checkpoints and releases the directory.
    pub fn close(self) -> Result<(), IndexError> {
        self.checkpoint()
    }
}

// The CLI shares one index between its embedding and search threads.
const _: fn() = || {
    fn shareable<T: Send + Sync>() {}
    shareable::<Index>();
};
