//! The search algorithm, shared by the writer's collections and a reader's: the filter (an
//! [`IdSet`]) and the tombstones are checked inside the graph walk, a planner scans instead
//! when the filter is selective, and keys are looked up for the final hits only.

use crate::exact::Scored;
use crate::ids::IdSet;
use crate::types::Hit;
use crate::{Id, IndexError};

/// What a search needs of a collection, whoever holds it.
pub(crate) trait Searchable {
    /// The embedding dimension.
    fn dim(&self) -> usize;
    /// Live records.
    fn live_count(&self) -> usize;
    /// Live records whose id `filter` holds.
    fn admitted_count(&self, filter: &IdSet) -> usize;
    /// The `k` best live points of every graph that `filter` accepts, as scored ids,
    /// unordered: each graph searched as [`crate::filter::Admit::plan`] says, with `scan_below`.
    fn graph_candidates(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        filter: Option<&IdSet>,
        scan_below: usize,
    ) -> Vec<Scored>;
    /// The key of a live id.
    fn key_of(&self, id: Id) -> Result<Option<Vec<u8>>, IndexError>;
    /// Every live id, ascending.
    fn live_ids(&self) -> Vec<Id>;
    /// The vector of a live id.
    fn vector_of(&self, id: Id) -> Result<Option<Vec<f32>>, IndexError>;
    /// The exact `k` best live ids (accepted by `filter`), best first.
    fn exact_top(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&IdSet>,
    ) -> Result<Vec<Scored>, IndexError>;
}

/// How a collection is searched: [`IndexOptions`](crate::IndexOptions)'s knobs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tuning {
    pub exact_threshold: usize,
    pub ef_search: usize,
    pub filter_scan_factor: usize,
}

impl From<crate::IndexOptions> for Tuning {
    fn from(options: crate::IndexOptions) -> Tuning {
        Tuning {
            exact_threshold: options.exact_threshold,
            ef_search: options.ef_search,
            filter_scan_factor: options.filter_scan_factor,
        }
    }
}

/// The `k` records most similar to `query`, best first (see
/// [`Collection::search`](crate::Collection::search)).
pub(crate) fn search(
    source: &impl Searchable,
    tuning: Tuning,
    query: &[f32],
    k: usize,
    filter: Option<&IdSet>,
) -> Result<Vec<Hit>, IndexError> {
    let k = checked_k(source, query, k)?;
    let matches = filter.map_or(source.live_count(), |f| source.admitted_count(f));
    let k = k.min(matches);
    if k == 0 {
        return Ok(Vec::new());
    }
    let ef = tuning.ef_search.max(k);
    let scan_below = tuning.filter_scan_factor.saturating_mul(ef);
    // A small collection, or a filter that few records pass, is cheaper scanned than walked.
    let selective = filter.is_some() && matches <= scan_below;
    if source.live_count() <= tuning.exact_threshold || selective {
        return exact_hits(source, query, k, filter);
    }
    let mut found = source.graph_candidates(query, k, ef, filter, scan_below);
    // Each walk goes on until `ef` admitted nodes or its whole graph is seen, so fewer than
    // `k` means admitted nodes no walk reached: the exact scan finds them.
    if found.len() < k {
        return exact_hits(source, query, k, filter);
    }
    found.sort();
    let mut hits = Vec::with_capacity(k);
    for Scored { id, score } in found.into_iter().take(k) {
        if let Some(key) = source.key_of(id)? {
            hits.push(Hit { key, id, score });
        }
    }
    Ok(hits)
}

/// The exact `k` best records for `query`. Ranking: higher dot product first, then lower id.
pub(crate) fn exact_search(
    source: &impl Searchable,
    query: &[f32],
    k: usize,
    filter: Option<&IdSet>,
) -> Result<Vec<Hit>, IndexError> {
    let k = checked_k(source, query, k)?;
    if k == 0 {
        return Ok(Vec::new());
    }
    exact_hits(source, query, k, filter)
}

/// Checks `query` and bounds `k` by the live records: `k` comes from users, and never sizes
/// more slots than there are records to fill them.
fn checked_k(source: &impl Searchable, query: &[f32], k: usize) -> Result<usize, IndexError> {
    check_vector(source.dim(), "query", query)?;
    Ok(k.min(source.live_count()))
}

/// [`exact_search`] once the query is checked and `0 < k <= live records`.
fn exact_hits(
    source: &impl Searchable,
    query: &[f32],
    k: usize,
    filter: Option<&IdSet>,
) -> Result<Vec<Hit>, IndexError> {
    let mut hits = Vec::with_capacity(k);
    for Scored { id, score } in source.exact_top(query, k, filter)? {
        if let Some(key) = source.key_of(id)? {
            hits.push(Hit { key, id, score });
        }
    }
    Ok(hits)
}

/// Refuses a vector of the wrong dimension or with a NaN or infinity.
pub(crate) fn check_vector(dim: usize, key: &str, vector: &[f32]) -> Result<(), IndexError> {
    if vector.len() != dim {
        return Err(IndexError::Dimension {
            key: key.to_string(),
            expected: dim,
            found: vector.len(),
        });
    }
    if !vector.iter().all(|x| x.is_finite()) {
        return Err(IndexError::NonFinite {
            key: key.to_string(),
        });
    }
    Ok(())
}
