//! Searching a segment: the greedy descent through the upper layers and the beam search on
//! layer 0, walking on the half-precision vectors and rescoring the kept nodes in f32.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::Segment;
use crate::filter::{Admit, Plan};
use crate::kernels::{clamped_distance, dot_f16};
use crate::Id;

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
    /// The `k` nearest nodes that `admit` admits, as `(id, score)`, best first, searching with
    /// a candidate list of `ef` (at least `k`): planned by [`Admit::plan`], a scan of the
    /// admitted nodes in f32 or the walk of hnsw_rs and hnswlib on the half-precision vectors,
    /// with the kept nodes that can still be among the `k` best scored again in f32
    /// ([`rescored`]).
    pub fn search(&self, query: &[f32], k: usize, ef: usize, admit: &Admit<'_>) -> Vec<(Id, f32)> {
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
        let scan = || {
            let admitted =
                (0..self.ids.len() as u32).filter(|&n| admit.admits(self.ids[n as usize]));
            best_k(admitted.map(exact).collect())
        };
        match admit.plan(self.ids.iter().copied()) {
            Plan::Skip => return Vec::new(),
            Plan::Scan => return scan(),
            // A beam as wide as the segment would visit every node anyway: score them all
            // (small segments, the newest ones, are the common case).
            Plan::Walk if self.ids.len() <= ef.max(k) => return scan(),
            Plan::Walk => {}
        }
        let halves = self.halves();
        let coarse = |node: u32| {
            let start = node as usize * self.dim;
            (1.0 - dot_f16(query, &halves[start..start + self.dim])).max(0.0)
        };
        let mut entry = Near(coarse(self.entry), self.entry);
        for layer in self.layers[1..].iter().rev() {
            loop {
                let closer = self
                    .scored(layer.of(entry.1), &coarse)
                    .min()
                    .filter(|n| *n < entry);
                match closer {
                    Some(n) => entry = n,
                    None => break,
                }
            }
        }
        let admitted = |node: u32| admit.admits(self.ids[node as usize]);
        let found = SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            scratch.reset(self.ids.len());
            self.search_layer0(entry, ef.max(k), &coarse, &admitted, &mut scratch)
        });
        best_k(rescored(found, k, norm(query), exact))
    }

    /// Hints the CPU to load `node`'s whole half-precision vector, every cache line of it (a
    /// no-op elsewhere than x86-64): a 1024-d vector spans 32 lines, and asking for the first
    /// alone leaves the rest to the hardware prefetcher, which starts late on each new vector.
    #[inline(always)]
    fn prefetch(&self, node: u32) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let at = self
                .halves()
                .as_ptr()
                .wrapping_add(node as usize * self.dim)
                .cast::<u8>();
            for line in (0..self.dim * 2).step_by(64) {
                // SAFETY: SSE is part of the x86-64 baseline, and a prefetch never faults or
                // reads into the program (the address is inside the slice anyway).
                unsafe { _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(line).cast()) };
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = node;
    }

    /// `nodes` with their distances, fetching each vector [`PREFETCH_AHEAD`] nodes before it
    /// is scored.
    fn scored<'a>(
        &'a self,
        nodes: &'a [u32],
        distance: &'a impl Fn(u32) -> f32,
    ) -> impl Iterator<Item = Near> + 'a {
        for &n in nodes.iter().take(PREFETCH_AHEAD) {
            self.prefetch(n);
        }
        nodes.iter().enumerate().map(move |(i, &n)| {
            if let Some(&ahead) = nodes.get(i + PREFETCH_AHEAD) {
                self.prefetch(ahead);
            }
            Near(distance(n), n)
        })
    }

    /// Beam search on layer 0; returns the `ef` nearest admitted nodes seen, nearest first.
    ///
    /// Every node is traversed, admitted or not (refused ones keep the graph connected), but
    /// only admitted ones enter the result list; while it holds fewer than `ef` the walk goes
    /// on, so a filter widens the beam until `ef` nodes pass (hnswlib's filtered search).
    fn search_layer0(
        &self,
        entry: Near,
        ef: usize,
        distance: &impl Fn(u32) -> f32,
        admitted: &impl Fn(u32) -> bool,
        scratch: &mut Scratch,
    ) -> Vec<Near> {
        let layer = &self.layers[0];
        let mut candidates = BinaryHeap::from([Reverse(entry)]);
        let mut best = BinaryHeap::with_capacity(ef + 1);
        if admitted(entry.1) {
            best.push(entry);
        }
        scratch.visit(entry.1);
        while let Some(Reverse(c)) = candidates.pop() {
            if best.len() >= ef && best.peek().is_some_and(|worst: &Near| c.0 > worst.0) {
                break;
            }
            // The unvisited neighbours first, so their vectors can be fetched ahead of the
            // scoring (a 2 KB vector is a cache miss otherwise).
            scratch.fresh.clear();
            for &n in layer.of(c.1) {
                if scratch.visit(n) {
                    scratch.fresh.push(n);
                }
            }
            for near in self.scored(&scratch.fresh, distance) {
                let n = near.1;
                if best.len() < ef || best.peek().is_some_and(|worst| near < *worst) {
                    candidates.push(Reverse(near));
                    if admitted(n) {
                        best.push(near);
                        if best.len() > ef {
                            best.pop();
                        }
                    }
                }
            }
        }
        best.into_sorted_vec()
    }
}

/// How many neighbours ahead of the one being scored the walk fetches vectors.
const PREFETCH_AHEAD: usize = 2;

/// The f32 scores of the kept nodes that can still be among the `k` best, out of `found`
/// (nearest first by the half-precision distance).
///
/// Rounding a vector to half precision moves each of its coordinates by at most 2^-11 of
/// itself, so its dot product with the query by at most 2^-11·|query|·|vector|. Each of the
/// first `k` nodes is then within that of its coarse distance, so the exact k-th best is at
/// most the coarse k-th plus it, and a node whose coarse distance exceeds the coarse k-th's by
/// twice the error cannot reach the `k` best. `MARGIN` is that bound for vectors of norm up to
/// 3 (embeddings are unit vectors) with room for the sums' own rounding; past the first
/// nodes, which the walk's beam holds, most are left unscored.
fn rescored(found: Vec<Near>, k: usize, query_norm: f32, exact: impl Fn(u32) -> Near) -> Vec<Near> {
    const MARGIN: f32 = 1.0 / 256.0;
    let Some(&Near(kth, _)) = found.get(k.saturating_sub(1)) else {
        return found.into_iter().map(|Near(_, n)| exact(n)).collect();
    };
    let bound = kth + MARGIN * query_norm;
    found
        .into_iter()
        .take_while(|near| near.0 <= bound)
        .map(|Near(_, n)| exact(n))
        .collect()
}

/// The Euclidean norm of `v`.
fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

/// A walk's reusable state, one per thread: which nodes it has seen (a stamp per node, so
/// clearing is one increment) and the unvisited neighbours of the node being expanded.
#[derive(Default)]
struct Scratch {
    stamps: Vec<u32>,
    current: u32,
    fresh: Vec<u32>,
}

impl Scratch {
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
    fn visit(&mut self, node: u32) -> bool {
        let stamp = &mut self.stamps[node as usize];
        let fresh = *stamp != self.current;
        *stamp = self.current;
        fresh
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::default();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unit vectors around one centre, so near that their half-precision distances reorder
    /// some of them.
    fn cluster(seed: u64, count: usize, dim: usize, spread: f32) -> Vec<Vec<f32>> {
        let mut state = seed;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        let centre: Vec<f32> = (0..dim).map(|_| next()).collect();
        (0..count)
            .map(|_| {
                let v: Vec<f32> = centre.iter().map(|c| c + spread * next()).collect();
                let n = norm(&v);
                v.into_iter().map(|x| x / n).collect()
            })
            .collect()
    }

    #[test]
    fn rescoring_only_the_near_candidates_keeps_the_same_k_best() {
        let (dim, k) = (256, 10);
        let vectors = cluster(7, 201, dim, 0.3);
        let (query, candidates) = vectors.split_first().unwrap();
        let halves: Vec<Vec<u16>> = candidates
            .iter()
            .map(|v| {
                v.iter()
                    .map(|&x| half::f16::from_f32(x).to_bits())
                    .collect()
            })
            .collect();
        let mut found: Vec<Near> = halves
            .iter()
            .enumerate()
            .map(|(n, h)| Near((1.0 - dot_f16(query, h)).max(0.0), n as u32))
            .collect();
        found.sort_unstable();
        let exact = |n: u32| Near(clamped_distance(query, &candidates[n as usize]), n);
        let best = |mut nodes: Vec<Near>| {
            nodes.sort_unstable();
            nodes
                .iter()
                .take(k)
                .map(|near| near.1)
                .collect::<Vec<u32>>()
        };

        let all = best(found.iter().map(|near| exact(near.1)).collect());
        let near = rescored(found.clone(), k, norm(query), exact);
        assert_eq!(best(near.clone()), all);
        // The half-precision order differs from the exact one in the first k (so the margin
        // matters), and most candidates are left unscored.
        let coarse_first: Vec<u32> = found.iter().take(k).map(|near| near.1).collect();
        assert_ne!(coarse_first, all);
        assert!(near.len() < found.len() / 2, "{} rescored", near.len());
    }
}
