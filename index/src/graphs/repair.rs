//! Opening a collection's graphs: mapping the segments meta lists, and inserting every live
//! vector that no usable segment holds into new ones (those of missing or damaged segments,
//! and those committed after the last seal).

use std::sync::RwLock;

use super::build::store_list;
use super::legacy;
use super::list::{OldSegmentList, SegmentList};
use super::tail::Graph;
use super::{GraphConfig, GraphState, Graphs, LIST, OLD_LIST};
use crate::ids::IdSet;
use crate::segment::Segment;
use crate::store::Store;
use crate::sync::{read, write};
use crate::types::GraphStatus;
use crate::{Id, IndexError};

impl Graphs {
    /// Maps the segments meta lists and repairs what they lack; each stored id is checked to
    /// be in exactly one segment. Returns the graphs, how they came to be, and whether the
    /// list changed (so files it no longer names may be deleted).
    pub fn open(
        config: GraphConfig,
        store: &Store,
        live: &RwLock<IdSet>,
        converting: bool,
    ) -> Result<(Graphs, GraphStatus, bool), IndexError> {
        let graphs = Graphs {
            state: RwLock::new(GraphState {
                list: SegmentList::default(),
                segments: Vec::new(),
                tail: Graph::new(config.params, config.options.segment_points),
            }),
            config,
        };
        let (mut list, mut problem, upgraded) = stored_list(store, converting)?;
        let mut covered = IdSet::default();
        let mut segments = Vec::new();
        let (dir, dim) = (&graphs.config.dir, graphs.config.dim);
        list.segments.retain(|info| {
            let path = dir.join(&info.file);
            let loaded = Segment::load(&path, info.checksum, dim).map_err(|e| e.to_string());
            let loaded = loaded.and_then(|segment| {
                // Marking stops at the first id held twice; such a segment is dropped whole,
                // so unmark what it marked.
                let marked = segment
                    .ids()
                    .iter()
                    .take_while(|&&id| covered.insert(id))
                    .count();
                if marked == segment.len() {
                    return Ok(segment);
                }
                segment.ids()[..marked]
                    .iter()
                    .for_each(|&id| covered.remove(id));
                Err(format!(
                    "{}: holds ids another segment holds",
                    path.display()
                ))
            });
            match loaded {
                Ok(segment) => {
                    segments.push(segment);
                    true
                }
                Err(reason) => {
                    problem.get_or_insert(reason);
                    false
                }
            }
        });
        // Format 1 views load as segments, but without the half-precision copy that searches
        // walk on: write them again in the current layout (no graph is rebuilt).
        let mut rewritten = false;
        for (i, segment) in segments.iter_mut().enumerate() {
            if segment.is_legacy() {
                let (info, rewrite) = graphs.write_segment(store, &mut list, &*segment)?;
                (list.segments[i], *segment) = (info, rewrite);
                rewritten = true;
            }
        }
        let orphans: Vec<Id> = read(live)
            .iter()
            .filter(|&id| !covered.contains(id))
            .collect();
        drop(covered);
        let built = graphs.build(store, &mut list, &orphans)?;
        let changed = !built.is_empty() || problem.is_some() || converting || rewritten || upgraded;
        for (info, segment) in built {
            list.segments.push(info);
            segments.push(segment);
        }
        let status = match problem {
            Some(reason) => GraphStatus::Rebuilt {
                reason,
                inserted: orphans.len(),
            },
            None if !orphans.is_empty() => GraphStatus::Updated {
                inserted: orphans.len(),
            },
            None if segments.is_empty() => GraphStatus::Empty,
            None => GraphStatus::Loaded,
        };
        if changed {
            store_list(store, &list)?;
            store.flush()?;
        }
        {
            let mut state = write(&graphs.state);
            state.list = list;
            state.segments = segments;
        }
        Ok((graphs, status, changed))
    }
}

/// The list of segments in meta; why it cannot be used if it cannot (segments are derived
/// data: an unreadable list means rebuilding them, not an error); and whether it was found
/// in an older build's encoding (to be stored again in the current one).
fn stored_list(
    store: &Store,
    converting: bool,
) -> Result<(SegmentList, Option<String>, bool), IndexError> {
    let unreadable = |e: String| {
        (
            SegmentList::default(),
            Some(format!("the list of segments is unreadable: {e}")),
        )
    };
    if let Some(list) = store.meta_json::<SegmentList>(LIST)? {
        let (list, problem) = list.map_or_else(unreadable, |list| (list, None));
        return Ok((list, problem, false));
    }
    if let Some(list) = store.meta_bincode::<OldSegmentList>(OLD_LIST)? {
        let (list, problem) = list.map_or_else(unreadable, |list| (list.into(), None));
        return Ok((list, problem, true));
    }
    if !converting {
        return Ok((SegmentList::default(), None, false));
    }
    // Format 1's files are ours to delete once converted.
    let written = legacy::files_written(store)?;
    let view = store.meta_raw(legacy::VIEW)?;
    Ok(match view.as_deref().and_then(legacy::view_as_segment) {
        Some(adopted) => (
            SegmentList {
                files_written: 0,
                segments: vec![adopted],
                written,
            },
            None,
            false,
        ),
        None => (
            SegmentList {
                written,
                ..SegmentList::default()
            },
            Some("format 1's graph snapshot is not read by format 2".into()),
            false,
        ),
    })
}
