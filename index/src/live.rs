//! The ids that have a live record. Graph points outside it are tombstones, skipped by
//! searches.

use crate::Id;

/// The ids that have a live record: a bitset, since ids are dense counters.
#[derive(Default)]
pub(crate) struct LiveSet {
    bits: Vec<u64>,
    count: usize,
}

impl LiveSet {
    /// Ids in the set.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn contains(&self, id: Id) -> bool {
        let (word, bit) = ((id / 64) as usize, id % 64);
        self.bits.get(word).is_some_and(|w| w & (1 << bit) != 0)
    }

    pub fn insert(&mut self, id: Id) -> bool {
        let (word, bit) = ((id / 64) as usize, id % 64);
        if word >= self.bits.len() {
            self.bits.resize(word + 1, 0);
        }
        let fresh = self.bits[word] & (1 << bit) == 0;
        if fresh {
            self.bits[word] |= 1 << bit;
            self.count += 1;
        }
        fresh
    }

    pub fn remove(&mut self, id: Id) {
        let (word, bit) = ((id / 64) as usize, id % 64);
        if let Some(w) = self.bits.get_mut(word) {
            if *w & (1 << bit) != 0 {
                *w &= !(1 << bit);
                self.count -= 1;
            }
        }
    }

    /// Every id in the set, ascending.
    pub fn iter(&self) -> impl Iterator<Item = Id> + '_ {
        self.bits.iter().enumerate().flat_map(|(word, &bits)| {
            (0..64)
                .filter(move |bit| bits & (1 << bit) != 0)
                .map(move |bit| word as Id * 64 + bit)
        })
    }
}
