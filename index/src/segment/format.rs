//! The segment file layout: writing a graph out (streamed, checksummed) and parsing a mapped
//! file back into a [`Segment`], every offset and link checked.

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::path::Path;

use super::{Csr, Plain, Segment, Stored};
use crate::checksum::Checksummed;
use crate::{Id, IndexError};

/// The file layout's magic.
const MAGIC: &[u8; 8] = b"XSSEG002";

/// Format 1's search views: the same layout without the half-precision vectors. Such a file
/// (adopted when a format 1 index is converted) loads, and is rewritten in the current layout.
const VIEW_MAGIC: &[u8; 8] = b"XSVIEW01";

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
pub(super) fn parse(map: memmap2::Mmap, dim: usize) -> Result<Segment, String> {
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

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::filter::Admit;
    use crate::ids::IdSet;

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
        let live: IdSet = graph.0.iter().map(|(id, _, _)| *id).collect();
        let admit = Admit::new(&live, None, 0);
        for (id, vector, _) in &graph.0 {
            let hit = segment.search(vector, 1, 1, &admit)[0];
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
