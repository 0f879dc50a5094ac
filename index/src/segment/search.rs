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
    /// with the `ef` nodes kept scored again in f32.
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
        let admitted = |node: u32| admit.admits(self.ids[node as usize]);
        let found = VISITED.with(|visited| {
            let mut visited = visited.borrow_mut();
            visited.reset(self.ids.len());
            self.search_layer0(entry, ef.max(k), &coarse, &admitted, &mut visited)
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
        visited: &mut Visited,
    ) -> Vec<Near> {
        let layer = &self.layers[0];
        let mut candidates = BinaryHeap::from([Reverse(entry)]);
        let mut best = BinaryHeap::with_capacity(ef + 1);
        if admitted(entry.1) {
            best.push(entry);
        }
        visited.insert(entry.1);
        while let Some(Reverse(c)) = candidates.pop() {
            if best.len() >= ef && best.peek().is_some_and(|worst: &Near| c.0 > worst.0) {
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
