//! Deleting graph files that no list names any more.

use std::path::PathBuf;

use super::{read, Graphs};
use crate::IndexError;

impl Graphs {
    /// Deletes this collection's graph files that meta does not list: segments replaced by a
    /// merge, files half-written by a killed run, and format 1's graph snapshots (all are
    /// named `<collection>-...`).
    pub fn remove_unreferenced_files(&self) -> Result<(), IndexError> {
        let dir = &self.config.dir;
        let keep: Vec<PathBuf> = read(&self.state)
            .list
            .segments
            .iter()
            .map(|info| dir.join(&info.file))
            .collect();
        let prefix = format!("{}-", self.config.name);
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(IndexError::io(dir, e)),
        };
        for entry in entries {
            let path = entry.map_err(|e| IndexError::io(dir, e))?.path();
            let ours = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix));
            if ours && !keep.contains(&path) {
                match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(IndexError::io(path, e))
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}
