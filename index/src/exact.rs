//! Exact (brute-force) search: the path for small collections and the oracle for recall tests.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use rayon::prelude::*;

use crate::Id;

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

/// Scores one chunk of `(id, vector)` into `top`, with `score` (the writer's vectors are
/// little-endian bytes from the store, a reader's are f32 slices of mapped segments).
pub(crate) fn score_chunk<V: Sync>(
    chunk: &[(Id, V)],
    score: impl Fn(&V) -> f32 + Sync,
    top: &mut TopK,
) {
    let score = |(id, vector): &(Id, V)| Scored {
        id: *id,
        score: score(vector),
    };
    if chunk.len() >= 512 {
        let scored: Vec<Scored> = chunk.par_iter().map(score).collect();
        scored.into_iter().for_each(|s| top.offer(s));
    } else {
        chunk.iter().map(score).for_each(|s| top.offer(s));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
