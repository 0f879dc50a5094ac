//! The search algorithm, shared by the writer's collections and a reader's: exact for small
//! collections, else the graphs, asked for spares when tombstones or a filter drop candidates.

use crate::exact::Scored;
use crate::types::{Hit, KeyFilter};
use crate::{Id, IndexError};

/// What a search needs of a collection, whoever holds it.
pub(crate) trait Searchable {
    /// The embedding dimension.
    fn dim(&self) -> usize;
    /// Live records.
    fn live_count(&self) -> usize;
    /// Points in the graphs, tombstones included.
    fn graph_points(&self) -> usize;
    /// The `fetch` nearest points of every graph that are live, as scored ids, unordered.
    fn graph_candidates(&self, query: &[f32], fetch: usize, ef: usize) -> Vec<Scored>;
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
        filter: Option<KeyFilter<'_>>,
    ) -> Result<Vec<Scored>, IndexError>;
}

/// The `k` records most similar to `query`, best first (see
/// [`Collection::search`](crate::Collection::search)).
pub(crate) fn search(
    source: &impl Searchable,
    exact_threshold: usize,
    ef_search: usize,
    query: &[f32],
    k: usize,
    filter: Option<KeyFilter<'_>>,
) -> Result<Vec<Hit>, IndexError> {
    let k = checked_k(source, query, k)?;
    if k == 0 {
        return Ok(Vec::new());
    }
    if source.live_count() <= exact_threshold {
        return exact_hits(source, query, k, filter);
    }
    // Tombstones and the filter drop candidates, so ask the graphs for spares then.
    let mut fetch = if filter.is_none() && source.graph_points() == source.live_count() {
        k
    } else {
        2 * k + 16
    };
    loop {
        if fetch >= source.graph_points() {
            return exact_hits(source, query, k, filter);
        }
        let mut found = source.graph_candidates(query, fetch, ef_search);
        found.sort();
        // Keys may cost a store lookup each: fetch them only until `k` hits are accepted.
        let mut hits = Vec::with_capacity(k);
        for Scored { id, score } in found {
            let Some(key) = source.key_of(id)? else {
                continue;
            };
            if filter.is_none_or(|accept| accept(&key)) {
                hits.push(Hit { key, id, score });
                if hits.len() == k {
                    return Ok(hits);
                }
            }
        }
        fetch *= 4;
    }
}

/// The exact `k` best records for `query`. Ranking: higher dot product first, then lower id.
pub(crate) fn exact_search(
    source: &impl Searchable,
    query: &[f32],
    k: usize,
    filter: Option<KeyFilter<'_>>,
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
    filter: Option<KeyFilter<'_>>,
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
