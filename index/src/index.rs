//! An open index, as its one writer holds it: the store, both collections, the failures.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use sled::{Db, Tree};

use crate::collection::{Collection, Context};
use crate::graphs::legacy::finish_conversion;
use crate::reader::now_ms;
use crate::store::codec::{decode, encode};
use crate::store::keys::{IMAGES, TEXTS};
use crate::store::meta::{check_meta, rewrite_spec, StoredSpec};
use crate::store::open_db;
use crate::sync::lock;
use crate::types::{Failure, IndexOptions, IndexSpec, IndexStats, OpenReport};
use crate::view::{self, Item};
use crate::{IndexError, FORMAT_VERSION};

/// An open index directory. Holding it locks the directory against other processes.
pub struct Index {
    path: PathBuf,
    spec: IndexSpec,
    /// What meta holds about the index; the model source can change.
    stored: Mutex<StoredSpec>,
    /// The header of the view last published (`None` when none is readable).
    published: Mutex<Option<view::Header>>,
    /// Failures were recorded or cleared since that view.
    failures_changed: AtomicBool,
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
        refuse_foreign(&path)?;
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
        let published = view::read_header(&path).ok();
        let index = Index {
            published: Mutex::new(published),
            failures_changed: AtomicBool::new(false),
            path,
            spec: spec.clone(),
            stored: Mutex::new(stored),
            db,
            failures,
            images,
            texts,
            report: OpenReport {
                images: images_status,
                texts: texts_status,
                converted_from: converting.then_some(found),
            },
        };
        // Readers see only what is published: publish unless the view already shows this
        // state (a clean reopen writes nothing).
        if images_changed || texts_changed || !index.view_is_current()? {
            index.publish()?;
        }
        for collection in [&index.images, &index.texts] {
            collection.remove_unreferenced_files()?;
        }
        Ok(index)
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

    /// Where the model came from, as recorded by [`Index::set_model_source`]; `None` for an
    /// index that never recorded it (older ones). Read without a writer: [`crate::inspect`].
    pub fn model_source(&self) -> Option<String> {
        lock(&self.stored).model_source.clone()
    }

    /// Records where the model came from (a hub id, or an absolute directory) beside its
    /// fingerprint: durable when this returns, in the read view from the next checkpoint.
    /// The fingerprint alone still decides whether a model matches the index.
    pub fn set_model_source(&self, source: &str) -> Result<(), IndexError> {
        let mut stored = lock(&self.stored);
        if stored.model_source.as_deref() == Some(source) {
            return Ok(());
        }
        let updated = StoredSpec {
            model_source: Some(source.to_string()),
            ..stored.clone()
        };
        let meta = self
            .db
            .open_tree("meta")
            .map_err(|e| IndexError::store(&self.path, e))?;
        rewrite_spec(&meta, &updated).map_err(|e| IndexError::store(&self.path, e))?;
        *stored = updated;
        Ok(())
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
        self.failures_changed.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Forgets the failure of `key`; returns whether there was one.
    pub fn clear_failure(&self, key: &[u8]) -> Result<bool, IndexError> {
        let old = self
            .failures
            .remove(key)
            .map_err(|e| IndexError::store(&self.path, e))?;
        if old.is_some() {
            self.failures_changed.store(true, Ordering::SeqCst);
        }
        Ok(old.is_some())
    }

    /// The recorded failure of `key`, if any.
    pub fn failure(&self, key: &[u8]) -> Result<Option<Failure>, IndexError> {
        let Some(bytes) = self
            .failures
            .get(key)
            .map_err(|e| IndexError::store(&self.path, e))?
        else {
            return Ok(None);
        };
        decode(&bytes).map(Some).map_err(|e| IndexError::Corrupt {
            path: self.path.clone(),
            what: format!("failures: {e}"),
        })
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
    ///
    /// Then publishes the read view, so [`Reader`](crate::Reader)s opened from now on see
    /// everything committed before it, and only then deletes the segment files merges
    /// replaced (the old view named them). How fresh readers are is how often this runs.
    pub fn checkpoint(&self) -> Result<(), IndexError> {
        // One moment for both collections: no batch lands between sealing and publishing.
        let _images = self.images.lock_writer();
        let _texts = self.texts.lock_writer();
        self.images.seal_and_merge()?;
        self.texts.seal_and_merge()?;
        self.flush()?;
        // Publishing costs a pass over the records (0.6 s at 100k): skip it when the view
        // already shows this state, as after a read-only session.
        if !self.view_is_current()? {
            self.publish()?;
        }
        for collection in [&self.images, &self.texts] {
            collection.remove_unreferenced_files()?;
        }
        Ok(())
    }

    /// Writes the read view of the current state (see [`crate::view`]).
    fn publish(&self) -> Result<(), IndexError> {
        let mut published = lock(&self.published);
        let generation = published.as_ref().map_or(0, |h| h.generation) + 1;
        let header = view::Header {
            published_ms: now_ms(),
            generation,
            ..self.view_header()?
        };
        // Failures recorded from here on are not in this view.
        self.failures_changed.store(false, Ordering::SeqCst);
        view::publish(&self.path, &header, |sink| {
            for item in self.images.iter() {
                let (key, record) = item?;
                sink(Item::Image(&key, &record))?;
            }
            for item in self.images.metas() {
                let (id, meta) = item?;
                sink(Item::ImageMeta(id, &meta))?;
            }
            for item in self.texts.iter() {
                let (key, record) = item?;
                sink(Item::Text(&key, &record))?;
            }
            for (key, failure) in self.failures()? {
                sink(Item::Failure(&key, &failure))?;
            }
            Ok(())
        })?;
        *published = Some(header);
        Ok(())
    }

    /// The view header of the current state, without generation and time.
    fn view_header(&self) -> Result<view::Header, IndexError> {
        let stored = lock(&self.stored).clone();
        Ok(view::Header {
            format: FORMAT_VERSION,
            model: stored.model,
            dim: stored.dim,
            hnsw: stored.hnsw,
            model_source: stored.model_source,
            generation: 0,
            published_ms: 0,
            images: self.images.view_header()?,
            texts: self.texts.view_header()?,
            failures: self.failures.len(),
        })
    }

    /// Whether the published view shows the current state.
    fn view_is_current(&self) -> Result<bool, IndexError> {
        if self.failures_changed.load(Ordering::SeqCst) {
            return Ok(false);
        }
        let current = self.view_header()?;
        Ok(lock(&self.published).as_ref().is_some_and(|header| {
            view::Header {
                generation: header.generation,
                published_ms: header.published_ms,
                ..current
            } == *header
        }))
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

/// Refuses to write into `path` when it is a directory that holds files and no index (no
/// `store/`): a mistyped `--index` must not litter, or delete from, someone's folder.
fn refuse_foreign(path: &Path) -> Result<(), IndexError> {
    if path.join("store").is_dir() {
        return Ok(());
    }
    let holds_files = std::fs::read_dir(path).is_ok_and(|mut entries| entries.next().is_some());
    if holds_files {
        return Err(IndexError::NotAnIndex {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

// The CLI shares one index between its embedding and search threads.
const _: fn() = || {
    fn shareable<T: Send + Sync>() {}
    shareable::<Index>();
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Entry;

    fn spec() -> IndexSpec {
        IndexSpec {
            model: "m".into(),
            dim: 2,
        }
    }

    /// A kill while a segment file is written leaves the file, named in meta as the one
    /// being written: the next open deletes it. A stray of the same shape that meta does not
    /// name stays.
    #[test]
    fn a_segment_file_a_killed_run_was_writing_is_deleted_and_strays_stay() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(dir.path(), &spec()).unwrap();
        index
            .images()
            .upsert_batch(vec![Entry {
                key: b"a".to_vec(),
                file: None,
                vector: vec![1.0, 0.0],
                meta: None,
            }])
            .unwrap();
        index.close().unwrap();
        let graph = dir.path().join("graph");
        std::fs::write(graph.join("images-5.seg"), b"half-written").unwrap();
        std::fs::write(graph.join("images-6.seg"), b"a user's").unwrap();
        {
            let db = open_db(dir.path()).unwrap();
            let meta = db.open_tree("meta").unwrap();
            meta.insert("images.writing", &b"\"images-5.seg\""[..])
                .unwrap();
            db.flush().unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));

        let index = Index::open(dir.path(), &spec()).unwrap();
        assert!(!graph.join("images-5.seg").exists());
        assert_eq!(
            std::fs::read(graph.join("images-6.seg")).unwrap(),
            b"a user's"
        );
        assert_eq!(
            index.images().search(&[1.0, 0.0], 1, None).unwrap()[0].key,
            b"a"
        );
    }
}
