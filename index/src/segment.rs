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

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::exact::dot_f16;
use crate::graph::clamped_distance;
use crate::{Id, IndexError};

/// The file layout's magic.
const MAGIC: &[u8; 8] = b"XSSEG002";

/// Format 1's search views: the same layout without the half-precision vectors. Such a file
/// (adopted when a format 1 index is converted) loads, and is rewritten in the current layout.
const VIEW_MAGIC: &[u8; 8] = b"XSVIEW01";

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

/// A distance paired with a node, ordered by distance then node (so heaps are deterministic).
#[derive(Clone, Copy)]
struct Near(f32, u32);

impl Ord for Near {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0).then(self.1.cmp(&other.1))
    }
}

impl PartialOrd for Near {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Near {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Near {}

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

    fn vectors(&self) -> &[f32] {
        self.vectors.slice(&self.map)
    }

    fn halves(&self) -> &[u16] {
        self.halves.slice(&self.map)
    }

    fn vector(&self, node: u32) -> &[f32] {
        let start = node as usize * self.dim;
        &self.vectors()[start..start + self.dim]
    }

    /// The `k` nearest nodes as `(id, score)`, best first, searching with a candidate list
    /// of `ef` (at least `k`); the same algorithm as hnsw_rs and hnswlib, on the
    /// half-precision vectors, with the `ef` nodes found scored again in f32.
    pub fn search(&self, query: &[f32], k: usize, ef: usize) -> Vec<(Id, f32)> {
        if self.ids.is_empty() || k == 0 {
            return Vec::new();
        }
        let exact = |node: u32| Near(clamped_distance(query, self.vector(node)), node);
        let best_k = |mut nodes: Vec<Near>| -> Vec<(Id, f32)> {
            nodes.sort_unstable();
            nodes
                .into_iter()
                .take(k)
                .map(|Near(d, n)| (self.ids[n as usize], 1.0 - d))
                .collect()
        };
        // A beam as wide as the segment would visit every node anyway: score them all (small
        // segments, the newest ones, are the common case).
        if self.ids.len() <= ef.max(k) {
            return best_k((0..self.ids.len() as u32).map(exact).collect());
        }
        let halves = self.halves();
        let coarse = |node: u32| {
            let start = node as usize * self.dim;
            (1.0 - dot_f16(query, &halves[start..start + self.dim])).max(0.0)
        };
        let mut entry = Near(coarse(self.entry), self.entry);
        for layer in self.layers[1..].iter().rev() {
            loop {
                let closer = layer
                    .of(entry.1)
                    .iter()
                    .map(|&n| Near(coarse(n), n))
                    .min()
                    .filter(|n| *n < entry);
                match closer {
                    Some(n) => entry = n,
                    None => break,
                }
            }
        }
        let found = VISITED.with(|visited| {
            let mut visited = visited.borrow_mut();
            visited.reset(self.ids.len());
            self.search_layer0(entry, ef.max(k), &coarse, &mut visited)
        });
        best_k(found.into_iter().map(|Near(_, n)| exact(n)).collect())
    }

    /// Hints the CPU to load the start of `node`'s half-precision vector (a no-op elsewhere
    /// than x86-64).
    #[inline(always)]
    fn prefetch(&self, node: u32) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let at = self
                .halves()
                .as_ptr()
                .wrapping_add(node as usize * self.dim);
            // SAFETY: SSE is part of the x86-64 baseline, and a prefetch never faults or
            // reads into the program (the address is inside the slice anyway).
            unsafe { _mm_prefetch::<_MM_HINT_T0>(at.cast()) };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = node;
    }

    /// Beam search on layer 0; returns the `ef` nearest nodes seen, nearest first.
    fn search_layer0(
        &self,
        entry: Near,
        ef: usize,
        distance: &impl Fn(u32) -> f32,
        visited: &mut Visited,
    ) -> Vec<Near> {
        let layer = &self.layers[0];
        let mut candidates = BinaryHeap::from([Reverse(entry)]);
        let mut best = BinaryHeap::from([entry]);
        visited.insert(entry.1);
        while let Some(Reverse(c)) = candidates.pop() {
            if best.len() >= ef && best.peek().is_some_and(|worst| c.0 > worst.0) {
                break;
            }
            let links = layer.of(c.1);
            for (i, &n) in links.iter().enumerate() {
                if !visited.insert(n) {
                    continue;
                }
                // Start fetching the next neighbour's vector while this one is scored (as
                // hnswlib does): a 4 KB vector is a cache miss otherwise.
                if let Some(&next) = links.get(i + 1) {
                    self.prefetch(next);
                }
                let near = Near(distance(n), n);
                if best.len() < ef || best.peek().is_some_and(|worst| near < *worst) {
                    candidates.push(Reverse(near));
                    best.push(near);
                    if best.len() > ef {
                        best.pop();
                    }
                }
            }
        }
        best.into_sorted_vec()
    }

    /// Maps a segment written by [`write`], checking its checksum, its length, its vector
    /// width and that every link points at a node. The vectors stay in the map, untouched
    /// until searches read them. The error is a reason for a report.
    pub fn load(path: &Path, expected: (u32, u64), dim: usize) -> Result<Segment, String> {
        let failed = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
        let mut file = std::fs::File::open(path).map_err(|e| failed(&e))?;
        // Read, not through the map: reading every page of the map would count the whole
        // file in this process's resident memory, which ingest keeps bounded.
        if checksum(&mut file).map_err(|e| failed(&e))? != expected {
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

/// CRC-32 and length of what `file` holds from where it stands, streamed.
fn checksum(file: &mut std::fs::File) -> std::io::Result<(u32, u64)> {
    let mut hasher = crc32fast::Hasher::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        match file.read(&mut buffer) {
            Ok(0) => return Ok((hasher.finalize(), len)),
            Ok(n) => {
                hasher.update(&buffer[..n]);
                len += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Receives a node's id, its vector and its neighbours' ids per layer (layer 0 first).
pub(crate) type NodeVisitor<'a> = dyn FnMut(Id, &[f32], Vec<Vec<Id>>) + 'a;

/// A graph that can be written as a segment: hnsw_rs's, or a segment in format 1's layout.
pub(crate) trait Nodes {
    /// Calls `f` with every node's id, vector and neighbour ids (layer 0 first, up to the
    /// node's top layer), in the same order on every call.
    fn visit(&self, f: &mut NodeVisitor<'_>);
}

impl Nodes for Segment {
    fn visit(&self, f: &mut NodeVisitor<'_>) {
        for node in 0..self.ids.len() as u32 {
            // A node's layers are those it has links on (the entry: all of them, even alone
            // on the top one).
            let levels = if node == self.entry {
                self.layers.len()
            } else {
                self.layers
                    .iter()
                    .rposition(|layer| !layer.of(node).is_empty())
                    .map_or(1, |top| top + 1)
            };
            let links = self.layers[..levels]
                .iter()
                .map(|layer| {
                    layer
                        .of(node)
                        .iter()
                        .map(|&n| self.ids[n as usize])
                        .collect()
                })
                .collect();
            f(self.ids[node as usize], self.vector(node), links);
        }
    }
}

/// Writes `graph` as a segment file at `path` and returns its CRC-32 and length, or `None`
/// for an empty graph. Streams from the graph, one pass per part of the file: ids first (links
/// are written as node numbers, so ids need numbering before links can be gathered), then the
/// links straight into the per-layer arrays the file holds (a few bytes per link, where a `Vec`
/// per node and layer cost the writer about 1 KB per point at the moment it peaks), then the
/// vectors, copied to the file in f32 and again in half precision. So writing holds no second
/// copy of the graph or its vectors.
pub(crate) fn write(
    graph: &dyn Nodes,
    dim: usize,
    path: &Path,
) -> Result<Option<(u32, u64)>, IndexError> {
    let mut ids = Vec::new();
    // Any node of the top layer is a valid entry: the greedy descent starts there.
    let (mut top, mut entry) = (0, 0);
    graph.visit(&mut |id, _, links| {
        if links.len() > top {
            (top, entry) = (links.len(), ids.len());
        }
        ids.push(id);
    });
    if ids.is_empty() {
        return Ok(None);
    }
    let node_of: HashMap<Id, u32> = ids
        .iter()
        .enumerate()
        .map(|(node, &id)| (id, node as u32))
        .collect();
    let mut layers: Vec<Csr> = (0..top)
        .map(|_| Csr {
            offsets: Vec::with_capacity(ids.len() + 1),
            links: Vec::new(),
        })
        .collect();
    for layer in &mut layers {
        layer.offsets.push(0);
    }
    let mut order = SameOrder::new(&ids);
    graph.visit(&mut |id, _, links| {
        order.see(id);
        for (layer, csr) in layers.iter_mut().enumerate() {
            if let Some(layer_links) = links.get(layer) {
                csr.links
                    .extend(layer_links.iter().filter_map(|id| node_of.get(id)));
            }
            csr.offsets.push(csr.links.len() as u32);
        }
    });
    order.check(path)?;
    drop(node_of);

    let io = |e| IndexError::io(path, e);
    let file = std::fs::File::create(path).map_err(io)?;
    let mut out = Checksummed::new(BufWriter::with_capacity(1 << 20, file));
    out.write_all(MAGIC).map_err(io)?;
    for value in [ids.len(), dim, top, entry] {
        out.write_all(&(value as u64).to_le_bytes()).map_err(io)?;
    }
    for id in &ids {
        out.write_all(&id.to_le_bytes()).map_err(io)?;
    }
    for layer in layers {
        out.write_all(&(layer.links.len() as u64).to_le_bytes())
            .map_err(io)?;
        for v in layer.offsets.iter().chain(&layer.links) {
            out.write_all(&v.to_le_bytes()).map_err(io)?;
        }
    }
    for halves in [false, true] {
        let mut order = SameOrder::new(&ids);
        let mut written = Ok(());
        graph.visit(&mut |id, vector, _| {
            order.see(id);
            for &v in vector {
                if written.is_ok() {
                    written = if halves {
                        out.write_all(&half::f16::from_f32(v).to_bits().to_le_bytes())
                    } else {
                        out.write_all(&v.to_le_bytes())
                    }
                    .map_err(io);
                }
            }
        });
        order.check(path)?;
        written?;
    }
    let (crc, len, writer) = out.finish();
    let file = writer.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    Ok(Some((crc, len)))
}

/// Checks that a pass over a graph meets the nodes the first pass met, in the same order. The
/// graph cannot change in between (writers hold the writer lock); checked rather than assumed,
/// since a mismatch would write links or vectors to the wrong nodes.
struct SameOrder<'a> {
    ids: &'a [Id],
    seen: usize,
    same: bool,
}

impl<'a> SameOrder<'a> {
    fn new(ids: &'a [Id]) -> Self {
        SameOrder {
            ids,
            seen: 0,
            same: true,
        }
    }

    fn see(&mut self, id: Id) {
        self.same &= self.ids.get(self.seen) == Some(&id);
        self.seen += 1;
    }

    fn check(&self, path: &Path) -> Result<(), IndexError> {
        if self.same && self.seen == self.ids.len() {
            return Ok(());
        }
        Err(IndexError::Segment {
            path: path.to_path_buf(),
            message: "the graph changed while its segment was written".into(),
        })
    }
}

/// Reads the layout [`write`] writes, or format 1's (without the halves).
fn parse(map: memmap2::Mmap, dim: usize) -> Result<Segment, String> {
    let mut at = Cursor {
        bytes: &map,
        pos: 0,
    };
    let legacy = match at.take(MAGIC.len())? {
        magic if magic == MAGIC => false,
        magic if magic == VIEW_MAGIC => true,
        _ => return Err("not a segment file".into()),
    };
    let header = at.u64s(4)?;
    let [n, stored_dim, layer_count, entry] = [header[0], header[1], header[2], header[3]];
    if stored_dim != dim as u64 || n == 0 || entry >= n || layer_count == 0 || layer_count > 64 {
        return Err(format!(
            "bad header: {n} nodes of {stored_dim} dimensions (expected {dim}), {layer_count} layers, entry {entry}"
        ));
    }
    let n = usize::try_from(n).map_err(|_| "too many nodes".to_string())?;
    let ids = at.u64s(n)?;
    let mut layers = Vec::new();
    for _ in 0..layer_count {
        let total = usize::try_from(at.u64s(1)?[0]).map_err(|_| "too many links")?;
        let offsets = at.u32s(n + 1)?;
        let links = at.u32s(total)?;
        let ordered = offsets.first() == Some(&0)
            && offsets.windows(2).all(|w| w[0] <= w[1])
            && offsets.last().map(|&o| o as usize) == Some(total);
        if !ordered || links.iter().any(|&l| l as usize >= n) {
            return Err("malformed links".into());
        }
        layers.push(Csr { offsets, links });
    }
    let len = n.checked_mul(dim).ok_or("too many vectors")?;
    let vector_bytes = if legacy { 4 } else { 6 } * len;
    if map.len() - at.pos != vector_bytes {
        return Err(format!(
            "{} bytes of vectors, expected {vector_bytes}",
            map.len() - at.pos
        ));
    }
    let vectors = stored(&map, &mut at, len, Cursor::f32s)?;
    let halves = if legacy {
        let vectors = vectors.slice(&map);
        Stored::Owned(
            vectors
                .iter()
                .map(|&v| half::f16::from_f32(v).to_bits())
                .collect(),
        )
    } else {
        stored(&map, &mut at, len, Cursor::u16s)?
    };
    Ok(Segment {
        dim,
        entry: entry as u32,
        ids,
        layers,
        map,
        vectors,
        halves,
        legacy,
    })
}

/// The next `len` values of `T` in the map: in place when aligned on a little-endian target,
/// else decoded into a copy.
fn stored<'m, T: Plain>(
    map: &memmap2::Mmap,
    at: &mut Cursor<'m>,
    len: usize,
    decode: fn(&mut Cursor<'m>, usize) -> Result<Vec<T>, String>,
) -> Result<Stored<T>, String> {
    let offset = at.pos;
    let aligned = (map.as_ptr() as usize + offset).is_multiple_of(std::mem::align_of::<T>());
    if cfg!(target_endian = "little") && aligned {
        at.take(len * std::mem::size_of::<T>())?;
        Ok(Stored::Mapped { offset, len })
    } else {
        Ok(Stored::Owned(decode(at, len)?))
    }
}

/// Little-endian arrays read off a byte slice, each bounds-checked.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|&end| end <= self.bytes.len())
            .ok_or("cut short")?;
        let taken = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(taken)
    }

    fn array<const N: usize, T>(
        &mut self,
        count: usize,
        decode: fn([u8; N]) -> T,
    ) -> Result<Vec<T>, String> {
        let bytes = self.take(count.checked_mul(N).ok_or("cut short")?)?;
        Ok(bytes
            .chunks_exact(N)
            .map(|b| decode(b.try_into().expect("N-byte chunk")))
            .collect())
    }

    fn u64s(&mut self, count: usize) -> Result<Vec<u64>, String> {
        self.array(count, u64::from_le_bytes)
    }

    fn u32s(&mut self, count: usize) -> Result<Vec<u32>, String> {
        self.array(count, u32::from_le_bytes)
    }

    fn u16s(&mut self, count: usize) -> Result<Vec<u16>, String> {
        self.array(count, u16::from_le_bytes)
    }

    fn f32s(&mut self, count: usize) -> Result<Vec<f32>, String> {
        self.array(count, f32::from_le_bytes)
    }
}

/// A writer that checksums what passes through it.
struct Checksummed<W> {
    inner: W,
    crc: crc32fast::Hasher,
    len: u64,
}

impl<W: Write> Checksummed<W> {
    fn new(inner: W) -> Self {
        Checksummed {
            inner,
            crc: crc32fast::Hasher::new(),
            len: 0,
        }
    }

    fn finish(self) -> (u32, u64, W) {
        (self.crc.finalize(), self.len, self.inner)
    }
}

impl<W: Write> Write for Checksummed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Which nodes a search has seen: a stamp per node, so clearing is one increment.
#[derive(Default)]
struct Visited {
    stamps: Vec<u32>,
    current: u32,
}

impl Visited {
    fn reset(&mut self, nodes: usize) {
        if self.stamps.len() < nodes {
            self.stamps.resize(nodes, 0);
        }
        self.current = self.current.wrapping_add(1);
        if self.current == 0 {
            self.stamps.fill(0);
            self.current = 1;
        }
    }

    /// Marks `node`; false if it was already marked.
    fn insert(&mut self, node: u32) -> bool {
        let stamp = &mut self.stamps[node as usize];
        let fresh = *stamp != self.current;
        *stamp = self.current;
        fresh
    }
}

thread_local! {
    static VISITED: RefCell<Visited> = RefCell::default();
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    /// A graph given as nodes in visiting order: (id, vector, links per layer).
    struct Listed(Vec<(Id, Vec<f32>, Vec<Vec<Id>>)>);

    impl Nodes for Listed {
        fn visit(&self, f: &mut NodeVisitor<'_>) {
            for (id, vector, links) in &self.0 {
                f(*id, vector, links.clone());
            }
        }
    }

    fn listed() -> Listed {
        let node = |id: Id, x: f32, links: Vec<Vec<Id>>| (id, vec![x, (1.0 - x * x).sqrt()], links);
        Listed(vec![
            node(10, 1.0, vec![vec![20, 30]]),
            node(20, 0.6, vec![vec![10, 30], vec![30]]),
            node(30, 0.0, vec![vec![10, 20], vec![20]]),
        ])
    }

    fn node_links(segment: &Segment) -> Vec<(Id, Vec<Vec<Id>>)> {
        let mut seen = Vec::new();
        segment.visit(&mut |id, _, links| seen.push((id, links)));
        seen
    }

    #[test]
    fn a_written_graph_loads_with_its_ids_links_and_vectors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("images-0.seg");
        let graph = listed();
        let written = write(&graph, 2, &path)
            .unwrap()
            .expect("a graph with nodes");
        let segment = Segment::load(&path, written, 2).unwrap();

        assert_eq!(segment.ids(), &[10, 20, 30]);
        let expected: Vec<(Id, Vec<Vec<Id>>)> =
            graph.0.iter().map(|(id, _, l)| (*id, l.clone())).collect();
        assert_eq!(node_links(&segment), expected);
        // The entry is the first node on the top layer.
        assert_eq!(segment.entry, 1);
        for (node, (_, vector, _)) in graph.0.iter().enumerate() {
            assert_eq!(segment.vector(node as u32), vector.as_slice());
        }
        // Searching walks the links: each node is its own best match, scored in f32.
        for (id, vector, _) in &graph.0 {
            let hit = segment.search(vector, 1, 1)[0];
            assert_eq!(hit.0, *id);
            assert!((hit.1 - 1.0).abs() < 1e-6, "score {}", hit.1);
        }
    }

    #[test]
    fn an_empty_graph_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("images-0.seg");
        assert_eq!(write(&Listed(Vec::new()), 2, &path).unwrap(), None);
        assert!(!path.exists());
    }

    /// Hands out one more node on every visit after the first.
    struct Growing {
        graph: Listed,
        visits: Cell<usize>,
    }

    impl Nodes for Growing {
        fn visit(&self, f: &mut NodeVisitor<'_>) {
            let extra = self.visits.get().min(1);
            self.visits.set(self.visits.get() + 1);
            let shown = self.graph.0.len() - 1 + extra;
            for (id, vector, links) in &self.graph.0[..shown] {
                f(*id, vector, links.clone());
            }
        }
    }

    #[test]
    fn a_graph_that_changes_while_written_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("images-0.seg");
        let graph = Growing {
            graph: listed(),
            visits: Cell::new(0),
        };
        let err = write(&graph, 2, &path).unwrap_err();
        assert!(
            err.to_string()
                .contains("the graph changed while its segment was written"),
            "{err}"
        );
    }
}
