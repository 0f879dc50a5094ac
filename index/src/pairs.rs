//! Similar pairs: the pairs of live records whose vectors' dot product reaches a floor (what a
//! near-duplicate finder needs), and the neighbours of one stored record. Shared by the writer
//! and the reader over [`Searchable`], like the search itself.
//!
//! Never all pairs of a large collection: each record asks the graphs for its nearest few
//! ([`NEIGHBOURS`], with a beam of [`PAIRS_EF`]), so the pass costs one small search per record.
//! Where the records taking part are at most the exact-search threshold, every pair among them
//! is scored exactly instead (as searches of small collections are): cheaper there, and exact.

use rayon::prelude::*;

use crate::exact::CHUNK;
use crate::kernels::dot;
use crate::search::{self, Searchable, Tuning};
use crate::types::{Hit, IdFilter, Pair};
use crate::{Id, IndexError};

/// Neighbours each record asks the graphs for. A group of near-duplicates larger than this
/// is still found whole: its members link up through each other's neighbours.
pub(crate) const NEIGHBOURS: usize = 16;

/// The beam of the graph searches of the pass: near-duplicates are each other's very nearest
/// neighbours, which a narrow beam finds (recall of planted pairs in `BENCHMARKS.md`), at a
/// fraction of the cost of a query's beam.
pub(crate) const PAIRS_EF: usize = 64;

/// The pairs of live records accepted by `accept` whose dot product is at least `min_score`,
/// each once as `a < b`, sorted by `(a, b)`.
pub(crate) fn similar_pairs(
    source: &(impl Searchable + Sync),
    exact_threshold: usize,
    min_score: f32,
    accept: Option<IdFilter<'_>>,
) -> Result<Vec<Pair>, IndexError> {
    let ids: Vec<Id> = source
        .live_ids()
        .into_iter()
        .filter(|&id| accept.is_none_or(|accept| accept(id)))
        .collect();
    let mut pairs = if ids.len() <= exact_threshold {
        all_pairs(source, &ids, min_score)?
    } else {
        graph_pairs(source, &ids, min_score, accept)?
    };
    pairs.sort_by_key(|p| (p.a, p.b));
    // The graphs find most pairs from both ends.
    pairs.dedup_by_key(|p| (p.a, p.b));
    Ok(pairs)
}

/// Every pair among `ids`, scored exactly.
fn all_pairs(
    source: &impl Searchable,
    ids: &[Id],
    min_score: f32,
) -> Result<Vec<Pair>, IndexError> {
    let vectors = stored(source, ids)?;
    Ok((0..vectors.len())
        .into_par_iter()
        .flat_map_iter(|i| {
            let vectors = &vectors;
            let (a, va) = &vectors[i];
            vectors[i + 1..].iter().filter_map(move |(b, vb)| {
                let score = dot(va, vb);
                (score >= min_score).then(|| Pair::new(*a, *b, score))
            })
        })
        .collect())
}

/// Each of `ids` searched for its nearest neighbours in the graphs, in chunks (so only one
/// chunk's vectors are in memory), each chunk's searches in parallel.
fn graph_pairs(
    source: &(impl Searchable + Sync),
    ids: &[Id],
    min_score: f32,
    accept: Option<IdFilter<'_>>,
) -> Result<Vec<Pair>, IndexError> {
    // Neighbours the filter rejects take places among the nearest: ask for more, in
    // proportion, so each record still gets about NEIGHBOURS that count.
    let spread = source.live_count().div_ceil(ids.len().max(1));
    let fetch = (NEIGHBOURS + 1) * spread.min(8);
    let ef = PAIRS_EF.max(fetch);
    let mut pairs = Vec::new();
    for chunk in ids.chunks(CHUNK) {
        let found: Vec<Pair> = stored(source, chunk)?
            .par_iter()
            .flat_map_iter(|(id, vector)| {
                let id = *id;
                source
                    .graph_candidates(vector, fetch, ef, None, 0)
                    .into_iter()
                    .filter(move |s| {
                        s.id != id
                            && s.score >= min_score
                            && accept.is_none_or(|accept| accept(s.id))
                    })
                    .map(move |s| Pair::new(id, s.id, s.score))
            })
            .collect();
        pairs.extend(found);
    }
    Ok(pairs)
}

/// The vectors of `ids`, skipping those removed since the ids were listed (a writer goes on
/// writing while its collection is read).
fn stored(source: &impl Searchable, ids: &[Id]) -> Result<Vec<(Id, Vec<f32>)>, IndexError> {
    let mut vectors = Vec::with_capacity(ids.len());
    for &id in ids {
        if let Some(vector) = source.vector_of(id)? {
            vectors.push((id, vector));
        }
    }
    Ok(vectors)
}

/// The `k` records most similar to the stored record `id`, best first, not counting itself
/// (see [`Collection::neighbours`](crate::Collection::neighbours)).
pub(crate) fn neighbours(
    source: &impl Searchable,
    tuning: Tuning,
    id: Id,
    k: usize,
) -> Result<Vec<Hit>, IndexError> {
    let Some(vector) = source.vector_of(id)? else {
        return Ok(Vec::new());
    };
    // Records with the same vector (copies of one file) tie with it: it may rank anywhere
    // among them, so ask for one more and drop it wherever it is.
    let mut hits = search::search(source, tuning, &vector, k.saturating_add(1), None)?;
    hits.retain(|hit| hit.id != id);
    hits.truncate(k);
    Ok(hits)
}
