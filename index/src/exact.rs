//! Exact (brute-force) search: the path for small collections and the oracle for recall tests.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use rayon::prelude::*;

use crate::Id;

/// Dot product with eight independent accumulators, so the compiler can vectorise it
/// without reassociating floats.
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// A scored id, ordered best first: higher score, then lower id (so ties rank stably).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scored {
    pub id: Id,
    pub score: f32,
}

impl Ord for Scored {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .score
            .total_cmp(&self.score)
            .then(self.id.cmp(&other.id))
    }
}

impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Scored {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Scored {}

/// Keeps the `k` best of what it is offered.
pub(crate) struct TopK {
    k: usize,
    // A max-heap under "best first" order keeps the worst kept item on top.
    heap: BinaryHeap<Scored>,
}

impl TopK {
    pub fn new(k: usize) -> TopK {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
        }
    }

    pub fn offer(&mut self, item: Scored) {
        if self.heap.len() < self.k {
            self.heap.push(item);
        } else if let Some(worst) = self.heap.peek() {
            if item < *worst {
                self.heap.pop();
                self.heap.push(item);
            }
        }
    }

    /// The kept items, best first.
    pub fn into_sorted(self) -> Vec<Scored> {
        self.heap.into_sorted_vec()
    }
}

/// Vectors scored per chunk: big enough to amortise rayon, small enough to bound memory.
pub(crate) const CHUNK: usize = 4096;

/// Scores one chunk of `(id, little-endian f32 bytes)` against `query` into `top`.
pub(crate) fn score_chunk(query: &[f32], chunk: &[(Id, sled::IVec)], top: &mut TopK) {
    let score = |(id, bytes): &(Id, sled::IVec)| Scored {
        id: *id,
        score: dot_le(query, bytes),
    };
    if chunk.len() >= 512 {
        let scored: Vec<Scored> = chunk.par_iter().map(score).collect();
        scored.into_iter().for_each(|s| top.offer(s));
    } else {
        chunk.iter().map(score).for_each(|s| top.offer(s));
    }
}

/// Dot product of `query` with a vector stored as little-endian f32 bytes.
fn dot_le(query: &[f32], bytes: &[u8]) -> f32 {
    let mut v = [0.0f32; 64];
    let mut total = 0.0;
    for (q, b) in query.chunks(64).zip(bytes.chunks(256)) {
        for (dst, src) in v.iter_mut().zip(b.chunks_exact(4)) {
            *dst = f32::from_le_bytes([src[0], src[1], src[2], src[3]]);
        }
        total += dot(q, &v[..q.len()]);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_naive_sum_for_odd_lengths() {
        let a: Vec<f32> = (0..37).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..37).map(|i| 1.0 - i as f32 * 0.25).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-3 * naive.abs());
        let bytes: Vec<u8> = b.iter().flat_map(|x| x.to_le_bytes()).collect();
        assert_eq!(dot_le(&a, &bytes), dot(&a, &b));
    }

    #[test]
    fn top_k_keeps_best_and_breaks_ties_by_id() {
        let mut top = TopK::new(3);
        for (id, score) in [(5, 0.1), (1, 0.9), (4, 0.5), (2, 0.5), (3, 0.7)] {
            top.offer(Scored { id, score });
        }
        let ids: Vec<Id> = top.into_sorted().iter().map(|s| s.id).collect();
        assert_eq!(ids, vec![1, 3, 2]);
    }
}
