//! Deleting graph files that no list names any more: only files this index wrote.

use super::build::store_list;
use super::{Graphs, WRITING};
use crate::store::Store;
use crate::sync::write;
use crate::IndexError;

impl Graphs {
    /// Deletes the files this collection wrote that its list no longer names: segments
    /// replaced by a merge, a file half-written by a killed run, format 1's graph snapshots.
    /// A file it did not write (per its meta) stays, whatever its name. Called after the read
    /// view that stops naming them is published, so no reader is sent to a deleted file.
    pub fn remove_unreferenced_files(&self, store: &Store) -> Result<(), IndexError> {
        let dir = &self.config.dir;
        let list = self.list();
        let being_written = store
            .meta_json::<Option<String>>(WRITING)?
            .and_then(Result::ok)
            .flatten();
        let mut doomed: Vec<String> = list
            .written
            .iter()
            .filter(|name| !list.segments.iter().any(|s| &s.file == *name))
            .cloned()
            .collect();
        if let Some(name) = being_written {
            if !list.segments.iter().any(|s| s.file == name) && !doomed.contains(&name) {
                doomed.push(name);
            }
        }
        if doomed.is_empty() {
            return Ok(());
        }
        for name in &doomed {
            let path = dir.join(name);
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(IndexError::io(path, e))
                }
                _ => {}
            }
        }
        store.set_meta_json(WRITING, &None::<String>, &[])?;
        let mut state = write(&self.state);
        state.list.written.retain(|name| !doomed.contains(name));
        store_list(store, &state.list)?;
        store.flush()
    }
}
