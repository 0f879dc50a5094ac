//! The list of a collection's segments, as meta stores it.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// Where a segment lives; the ids it holds are in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SegmentInfo {
    /// File name inside the graph directory.
    pub file: String,
    /// CRC-32 and length of the file.
    pub checksum: (u32, u64),
}

/// A collection's segments, as stored in `meta` (one value, so a change to the list is
/// atomic). Every live id is a node of exactly one of them, or in the tail.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SegmentList {
    /// Counts the segment files named so far, so that each name is fresh.
    pub files_written: u64,
    pub segments: Vec<SegmentInfo>,
}

/// A file name for a new segment of `collection` that nothing in `dir` has yet; `counter`
/// (a list's `files_written`) makes names fresh.
pub(crate) fn fresh_file(counter: &mut u64, collection: &str, dir: &Path) -> String {
    loop {
        let name = format!("{collection}-{counter}.seg");
        *counter += 1;
        if !dir.join(&name).exists() {
            return name;
        }
    }
}
