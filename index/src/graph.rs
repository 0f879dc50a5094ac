//! The HNSW graph being built (hnsw_rs): where new vectors are inserted until they are sealed
//! into a segment, and where merges and repairs rebuild segments from the store.

use hnsw_rs::prelude::{Distance, Hnsw};
use serde::{Deserialize, Serialize};

use crate::exact::dot;
use crate::segment::{NodeVisitor, Nodes};
use crate::Id;

/// hnsw_rs caps the number of layers at 16.
const MAX_LAYERS: usize = 16;

/// Construction parameters of the graph, fixed when an index is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HnswParams {
    /// Neighbours kept per node and layer (hnswlib's `M`), at most 256.
    pub max_connections: usize,
    /// Candidate list size while inserting (hnswlib's `ef_construction`).
    pub ef_construction: usize,
}

/// Measured on 100k clustered 1024-d vectors (`BENCHMARKS.md`, "HNSW"): in segments of 50k,
/// `ef_construction` 150 builds in 0.78x the time of 200 and reached recall@10 0.95 at the
/// same search beam, with more queries/s (sparser neighbour lists cost less per step).
impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            max_connections: 16,
            ef_construction: 150,
        }
    }
}

/// `1 - a·b`, clamped at 0.
///
/// hnsw_rs asserts that distances are non-negative, and its `DistDot` panics when rounding
/// pushes the dot product of two unit vectors above 1; this one clamps instead.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClampedDot;

impl Distance<f32> for ClampedDot {
    fn eval(&self, va: &[f32], vb: &[f32]) -> f32 {
        clamped_distance(va, vb)
    }
}

/// [`ClampedDot`]'s distance.
pub(crate) fn clamped_distance(a: &[f32], b: &[f32]) -> f32 {
    // `f32::max` also maps a NaN to 0, so a degenerate vector cannot break the heap order.
    (1.0 - dot(a, b)).max(0.0)
}

/// An hnsw_rs graph in memory. Ids are the store's ids.
pub(crate) struct Graph {
    hnsw: Hnsw<'static, f32, ClampedDot>,
}

impl Graph {
    /// An empty graph, sized for about `capacity` points.
    pub fn new(params: HnswParams, capacity: usize) -> Graph {
        Graph {
            hnsw: Hnsw::new(
                params.max_connections,
                capacity.max(1024),
                MAX_LAYERS,
                params.ef_construction,
                ClampedDot,
            ),
        }
    }

    /// Points in the graph, tombstones included.
    pub fn len(&self) -> usize {
        self.hnsw.get_nb_point()
    }

    /// Inserts points in parallel (hnsw_rs uses rayon).
    pub fn insert(&self, points: &[(Id, Vec<f32>)]) {
        let items: Vec<(&[f32], usize)> = points
            .iter()
            .map(|(id, v)| (v.as_slice(), data_id(*id)))
            .collect();
        self.hnsw.parallel_insert_slice(&items);
    }

    /// The `knbn` nearest points as `(id, score)`, best first; score is the clamped dot.
    pub fn search(&self, query: &[f32], knbn: usize, ef: usize) -> Vec<(Id, f32)> {
        if self.len() == 0 {
            return Vec::new();
        }
        self.hnsw
            .search(query, knbn, ef.max(knbn))
            .into_iter()
            .map(|n| (n.d_id as Id, 1.0 - n.distance))
            .collect()
    }
}

impl Nodes for Graph {
    fn visit(&self, f: &mut NodeVisitor<'_>) {
        if self.len() == 0 {
            return;
        }
        for point in self.hnsw.get_point_indexation() {
            let levels = usize::from(point.get_point_id().0) + 1;
            let links = point
                .get_neighborhood_id()
                .into_iter()
                .take(levels)
                .map(|layer| layer.into_iter().map(|n| n.d_id as Id).collect())
                .collect();
            f(point.get_origin_id() as Id, point.get_v(), links);
        }
    }
}

/// hnsw_rs's `DataId` is a `usize`; ids come from a counter, so they fit on 64-bit targets.
fn data_id(id: Id) -> usize {
    id as usize
}
