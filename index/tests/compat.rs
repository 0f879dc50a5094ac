//! The index committed under `fixtures/index/v1` must open and answer as it did when written.
//! If this fails after a format change, bump `FORMAT_VERSION` and add a new fixture (or a
//! migration); never regenerate v1.

mod common {
    pub mod fixture;
}

use std::path::Path;

use common::fixture;
use xsearch_index::{GraphStatus, Index, IndexOptions};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A private copy: opening writes to the store and locks it.
fn open_copy(options: IndexOptions) -> (tempfile::TempDir, Index) {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/index/v1");
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture, dir.path());
    let index = Index::open_with(dir.path(), &fixture::spec(), options).unwrap();
    (dir, index)
}

/// Keys ranked by dot product with `query`, best first (ties cannot occur in this fixture).
fn expected_ranking(live: &[(Vec<u8>, Vec<f32>)], query: &[f32]) -> Vec<Vec<u8>> {
    let mut scored: Vec<(f32, &Vec<u8>)> = live
        .iter()
        .map(|(k, v)| (v.iter().zip(query).map(|(a, b)| a * b).sum(), k))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.into_iter().map(|(_, k)| k.clone()).collect()
}

#[test]
fn v1_fixture_opens_with_its_snapshots_and_answers() {
    for exact_threshold in [usize::MAX, 0] {
        let (_dir, index) = open_copy(IndexOptions {
            exact_threshold,
            ..IndexOptions::default()
        });
        assert_eq!(index.open_report().images, GraphStatus::Loaded);
        assert_eq!(index.open_report().texts, GraphStatus::Loaded);
        let stats = index.stats().unwrap();
        assert_eq!(stats.images.live, fixture::IMAGES - fixture::REMOVED.len());
        assert_eq!(stats.images.tombstones, fixture::REMOVED.len() + 1);
        assert_eq!(stats.texts.live, fixture::TEXTS.len());
        assert_eq!(stats.failures, 1);

        let live = fixture::live_images();
        for seed in [17, fixture::REPLACED_SEED, 5, 333] {
            let query = fixture::vector(seed);
            let hits = index.images().search(&query, 5, None).unwrap();
            let keys: Vec<Vec<u8>> = hits.iter().map(|h| h.key.clone()).collect();
            assert_eq!(keys, expected_ranking(&live, &query)[..5], "seed {seed}");
        }
        let hits = index
            .images()
            .search(&fixture::vector(17), 1, None)
            .unwrap();
        assert_eq!(hits[0].key, fixture::image_key(17));
        assert!((hits[0].score - 1.0).abs() < 1e-5);

        let texts = index
            .texts()
            .search(&fixture::vector(201), 3, None)
            .unwrap();
        assert_eq!(texts[0].key, fixture::TEXTS[1].as_bytes());
        assert_eq!(texts.len(), 3);
    }
}

#[test]
fn v1_fixture_keeps_records_hashes_and_failures() {
    let (_dir, index) = open_copy(IndexOptions::default());
    let images = index.images();
    let record = images.get(&fixture::image_key(3)).unwrap().unwrap();
    assert_eq!(record.file, Some(fixture::stamp(3)));
    assert_eq!(images.vector(record.id).unwrap(), Some(fixture::vector(3)));
    assert_eq!(images.get(&fixture::image_key(5)).unwrap(), None);
    let replaced = images
        .get(&fixture::image_key(fixture::REPLACED))
        .unwrap()
        .unwrap();
    let (id, vector) = images.lookup_hash(b"hash-10").unwrap().unwrap();
    assert_eq!(
        (id, vector),
        (replaced.id, fixture::vector(fixture::REPLACED_SEED))
    );
    assert_eq!(images.lookup_hash(b"hash-6").unwrap(), None);
    let failures = index.failures().unwrap();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].0, fixture::FAILED.as_bytes());
    assert_eq!(failures[0].1.reason, fixture::FAILURE_REASON);
}
