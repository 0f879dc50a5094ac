//! Sets of ids as bitsets: the live ids of a collection (graph points outside it are
//! tombstones) and the filters a search is given.

use crate::Id;

/// A set of ids: a bitset, since ids are dense counters (one bit per id ever given, so 100k
/// images take 12.5 KB). It is the filter of [`Collection::search`](crate::Collection::search)
/// and [`ReadCollection::search`](crate::ReadCollection::search): only ids in it may answer.
///
/// ```
/// use xsearch_index::IdSet;
///
/// let set: IdSet = [3, 70, 3].into_iter().collect();
/// assert_eq!(set.len(), 2);
/// assert!(set.contains(70) && !set.contains(4));
/// assert_eq!(set.iter().collect::<Vec<_>>(), vec![3, 70]);
/// ```
#[derive(Debug, Clone, Default)]
pub struct IdSet {
    bits: Vec<u64>,
    count: usize,
}

impl IdSet {
    /// An empty set.
    pub fn new() -> IdSet {
        IdSet::default()
    }

    /// Ids in the set.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the set holds no id.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether `id` is in the set.
    #[inline]
    pub fn contains(&self, id: Id) -> bool {
        let (word, bit) = ((id / 64) as usize, id % 64);
        self.bits.get(word).is_some_and(|w| w & (1 << bit) != 0)
    }

    /// Adds `id`; false if it was there already.
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

    /// Removes `id` if it is there.
    pub fn remove(&mut self, id: Id) {
        let (word, bit) = ((id / 64) as usize, id % 64);
        if let Some(w) = self.bits.get_mut(word) {
            if *w & (1 << bit) != 0 {
                *w &= !(1 << bit);
                self.count -= 1;
            }
        }
    }

    /// Keeps only the ids `other` holds too.
    pub fn intersect(&mut self, other: &IdSet) {
        self.bits.truncate(other.bits.len());
        for (word, theirs) in self.bits.iter_mut().zip(&other.bits) {
            *word &= theirs;
        }
        self.count = self.bits.iter().map(|w| w.count_ones() as usize).sum();
    }

    /// How many ids both sets hold (word by word: a filter's live matches, counted in
    /// microseconds for 100k ids).
    pub fn intersection_len(&self, other: &IdSet) -> usize {
        self.bits
            .iter()
            .zip(&other.bits)
            .map(|(a, b)| (a & b).count_ones() as usize)
            .sum()
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

impl FromIterator<Id> for IdSet {
    fn from_iter<I: IntoIterator<Item = Id>>(ids: I) -> IdSet {
        let mut set = IdSet::new();
        ids.into_iter().for_each(|id| {
            set.insert(id);
        });
        set
    }
}

impl PartialEq for IdSet {
    /// Equal when they hold the same ids (however long their words).
    fn eq(&self, other: &IdSet) -> bool {
        self.count == other.count && self.intersection_len(other) == self.count
    }
}

impl Eq for IdSet {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intersection_counts_and_keeps_common_ids() {
        let mut a: IdSet = [1, 64, 65, 200, 1000].into_iter().collect();
        let b: IdSet = [64, 200, 5].into_iter().collect();
        assert_eq!(a.intersection_len(&b), 2);
        a.intersect(&b);
        assert_eq!(a.iter().collect::<Vec<_>>(), vec![64, 200]);
        assert_eq!(a.len(), 2);
        assert_eq!(a, [200, 64].into_iter().collect());
        a.remove(64);
        assert!(!a.contains(64) && a.contains(200));
    }
}
