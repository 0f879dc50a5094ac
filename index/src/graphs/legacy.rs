//! Format 1, read once to convert an index to format 2.
//!
//! Format 1 kept one hnsw_rs snapshot per collection (`<collection>.snapshot` in meta, files
//! `<collection>-<n>.hnsw.{graph,data}`) and, in its later builds, a search view beside it
//! (`<collection>.view`) in exactly the layout of a format 2 segment. Converting adopts the
//! view as the collection's first segment when there is one; every vector it does not hold is
//! inserted into a new segment, as after an interrupted run. The snapshot files are deleted.

use std::path::Path;

use serde::Deserialize;
use sled::Tree;

use super::list::SegmentInfo;
use crate::store::codec::decode;
use crate::store::keys::Names;
use crate::store::meta::META_FORMAT;
use crate::store::Store;
use crate::{IndexError, FORMAT_VERSION};

/// Format 1's meta keys (after the collection's prefix), removed by the conversion.
pub(crate) const KEYS: [&str; 2] = ["snapshot", VIEW];

/// The meta key of format 1's search view.
pub(crate) const VIEW: &str = "view";

/// Format 1's record of a search view (its fields, in their order, are what bincode reads).
#[derive(Deserialize)]
struct ViewInfo {
    file: String,
    /// The data generation the view covered. Format 2 needs no such thing: the ids in the
    /// file say what it covers, and ids are never reused.
    #[allow(dead_code)]
    generation: u64,
    checksum: (u32, u64),
}

/// Format 1's record of a graph snapshot: its leading fields, all that conversion needs
/// (bincode reads fields in order and ignores what follows).
#[derive(Deserialize)]
struct SnapshotInfo {
    /// Read only to get past it (bincode has no field names).
    _seq: u64,
    /// hnsw_rs's basename: files `<basename>.hnsw.graph` and `.hnsw.data`.
    basename: String,
}

/// The files a format 1 collection wrote (its snapshot's and its view's), as its meta
/// records them.
pub(crate) fn files_written(store: &Store) -> Result<Vec<String>, IndexError> {
    let mut files = Vec::new();
    if let Some(Ok(snapshot)) = store.meta_bincode::<SnapshotInfo>("snapshot")? {
        for ext in ["hnsw.graph", "hnsw.data"] {
            files.push(format!("{}.{ext}", snapshot.basename));
        }
    }
    if let Some(Ok(view)) = store.meta_bincode::<ViewInfo>(VIEW)? {
        files.push(view.file);
    }
    Ok(files)
}

/// The segment that a format 1 view record describes, if it decodes. Whether the file is
/// intact is checked when it is loaded, as for any segment.
pub(crate) fn view_as_segment(bytes: &[u8]) -> Option<SegmentInfo> {
    let view: ViewInfo = decode(bytes).ok()?;
    Some(SegmentInfo {
        file: view.file,
        checksum: view.checksum,
    })
}

/// Ends a conversion once both collections have stored their segment lists: drops the old
/// format's meta keys and records the new version, atomically. A conversion cut short runs
/// again on the next open, and picks up the segment lists already stored.
pub(crate) fn finish_conversion(
    path: &Path,
    meta: &Tree,
    collections: [Names; 2],
) -> Result<(), IndexError> {
    let mut batch = sled::Batch::default();
    for names in collections {
        for key in KEYS {
            batch.remove(names.meta_key(key));
        }
    }
    batch.insert(META_FORMAT, &FORMAT_VERSION.to_be_bytes());
    meta.apply_batch(batch)
        .and_then(|()| meta.flush().map(drop))
        .map_err(|e| IndexError::store(path, e))
}
