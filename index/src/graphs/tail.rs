//! The HNSW graph being built (hnsw_rs): where new vectors are inserted until they are sealed
//! into a segment, and where merges and repairs rebuild segments from the store.

use crate::exact::{Scored, TopK};
use crate::filter::{Admit, Plan};
use crate::kernels::clamped_distance;
use crate::segment::{NodeVisitor, Nodes};
use crate::types::HnswParams;
use crate::Id;
use hnsw_rs::prelude::{Distance, Hnsw};

/// hnsw_rs caps the number of layers at 16.
const MAX_LAYERS: usize = 16;

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

    /// The `k` nearest points that `admit` admits, as `(id, score)`, best first; score is the
    /// clamped dot. Planned as a segment is ([`Admit::plan`]): a scan of the admitted points,
    /// or hnsw_rs's filtered walk, which traverses refused points and keeps only admitted ones.
    pub fn search(&self, query: &[f32], k: usize, ef: usize, admit: &Admit<'_>) -> Vec<(Id, f32)> {
        if self.len() == 0 || k == 0 {
            return Vec::new();
        }
        let points = || self.hnsw.get_point_indexation().into_iter();
        match admit.plan(points().map(|p| p.get_origin_id() as Id)) {
            Plan::Skip => Vec::new(),
            Plan::Scan => {
                let mut top = TopK::new(k);
                for point in points() {
                    let id = point.get_origin_id() as Id;
                    if admit.admits(id) {
                        let score = 1.0 - clamped_distance(query, point.get_v());
                        top.offer(Scored { id, score });
                    }
                }
                top.into_sorted()
                    .into_iter()
                    .map(|s| (s.id, s.score))
                    .collect()
            }
            Plan::Walk => {
                let admitted = |id: &usize| admit.admits(*id as Id);
                self.hnsw
                    .search_filter(query, k, ef.max(k), Some(&admitted))
                    .into_iter()
                    .map(|n| (n.d_id as Id, 1.0 - n.distance))
                    .collect()
            }
        }
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
