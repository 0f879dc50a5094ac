//! `Latest`: a reader that follows its writer. The engine opened read-only holds the reader of
//! the view published last; [`Latest::refresh`] swaps in a newer one when the writer has
//! published since, while searches in flight finish on the reader they started with.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use xsearch_index::{IndexSpec, Reader};

use crate::Error;

pub(crate) struct Latest {
    path: PathBuf,
    current: RwLock<Arc<Reader>>,
    /// Held while a refresh opens a newer reader, so concurrent refreshes open it once.
    refreshing: Mutex<()>,
}

impl Latest {
    pub(crate) fn new(reader: Reader) -> Self {
        Self {
            path: reader.path().to_path_buf(),
            current: RwLock::new(Arc::new(reader)),
            refreshing: Mutex::new(()),
        }
    }

    /// The index directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The reader of the newest view seen so far.
    pub(crate) fn get(&self) -> Arc<Reader> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Opens the published view if it is newer than the current reader's (a read of the view's
    /// small header when it is not), checked against `spec`. Whether it was newer.
    pub(crate) fn refresh(&self, spec: &IndexSpec) -> Result<bool, Error> {
        let Ok(_only_one) = self.refreshing.try_lock() else {
            // Another thread is opening the newer view right now.
            return Ok(false);
        };
        if stamp(&xsearch_index::inspect(&self.path)?) == stamp(self.get().info()) {
            return Ok(false);
        }
        let newer = Reader::open(&self.path)?;
        newer.check_spec(spec)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(newer);
        Ok(true)
    }
}

/// What changes with every publish of a view (the generation alone would repeat in an index
/// deleted and created again).
fn stamp(info: &xsearch_index::IndexInfo) -> (u64, SystemTime) {
    (info.generation, info.published)
}
