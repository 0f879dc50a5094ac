//! Random upsert/remove/reopen sequences against a `HashMap` model of the index.

use std::collections::HashMap;

use proptest::prelude::*;
use xsearch_index::{Entry, FileStamp, Id, Index, IndexOptions, IndexSpec};

const DIM: usize = 4;

#[derive(Debug, Clone)]
enum Op {
    /// (key number, vector) pairs; a key may repeat within a batch.
    Upsert(Vec<(u8, Vec<f32>)>),
    Remove(Vec<u8>),
    /// Drop without a checkpoint (a kill after the last commit), then open again.
    Reopen,
    /// Close cleanly, then open again.
    CloseReopen,
    Checkpoint,
}

fn vector() -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec(-1.0f32..1.0, DIM).prop_map(|v| {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-3);
        v.into_iter().map(|x| x / norm).collect()
    })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => prop::collection::vec((0u8..12, vector()), 1..6).prop_map(Op::Upsert),
        2 => prop::collection::vec(0u8..14, 1..4).prop_map(Op::Remove),
        1 => Just(Op::Reopen),
        1 => Just(Op::CloseReopen),
        1 => Just(Op::Checkpoint),
    ]
}

fn key(n: u8) -> Vec<u8> {
    format!("/photos/{n:02}.jpg").into_bytes()
}

fn open(dir: &std::path::Path, exact_threshold: usize) -> Index {
    let spec = IndexSpec {
        model: "model".into(),
        dim: DIM,
    };
    // Small collections churn: compaction runs at many checkpoints, tails fill up within a
    // few batches, and segments pile up enough to be merged.
    let options = IndexOptions {
        compact_fraction: 0.3,
        exact_threshold,
        segment_points: 8,
        ..IndexOptions::default()
    };
    Index::open_with(dir, &spec, options).unwrap()
}

/// The model's exact ranking: score descending, then id ascending.
fn model_ranking(
    model: &HashMap<Vec<u8>, (Id, Vec<f32>)>,
    query: &[f32],
) -> Vec<(Vec<u8>, Id, f32)> {
    let mut ranked: Vec<_> = model
        .iter()
        .map(|(k, (id, v))| {
            let score: f32 = v.iter().zip(query).map(|(a, b)| a * b).sum();
            (k.clone(), *id, score)
        })
        .collect();
    ranked.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.1.cmp(&b.1)));
    ranked
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn index_matches_hashmap_model(
        ops in prop::collection::vec(op(), 1..24),
        query in vector(),
        // 0 sends searches through the graph whenever it has more points than one fetch
        // (tombstones included); tiny graphs are searched exhaustively, so ranks still match.
        exact_threshold in prop_oneof![Just(0), Just(usize::MAX)],
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut index = open(dir.path(), exact_threshold);
        let mut model: HashMap<Vec<u8>, (Id, Vec<f32>)> = HashMap::new();
        for op in ops {
            match op {
                Op::Upsert(batch) => {
                    let entries: Vec<Entry> = batch.iter().map(|(n, v)| Entry {
                        key: key(*n),
                        file: Some(FileStamp { size: 1, mtime_ns: 2, hash: vec![*n] }),
                        vector: v.clone(),
                        meta: None,
                    }).collect();
                    let ids = index.images().upsert_batch(entries).unwrap();
                    for ((n, v), id) in batch.into_iter().zip(ids) {
                        model.insert(key(n), (id, v));
                    }
                }
                Op::Remove(keys) => {
                    let keys: Vec<Vec<u8>> = keys.into_iter().map(key).collect();
                    let expected = keys.iter().collect::<std::collections::HashSet<_>>()
                        .iter().filter(|k| model.contains_key(**k)).count();
                    prop_assert_eq!(index.images().remove(&keys).unwrap(), expected);
                    keys.iter().for_each(|k| { model.remove(k); });
                }
                Op::Reopen => {
                    drop(index);
                    index = open(dir.path(), exact_threshold);
                }
                Op::CloseReopen => {
                    index.close().unwrap();
                    index = open(dir.path(), exact_threshold);
                    prop_assert!(!index.open_report().images.is_repair());
                    // A closed index reopens from its segments alone.
                    prop_assert_eq!(index.images().stats().unwrap().unsealed, 0);
                }
                Op::Checkpoint => index.checkpoint().unwrap(),
            }
            let images = index.images();
            prop_assert_eq!(images.len(), model.len());
            let stats = images.stats().unwrap();
            prop_assert_eq!(stats.graph_points, stats.live + stats.tombstones);
            for (k, (id, v)) in &model {
                let record = images.get(k).unwrap().unwrap();
                prop_assert_eq!(record.id, *id);
                prop_assert_eq!(images.vector(*id).unwrap(), Some(v.clone()));
            }
            for n in 0u8..14 {
                let stored = model.get(&key(n)).cloned();
                prop_assert_eq!(images.lookup_hash(&[n]).unwrap(), stored);
            }
            let expected = model_ranking(&model, &query);
            for hits in [
                images.search(&query, 5, None).unwrap(),
                images.exact_search(&query, 5, None).unwrap(),
            ] {
                prop_assert_eq!(hits.len(), expected.len().min(5));
                for (hit, (k, id, score)) in hits.iter().zip(&expected) {
                    prop_assert_eq!(&hit.key, k);
                    prop_assert_eq!(hit.id, *id);
                    prop_assert!((hit.score - score).abs() < 1e-5);
                }
            }
        }
    }
}
