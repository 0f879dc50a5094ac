//! A search's filter as the graphs see it: which ids may answer (live ones the caller's
//! [`IdSet`] accepts), and the planner that chooses, graph by graph, between walking it and
//! scanning its admitted points (after qdrant's `query_estimator`: a selective filter makes a
//! walk visit many nodes to find a few that pass, when scoring those few directly is cheaper).

use crate::ids::IdSet;
use crate::Id;

/// Which ids a search may return, and when a graph is better scanned than walked.
pub(crate) struct Admit<'a> {
    live: &'a IdSet,
    filter: Option<&'a IdSet>,
    /// A graph with at most this many admitted points is scanned.
    scan_below: usize,
}

/// How one graph (a segment or the tail) is searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// No admitted point: nothing to do.
    Skip,
    /// Score the admitted points exactly.
    Scan,
    /// Walk the graph, every node traversed, only admitted ones kept.
    Walk,
}

impl<'a> Admit<'a> {
    pub fn new(live: &'a IdSet, filter: Option<&'a IdSet>, scan_below: usize) -> Admit<'a> {
        Admit {
            live,
            filter,
            scan_below,
        }
    }

    /// Whether `id` may answer: live (not a tombstone) and accepted by the filter.
    #[inline]
    pub fn admits(&self, id: Id) -> bool {
        self.live.contains(id) && self.filter.is_none_or(|filter| filter.contains(id))
    }

    /// The plan for a graph holding `ids`. Without a filter the graph is walked uncounted:
    /// only tombstones are refused, and compaction keeps them a small fraction. With one, the
    /// admitted points are counted exactly (a bit test per point, against the thousands of
    /// vectors a walk scores).
    pub fn plan(&self, ids: impl Iterator<Item = Id>) -> Plan {
        if self.filter.is_none() {
            return Plan::Walk;
        }
        match ids.filter(|&id| self.admits(id)).count() {
            0 => Plan::Skip,
            n if n <= self.scan_below => Plan::Scan,
            _ => Plan::Walk,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_by_the_admitted_count_and_refuses_tombstones() {
        let live: IdSet = (0..100).filter(|id| id % 10 != 0).collect();
        let filter: IdSet = (0..30).collect();
        let admit = Admit::new(&live, Some(&filter), 10);
        assert!(admit.admits(5) && !admit.admits(10) && !admit.admits(50));
        assert_eq!(admit.plan(50..100), Plan::Skip);
        // 11..20 holds 9 admitted ids: scanned; 0..30 holds 27: walked.
        assert_eq!(admit.plan(11..20), Plan::Scan);
        assert_eq!(admit.plan(0..30), Plan::Walk);
        let unfiltered = Admit::new(&live, None, 10);
        assert!(unfiltered.admits(51) && !unfiltered.admits(60));
        assert_eq!(unfiltered.plan(std::iter::empty()), Plan::Walk);
    }
}
