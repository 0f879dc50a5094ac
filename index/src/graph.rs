//! The HNSW graph (hnsw_rs), derived from the store: building, searching and snapshots.

use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use hnsw_rs::prelude::{AnnT, Distance, Hnsw, HnswIo};
use serde::{Deserialize, Serialize};

use crate::exact::dot;
use crate::{Id, IndexError};

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

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            max_connections: 16,
            ef_construction: 200,
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

type HnswGraph<'a> = Hnsw<'a, f32, ClampedDot>;

self_cell::self_cell!(
    /// A graph reloaded from a snapshot: hnsw_rs ties its lifetime to the loader.
    struct Reloaded {
        owner: HnswIo,
        #[not_covariant]
        dependent: HnswGraph,
    }
);

enum Inner {
    Built(HnswGraph<'static>),
    Reloaded(Reloaded),
}

/// Where a snapshot lives and what it covers; stored in `meta`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SnapshotInfo {
    /// Counts the dumps of this collection; makes every basename fresh.
    pub seq: u64,
    /// The basename hnsw_rs chose (files `<basename>.hnsw.graph` and `.hnsw.data`).
    pub basename: String,
    /// The data generation the graph covers.
    pub generation: u64,
    /// Every live id below this one is in the graph.
    pub next_id: Id,
    /// CRC-32 and length of the graph file, then of the data file.
    pub graph_file: (u32, u64),
    pub data_file: (u32, u64),
}

impl SnapshotInfo {
    pub fn files(&self, dir: &Path) -> [PathBuf; 2] {
        [
            dir.join(format!("{}.hnsw.graph", self.basename)),
            dir.join(format!("{}.hnsw.data", self.basename)),
        ]
    }
}

/// The in-memory graph of one collection. Ids are the store's ids.
pub(crate) struct Graph {
    inner: Inner,
}

impl Graph {
    /// An empty graph, sized for about `capacity` points.
    pub fn new(params: HnswParams, capacity: usize) -> Graph {
        Graph {
            inner: Inner::Built(Hnsw::new(
                params.max_connections,
                capacity.max(1024),
                MAX_LAYERS,
                params.ef_construction,
                ClampedDot,
            )),
        }
    }

    fn with<R>(&self, f: impl for<'a> FnOnce(&HnswGraph<'a>) -> R) -> R {
        match &self.inner {
            Inner::Built(h) => f(h),
            Inner::Reloaded(r) => r.with_dependent(|_, h| f(h)),
        }
    }

    /// Points in the graph, tombstones included.
    pub fn len(&self) -> usize {
        self.with(|h| h.get_nb_point())
    }

    /// Inserts points in parallel (hnsw_rs uses rayon).
    pub fn insert(&self, points: &[(Id, Vec<f32>)]) {
        let items: Vec<(&[f32], usize)> = points
            .iter()
            .map(|(id, v)| (v.as_slice(), data_id(*id)))
            .collect();
        self.with(|h| h.parallel_insert_slice(&items));
    }

    /// The `knbn` nearest points as `(id, score)`, best first; score is the clamped dot.
    pub fn search(&self, query: &[f32], knbn: usize, ef: usize) -> Vec<(Id, f32)> {
        self.with(|h| h.search(query, knbn, ef.max(knbn)))
            .into_iter()
            .map(|n| (n.d_id as Id, 1.0 - n.distance))
            .collect()
    }

    /// Calls `f` with every point's id, vector and neighbour ids, layer 0 first, up to the
    /// point's own top layer.
    pub fn visit(&self, mut f: impl FnMut(Id, &[f32], Vec<Vec<Id>>)) {
        self.with(|h| {
            if h.get_nb_point() == 0 {
                return;
            }
            for point in h.get_point_indexation() {
                let levels = usize::from(point.get_point_id().0) + 1;
                let links = point
                    .get_neighborhood_id()
                    .into_iter()
                    .take(levels)
                    .map(|layer| layer.into_iter().map(|n| n.d_id as Id).collect())
                    .collect();
                f(point.get_origin_id() as Id, point.get_v(), links);
            }
        })
    }

    /// Writes `<dir>/<basename>.hnsw.{graph,data}` and checksums them.
    pub fn dump(&self, dir: &Path, seq: u64, basename: &str) -> Result<SnapshotInfo, IndexError> {
        let failed = |message: String| IndexError::Snapshot {
            path: dir.to_path_buf(),
            message,
        };
        // hnsw_rs panics (rather than erring) when it cannot create the files.
        let chosen = catch_unwind(AssertUnwindSafe(|| {
            self.with(|h| h.file_dump(dir, basename))
        }))
        .map_err(|_| failed("hnsw_rs panicked while writing".into()))?
        .map_err(|e| failed(e.to_string()))?;
        let mut info = SnapshotInfo {
            seq,
            basename: chosen,
            generation: 0,
            next_id: 0,
            graph_file: (0, 0),
            data_file: (0, 0),
        };
        let [graph, data] = info.files(dir);
        info.graph_file = checksum(&graph)?;
        info.data_file = checksum(&data)?;
        Ok(info)
    }

    /// Reloads a snapshot, verifying its checksums first: hnsw_rs's loader asserts, panics or
    /// even exits the process on malformed files, so it only ever sees the bytes we wrote.
    /// The error is a human-readable reason for the rebuild report.
    pub fn load(dir: &Path, info: &SnapshotInfo) -> Result<Graph, String> {
        let [graph, data] = info.files(dir);
        for (path, expected) in [(&graph, info.graph_file), (&data, info.data_file)] {
            match checksum(path) {
                Ok(found) if found == expected => {}
                Ok(_) => return Err(format!("{}: checksum mismatch", path.display())),
                Err(e) => return Err(e.to_string()),
            }
        }
        let io = HnswIo::new(dir, &info.basename);
        let loaded = catch_unwind(AssertUnwindSafe(|| {
            Reloaded::try_new(io, |io| io.load_hnsw_with_dist(ClampedDot))
        }));
        match loaded {
            Ok(Ok(reloaded)) => Ok(Graph {
                inner: Inner::Reloaded(reloaded),
            }),
            Ok(Err(e)) => Err(format!("{}: {e}", graph.display())),
            Err(_) => Err(format!("{}: hnsw_rs could not read it", graph.display())),
        }
    }
}

/// hnsw_rs's `DataId` is a `usize`; ids come from a counter, so they fit on 64-bit targets.
fn data_id(id: Id) -> usize {
    id as usize
}

/// CRC-32 and length of a file, streamed (snapshot data files are as large as the vectors).
fn checksum(path: &Path) -> Result<(u32, u64), IndexError> {
    let io = |e| IndexError::io(path, e);
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io(e)),
        };
        hasher.update(&buffer[..n]);
        len += n as u64;
    }
    Ok((hasher.finalize(), len))
}
