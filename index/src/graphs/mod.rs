//! A collection's graphs, derived from the store: sealed *segments* (immutable files, mapped)
//! and the *tail*, the hnsw_rs graph in memory that new vectors go into.
//!
//! The tail is sealed into a segment file when it reaches [`IndexOptions::segment_points`]
//! points and at every checkpoint; so a writer holds at most one segment's graph in memory
//! whatever the collection's size, opening never loads an hnsw_rs graph, and a run that adds
//! ten photos to a large library writes one small file. Checkpoints merge small segments and
//! compact those full of tombstones ([`merge`]). A segment that is missing or damaged is
//! rebuilt from the store when the collection opens ([`repair`]), as is any vector that no
//! segment holds (committed by a run that stopped before its checkpoint). Files no list names
//! any more are deleted ([`gc`]).

mod build;
mod gc;
pub(crate) mod legacy;
pub(crate) mod list;
pub(crate) mod merge;
mod repair;
pub(crate) mod tail;

use std::path::PathBuf;
use std::sync::RwLock;

use list::SegmentList;
use tail::Graph;

use crate::filter::Admit;
use crate::segment::Segment;
use crate::sync::read;
use crate::types::{HnswParams, IndexOptions};
use crate::Id;

/// The meta key (after the collection's prefix) of the segment list, JSON.
const LIST: &str = "graphs";
/// The meta key of the segment file being written (JSON), so a kill leaves a file we know.
const WRITING: &str = "writing";
/// Where builds before the JSON list kept it, in bincode; read once, then removed.
const OLD_LIST: &str = "segments";

/// What the graphs of a collection are built with.
#[derive(Debug, Clone)]
pub(crate) struct GraphConfig {
    /// The collection's name: the prefix of its segment files.
    pub name: &'static str,
    pub dir: PathBuf,
    pub dim: usize,
    pub params: HnswParams,
    pub options: IndexOptions,
}

/// A collection's graphs: searches read them while a writer seals and merges.
pub(crate) struct Graphs {
    config: GraphConfig,
    state: RwLock<GraphState>,
}

/// What searches run on.
struct GraphState {
    /// What meta says about the segments.
    list: SegmentList,
    /// The segments themselves, in the order of `list.segments`.
    segments: Vec<Segment>,
    /// Vectors committed since the last seal, in this process.
    tail: Graph,
}

impl Graphs {
    /// Points in the graphs (segments and tail), tombstones included.
    pub fn points(&self) -> usize {
        let state = read(&self.state);
        state.segments.iter().map(Segment::len).sum::<usize>() + state.tail.len()
    }

    /// Sealed segments.
    pub fn segment_count(&self) -> usize {
        read(&self.state).segments.len()
    }

    /// Points in the tail.
    pub fn unsealed(&self) -> usize {
        read(&self.state).tail.len()
    }

    /// The list of segments as meta stores it.
    pub fn list(&self) -> SegmentList {
        read(&self.state).list.clone()
    }

    /// The `k` nearest admitted points of every graph, as `(id, score)`, unordered.
    pub fn search(&self, query: &[f32], k: usize, ef: usize, admit: &Admit<'_>) -> Vec<(Id, f32)> {
        let state = read(&self.state);
        let mut found = state.tail.search(query, k, ef, admit);
        for segment in &state.segments {
            found.extend(segment.search(query, k, ef, admit));
        }
        found
    }

    /// Inserts committed points into the tail; returns whether it is full (to be sealed).
    pub fn insert(&self, points: &[(Id, Vec<f32>)]) -> bool {
        let state = read(&self.state);
        state.tail.insert(points);
        state.tail.len() >= self.config.options.segment_points
    }
}
