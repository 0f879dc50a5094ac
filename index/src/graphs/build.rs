//! Building segments: sealing the tail, building segments from stored vectors (merges,
//! compactions, repairs), and recording each new list in meta before anything relies on it.

use std::sync::RwLock;

use super::list::{SegmentInfo, SegmentList};
use super::merge::{self, SegmentCounts};
use super::tail::Graph;
use super::{Graphs, LIST, OLD_LIST, WRITING};
use crate::exact::CHUNK;
use crate::ids::IdSet;
use crate::segment::{self, Nodes, Segment};
use crate::store::Store;
use crate::sync::{read, write};
use crate::{Id, IndexError};

impl Graphs {
    /// Builds segments from the stored vectors of `ids` (a new segment every
    /// [`IndexOptions::segment_points`](crate::IndexOptions::segment_points)) and writes their
    /// files.
    pub(super) fn build(
        &self,
        store: &Store,
        list: &mut SegmentList,
        ids: &[Id],
    ) -> Result<Vec<(SegmentInfo, Segment)>, IndexError> {
        let capacity = self.config.options.segment_points.max(1);
        let mut built = Vec::new();
        for part in ids.chunks(capacity) {
            let graph = Graph::new(self.config.params, part.len());
            for chunk in part.chunks(CHUNK) {
                let mut points = Vec::with_capacity(chunk.len());
                for &id in chunk {
                    let vector = store.vector(id)?.ok_or_else(|| {
                        store.corrupt(format!("{}: no vector for live id {id}", self.config.name))
                    })?;
                    points.push((id, vector));
                }
                graph.insert(&points);
            }
            built.push(self.write_segment(store, list, &graph)?);
        }
        Ok(built)
    }

    /// Writes `graph` (not empty) as a new segment file under a fresh name of `list`, and
    /// maps it back. The name is in meta (as the one being written) before the file exists,
    /// so a kill midway leaves a file the next open knows to delete.
    pub(super) fn write_segment(
        &self,
        store: &Store,
        list: &mut SegmentList,
        graph: &dyn Nodes,
    ) -> Result<(SegmentInfo, Segment), IndexError> {
        let dir = &self.config.dir;
        std::fs::create_dir_all(dir).map_err(|e| IndexError::io(dir, e))?;
        let file = list.fresh_file(self.config.name, dir);
        store.set_meta_json(WRITING, &Some(&file), &[])?;
        store.flush()?;
        let path = dir.join(&file);
        let failed = |message: String| IndexError::Segment {
            path: path.clone(),
            message,
        };
        let checksum = segment::write(graph, self.config.dim, &path)?
            .ok_or_else(|| failed("the graph is empty".into()))?;
        let segment =
            Segment::load(&path, checksum, self.config.dim).map_err(|e| failed(e.to_string()))?;
        Ok((SegmentInfo { file, checksum }, segment))
    }

    /// Seals the tail into a segment, if it holds any point. Writers call it holding the
    /// writer lock, so the tail cannot change meanwhile; searches go on during the write.
    pub fn seal_tail(&self, store: &Store) -> Result<(), IndexError> {
        let mut list = self.list();
        let sealed = {
            let state = read(&self.state);
            if state.tail.len() == 0 {
                return Ok(());
            }
            self.write_segment(store, &mut list, &state.tail)?
        };
        list.segments.push(sealed.0);
        store_list(store, &list)?;
        store.flush()?;
        let mut state = write(&self.state);
        state.list = list;
        state.segments.push(sealed.1);
        state.tail = Graph::new(self.config.params, self.config.options.segment_points);
        Ok(())
    }

    /// Rebuilds what the merge policy asks for (segments full of tombstones, runs of small
    /// segments), one rebuild at a time, until it asks for nothing.
    pub fn merge(&self, store: &Store, live: &RwLock<IdSet>) -> Result<(), IndexError> {
        while let Some(chosen) = self.next_rebuild(live) {
            self.rebuild(store, live, &chosen)?;
        }
        Ok(())
    }

    fn next_rebuild(&self, live: &RwLock<IdSet>) -> Option<Vec<usize>> {
        let state = read(&self.state);
        let live = read(live);
        let counts: Vec<SegmentCounts> = state
            .segments
            .iter()
            .map(|segment| SegmentCounts {
                nodes: segment.len(),
                live: segment
                    .ids()
                    .iter()
                    .filter(|&&id| live.contains(id))
                    .count(),
            })
            .collect();
        merge::next_rebuild(
            &counts,
            self.config.options.segment_points,
            self.config.options.compact_fraction,
        )
    }

    /// Replaces the segments at `chosen` (indices into the list) by segments built from
    /// their live vectors. The new files are listed before the old ones are deleted.
    fn rebuild(
        &self,
        store: &Store,
        live: &RwLock<IdSet>,
        chosen: &[usize],
    ) -> Result<(), IndexError> {
        let (mut list, ids) = {
            let state = read(&self.state);
            let live = read(live);
            let mut ids: Vec<Id> = chosen
                .iter()
                .flat_map(|&i| state.segments[i].ids())
                .copied()
                .filter(|&id| live.contains(id))
                .collect();
            ids.sort_unstable();
            (state.list.clone(), ids)
        };
        let built = self.build(store, &mut list, &ids)?;
        let keep = |i: &usize| !chosen.contains(i);
        let (new_infos, new_segments): (Vec<SegmentInfo>, Vec<Segment>) = built.into_iter().unzip();
        list.segments = (0..list.segments.len())
            .filter(keep)
            .map(|i| list.segments[i].clone())
            .chain(new_infos)
            .collect();
        // Meta first: until it is flushed, the old segments are the ones on record.
        store_list(store, &list)?;
        store.flush()?;
        let mut state = write(&self.state);
        let kept = std::mem::take(&mut state.segments)
            .into_iter()
            .enumerate()
            .filter(|(i, _)| keep(i))
            .map(|(_, segment)| segment);
        state.segments = kept.chain(new_segments).collect();
        state.list = list;
        Ok(())
    }
}

/// Stores `list` in meta (JSON; the bincode key of older builds goes). Not yet flushed.
pub(super) fn store_list(store: &Store, list: &SegmentList) -> Result<(), IndexError> {
    store.set_meta_json(LIST, list, &[OLD_LIST])
}
