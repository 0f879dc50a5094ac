//! A sealed segment: an immutable HNSW graph over some of a collection's ids, in one file laid
//! out for searching (one CSR adjacency per layer, vectors end to end, once in f32 and once in
//! half precision), mapped at open.
//!
//! Searches walk the graph on the half-precision copy, which halves the memory traffic that
//! dominates them, then score the candidates they keep with the f32 vectors, so the scores they
//! return are exact: on the 100k benchmark this answered 1.18x as many queries/s at the same
//! recall.
//!
//! hnsw_rs builds every graph; once built, a graph is written out as a segment and searched
//! here. hnsw_rs rebuilds its graph object by object when it loads its own snapshot (an `Arc`
//! per link) and searches with a hash map of visited points, which made opening a 100k index
//! take seconds and searches several times slower than hnswlib. A segment loads with a few
//! large reads and searches with a visited-stamp array.

mod format;
mod search;

use std::path::Path;

use format::parse;
pub(crate) use format::{write, NodeVisitor, Nodes};

use crate::Id;

/// Links of every node on one layer: `links[offsets[i]..offsets[i + 1]]` are node `i`'s.
struct Csr {
    offsets: Vec<u32>,
    links: Vec<u32>,
}

impl Csr {
    fn of(&self, node: u32) -> &[u32] {
        let i = node as usize;
        &self.links[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }
}

/// A segment's search structure. Node numbers are positions here; `ids` maps them to the
/// store's ids.
pub(crate) struct Segment {
    dim: usize,
    entry: u32,
    ids: Vec<Id>,
    /// Layer 0 first; the last layer holds the entry node.
    layers: Vec<Csr>,
    map: memmap2::Mmap,
    vectors: Stored<f32>,
    /// The vectors in IEEE half precision (their bits), for walking the graph.
    halves: Stored<u16>,
    /// Read from a format 1 view: its halves were computed at load.
    legacy: bool,
}

/// `len` values of `T` at byte `offset` of the segment's map (aligned and little-endian,
/// checked by `parse`), or a copy when they cannot be used in place.
enum Stored<T> {
    Mapped { offset: usize, len: usize },
    Owned(Vec<T>),
}

/// Plain numbers whose every bit pattern is a value, so a mapped file can be read as them.
trait Plain: Copy {}
impl Plain for f32 {}
impl Plain for u16 {}

impl<T: Plain> Stored<T> {
    fn slice<'a>(&'a self, map: &'a memmap2::Mmap) -> &'a [T] {
        match self {
            // SAFETY: `parse` made this only after checking that `offset + len *
            // size_of::<T>()` lies within the map, that the address is aligned for `T`, and
            // that the target is little-endian; every bit pattern is a `T` (`Plain`). The map
            // lives as long as the segment; see `Segment::load` for why nobody changes the file.
            Stored::Mapped { offset, len } => unsafe {
                std::slice::from_raw_parts(map.as_ptr().add(*offset).cast::<T>(), *len)
            },
            Stored::Owned(v) => v,
        }
    }
}

impl Segment {
    /// Nodes in the segment (tombstones included).
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// The store ids of the nodes.
    pub fn ids(&self) -> &[Id] {
        &self.ids
    }

    /// Whether the file is in format 1's layout (to be rewritten).
    pub fn is_legacy(&self) -> bool {
        self.legacy
    }

    /// Every node's id and f32 vector, in node order.
    pub fn nodes(&self) -> impl Iterator<Item = (Id, &[f32])> + '_ {
        self.ids
            .iter()
            .copied()
            .zip(self.vectors().chunks_exact(self.dim))
    }

    fn vectors(&self) -> &[f32] {
        self.vectors.slice(&self.map)
    }

    fn halves(&self) -> &[u16] {
        self.halves.slice(&self.map)
    }

    /// The f32 vector of node `node`.
    pub fn vector(&self, node: u32) -> &[f32] {
        let start = node as usize * self.dim;
        &self.vectors()[start..start + self.dim]
    }

    /// Maps a segment written by [`write`], checking its checksum, its length, its vector
    /// width and that every link points at a node. The vectors stay in the map, untouched
    /// until searches read them.
    pub fn load(path: &Path, expected: (u32, u64), dim: usize) -> Result<Segment, LoadError> {
        let failed = |e: &dyn std::fmt::Display| LoadError {
            missing: false,
            reason: format!("{}: {e}", path.display()),
        };
        let mut file = std::fs::File::open(path).map_err(|e| LoadError {
            missing: e.kind() == std::io::ErrorKind::NotFound,
            ..failed(&e)
        })?;
        // Read, not through the map: reading every page of the map would count the whole
        // file in this process's resident memory, which ingest keeps bounded.
        if crate::checksum::of_file(&mut file).map_err(|e| failed(&e))? != expected {
            return Err(failed(&"checksum mismatch"));
        }
        // SAFETY: segment files are written once under a fresh name and never modified;
        // the index lock keeps other xsearch processes out, and the writer that deletes an
        // old segment does so only after swapping it out of its collection. Like every mmap
        // reader we rely on nobody else editing the index directory while it is open.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| failed(&e))?;
        parse(map, dim).map_err(|e| failed(&e))
    }
}

/// Why a segment could not be loaded.
#[derive(Debug)]
pub(crate) struct LoadError {
    /// The file does not exist (a reader that meets this retries with a newer view).
    pub missing: bool,
    /// A reason for a report, the path first.
    pub reason: String,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}
