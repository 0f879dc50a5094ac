//! HNSW recall against exact search, on clustered vectors like real embeddings.

mod common {
    pub mod clustered;
}

use common::clustered::{centres, sample, Rng};
use xsearch_index::{Entry, GraphStatus, Index, IndexOptions, IndexSpec};

/// dim 64 instead of CLIP's 1024 keeps the build quick in debug; the graph logic is the same.
const DIM: usize = 64;
const POINTS: usize = 20_000;
const CLUSTERS: usize = 200;
const QUERIES: usize = 200;
const K: usize = 10;

#[test]
fn hnsw_recall_at_10_is_at_least_095() {
    let mut rng = Rng(7);
    let centres = centres(&mut rng, CLUSTERS, DIM);
    let points: Vec<Vec<f32>> = (0..POINTS).map(|_| sample(&mut rng, &centres)).collect();
    let queries: Vec<Vec<f32>> = (0..QUERIES).map(|_| sample(&mut rng, &centres)).collect();

    // One graph (the default segment size is larger than the collection), then the same
    // points split over four segments, whose answers each search merges.
    for (segment_points, segments) in [(IndexOptions::default().segment_points, 1), (5_000, 4)] {
        let dir = tempfile::tempdir().unwrap();
        let spec = IndexSpec {
            model: "recall".into(),
            dim: DIM,
        };
        let options = IndexOptions {
            exact_threshold: 0,
            segment_points,
            ..IndexOptions::default()
        };
        let index = Index::open_with(dir.path(), &spec, options).unwrap();
        for (start, chunk) in points.chunks(2_000).enumerate() {
            let batch: Vec<Entry> = chunk
                .iter()
                .enumerate()
                .map(|(i, vector)| Entry {
                    key: format!("/p/{}", start * 2_000 + i).into_bytes(),
                    file: None,
                    vector: vector.clone(),
                    meta: None,
                })
                .collect();
            index.images().upsert_batch(batch).unwrap();
        }
        let recall = recall_at_k(&index, &queries);
        eprintln!("recall@{K} = {recall:.3} ({segments} graphs, before sealing the last)");
        assert!(recall >= 0.95, "recall@{K} = {recall:.3}");

        // Reopened, searches run on the segment files.
        index.close().unwrap();
        let index = Index::open_with(dir.path(), &spec, options).unwrap();
        assert_eq!(index.open_report().images, GraphStatus::Loaded);
        let stats = index.images().stats().unwrap();
        assert_eq!((stats.segments, stats.unsealed), (segments, 0));
        let recall = recall_at_k(&index, &queries);
        eprintln!("recall@{K} = {recall:.3} ({segments} segments)");
        assert!(recall >= 0.95, "recall@{K} = {recall:.3}");
    }
}

fn recall_at_k(index: &Index, queries: &[Vec<f32>]) -> f64 {
    let mut found = 0;
    for query in queries {
        let exact = index.images().exact_search(query, K, None).unwrap();
        let approx = index.images().search(query, K, None).unwrap();
        assert_eq!(approx.len(), K);
        found += approx
            .iter()
            .filter(|h| exact.iter().any(|e| e.id == h.id))
            .count();
    }
    found as f64 / (queries.len() * K) as f64
}
