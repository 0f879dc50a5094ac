//! The list of a collection's segments, as meta stores it (JSON), and the names of the files
//! the index wrote: the only files it ever deletes.

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
    /// Files in the graph directory this index wrote and has not deleted yet (segments, and
    /// format 1's files when converting): the only ones it may delete. A file a user copied
    /// in under a name like ours is not here, and stays.
    #[serde(default)]
    pub written: Vec<String>,
}

/// The list as builds before the JSON one stored it (bincode reads fields in this order).
#[derive(Deserialize)]
pub(crate) struct OldSegmentList {
    files_written: u64,
    segments: Vec<SegmentInfo>,
}

impl From<OldSegmentList> for SegmentList {
    /// Those builds did not record the files they wrote: the listed segments are the ones
    /// known to be ours (a file a killed run of theirs left half-written stays).
    fn from(old: OldSegmentList) -> SegmentList {
        SegmentList {
            files_written: old.files_written,
            written: old.segments.iter().map(|s| s.file.clone()).collect(),
            segments: old.segments,
        }
    }
}

impl SegmentList {
    /// A file name for a new segment of `collection` that nothing in `dir` has yet, recorded
    /// as written by us.
    pub fn fresh_file(&mut self, collection: &str, dir: &Path) -> String {
        loop {
            let name = format!("{collection}-{}.seg", self.files_written);
            self.files_written += 1;
            if !dir.join(&name).exists() {
                self.written.push(name.clone());
                return name;
            }
        }
    }
}
