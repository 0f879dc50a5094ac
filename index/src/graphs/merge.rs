//! Which segments a checkpoint rebuilds: merges that keep the number of segments logarithmic
//! in the collection's size, and compactions that drop tombstones.
//!
//! Every checkpoint seals the vectors committed since the last one into a new segment, so a
//! library indexed a few photos at a time grows a segment per run. Segments of one size level
//! (live vectors within a factor of [`MERGE_FACTOR`]) are merged once there are
//! [`MERGE_FACTOR`] of them, as in Lucene's log merge policy, except that they need not be
//! neighbours: a segment is a set of ids, not a range. Each vector is re-inserted about once
//! per level it climbs (six levels below 100k vectors), and at most `MERGE_FACTOR - 1`
//! segments wait on each level. A merge never builds a segment above the segment size, so a
//! rebuild's memory stays bounded too.

/// Segments merged at once, and the size ratio between levels.
pub(crate) const MERGE_FACTOR: usize = 8;

/// What the policy knows of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentCounts {
    /// Nodes in its graph, tombstones included.
    pub nodes: usize,
    /// Nodes whose record is live.
    pub live: usize,
}

impl SegmentCounts {
    fn level(&self) -> u32 {
        self.live.max(1).ilog(MERGE_FACTOR)
    }

    fn needs_compaction(&self, compact_fraction: f64) -> bool {
        let tombstones = self.nodes - self.live.min(self.nodes);
        tombstones > 0 && tombstones as f64 > compact_fraction * self.nodes as f64
    }
}

/// The next segments to rebuild into one, if any (indices, ascending): first a segment whose
/// tombstones exceed `compact_fraction` of its nodes, then, on the lowest level that has
/// [`MERGE_FACTOR`] segments, the smallest of them that fit together in `max_points` (at
/// least two).
pub(crate) fn next_rebuild(
    segments: &[SegmentCounts],
    max_points: usize,
    compact_fraction: f64,
) -> Option<Vec<usize>> {
    if let Some(i) = segments
        .iter()
        .position(|s| s.needs_compaction(compact_fraction))
    {
        return Some(vec![i]);
    }
    let top = segments.iter().map(SegmentCounts::level).max()?;
    (0..=top).find_map(|level| {
        let mut members: Vec<usize> = (0..segments.len())
            .filter(|&i| segments[i].level() == level)
            .collect();
        if members.len() < MERGE_FACTOR {
            return None;
        }
        members.sort_by_key(|&i| (segments[i].live, i));
        let mut total = 0;
        let mut chosen: Vec<usize> = members
            .into_iter()
            .take(MERGE_FACTOR)
            .take_while(|&i| {
                total += segments[i].live;
                total <= max_points
            })
            .collect();
        chosen.sort_unstable();
        (chosen.len() >= 2).then_some(chosen)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAX_POINTS: usize = 100_000;

    fn live(n: usize) -> SegmentCounts {
        SegmentCounts { nodes: n, live: n }
    }

    /// Applies the policy until it has nothing to do, as a checkpoint does; returns the
    /// vectors inserted by the rebuilds.
    fn settle(segments: &mut Vec<SegmentCounts>) -> usize {
        let mut inserted = 0;
        while let Some(chosen) = next_rebuild(segments, MAX_POINTS, 0.2) {
            let total: usize = chosen.iter().map(|&i| segments[i].live).sum();
            inserted += total;
            let mut i = 0;
            segments.retain(|_| {
                i += 1;
                !chosen.contains(&(i - 1))
            });
            if total > 0 {
                segments.push(live(total));
            }
        }
        inserted
    }

    #[test]
    fn eight_segments_of_one_level_merge_into_one_wherever_they_are() {
        let mut segments = vec![live(20), live(90_000), live(30), live(10), live(500)];
        assert_eq!(next_rebuild(&segments, MAX_POINTS, 0.2), None);
        segments.extend([live(12), live(25), live(40), live(60)]);
        assert_eq!(next_rebuild(&segments, MAX_POINTS, 0.2), None);
        segments.push(live(9));
        assert_eq!(
            next_rebuild(&segments, MAX_POINTS, 0.2),
            Some(vec![0, 2, 3, 5, 6, 7, 8, 9])
        );
        assert_eq!(settle(&mut segments), 206);
        assert_eq!(segments, vec![live(90_000), live(500), live(206)]);
    }

    #[test]
    fn merges_never_exceed_the_segment_size() {
        // Eight of 40k do not fit in 100k: the two smallest do.
        let mut segments = vec![live(40_000), live(41_000), live(39_000), live(42_000)];
        segments.extend([live(43_000), live(44_000), live(45_000), live(46_000)]);
        assert_eq!(settle(&mut segments), 79_000);
        assert!(segments.iter().all(|s| s.live <= MAX_POINTS));
        assert_eq!(segments.len(), 7);
    }

    #[test]
    fn tombstones_past_the_fraction_are_compacted_and_dead_segments_dropped() {
        let mut segments = vec![
            SegmentCounts {
                nodes: 1000,
                live: 900,
            },
            SegmentCounts {
                nodes: 1000,
                live: 700,
            },
            SegmentCounts { nodes: 50, live: 0 },
        ];
        assert_eq!(settle(&mut segments), 700);
        assert_eq!(
            segments,
            vec![
                SegmentCounts {
                    nodes: 1000,
                    live: 900
                },
                live(700)
            ]
        );
    }

    proptest! {
        /// A library indexed a few photos at a time, with now and then a large import: the
        /// segments stay few, and each vector is re-inserted about once per level, not once
        /// per run.
        #[test]
        fn runs_of_additions_keep_segments_few_and_rebuilds_cheap(
            runs in prop::collection::vec(prop_oneof![8 => 1usize..200, 1 => 200usize..5000], 1..400),
        ) {
            let mut segments = Vec::new();
            let (mut added, mut inserted) = (0, 0);
            for n in runs {
                segments.push(live(n));
                added += n;
                inserted += settle(&mut segments);
                let levels = (added.max(1).ilog(MERGE_FACTOR) + 1) as usize;
                prop_assert!(segments.len() <= (MERGE_FACTOR - 1) * levels);
            }
            let levels = added.max(1).ilog(MERGE_FACTOR) as usize + 1;
            prop_assert!(inserted <= added * levels, "{inserted} inserts for {added} vectors");
            prop_assert_eq!(segments.iter().map(|s| s.live).sum::<usize>(), added);
        }
    }
}
