//! The indexes committed under `fixtures/index/` must open and answer as they did when
//! written: `v2` (the current format) as it is, `v1` and `v1-view` (format 1 before and after
//! it had search views) by converting them. If this fails after a
//! format change, bump `FORMAT_VERSION` and add a new fixture (or a conversion); never
//! regenerate an existing one.

mod common {
    pub mod fixture;
}

use std::path::Path;

use common::fixture;
use xsearch_index::{GraphStatus, ImageMeta, Index, IndexOptions, Reader, FORMAT_VERSION};

/// A private copy of `fixtures/index/<version>`: opening writes to the store and locks it.
fn copy_fixture(version: &str) -> tempfile::TempDir {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/index")
        .join(version);
    let dir = tempfile::tempdir().unwrap();
    fixture::copy_dir(&fixture, dir.path());
    dir
}

fn open(dir: &Path, exact_threshold: usize) -> Index {
    let options = IndexOptions {
        exact_threshold,
        ..IndexOptions::default()
    };
    Index::open_with(dir, &fixture::spec(), options).unwrap()
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

/// What the fixture's history left: counts, rankings by graph and by exact search, texts.
fn assert_answers_as_written(index: &Index) {
    let stats = index.stats().unwrap();
    assert_eq!(stats.images.live, fixture::IMAGES - fixture::REMOVED.len());
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

fn assert_keeps_records_hashes_and_failures(index: &Index) {
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

#[test]
fn v2_fixture_opens_with_its_segments_and_answers() {
    assert_eq!(FORMAT_VERSION, 2);
    for exact_threshold in [usize::MAX, 0] {
        let dir = copy_fixture("v2");
        let files = graph_files(dir.path());
        let index = open(dir.path(), exact_threshold);
        let report = index.open_report();
        assert_eq!(report.converted_from, None);
        assert_eq!(report.images, GraphStatus::Loaded);
        assert_eq!(report.texts, GraphStatus::Loaded);
        // The removed and the replaced vectors are still tombstones in the one segment.
        let stats = index.stats().unwrap();
        assert_eq!(stats.images.tombstones, fixture::REMOVED.len() + 1);
        assert_eq!(stats.images.segments, 1);
        assert_answers_as_written(&index);
        assert_keeps_records_hashes_and_failures(&index);
        drop(index);
        assert_eq!(
            graph_files(dir.path()),
            files,
            "opening rewrote segment files"
        );
    }
}

/// Names and contents of the graph files.
fn graph_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("graph"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).unwrap())
        })
        .collect();
    files.sort();
    files
}

#[test]
fn v1_fixture_is_converted_loudly_and_answers() {
    for exact_threshold in [usize::MAX, 0] {
        let dir = copy_fixture("v1");
        let index = open(dir.path(), exact_threshold);
        let report = index.open_report().clone();
        assert_eq!(report.converted_from, Some(1));
        // Format 1 written before search views existed: its hnsw_rs snapshots are not read,
        // the graphs are rebuilt from the store, and said so.
        for (status, live) in [
            (&report.images, fixture::IMAGES - fixture::REMOVED.len()),
            (&report.texts, fixture::TEXTS.len()),
        ] {
            match status {
                GraphStatus::Rebuilt { reason, inserted } => {
                    assert!(reason.contains("format 1"), "{reason}");
                    assert_eq!(*inserted, live);
                }
                other => panic!("expected Rebuilt, got {other:?}"),
            }
        }
        assert_eq!(index.stats().unwrap().images.tombstones, 0);
        assert_answers_as_written(&index);
        assert_keeps_records_hashes_and_failures(&index);

        // Converted once: the snapshot files are gone, and the next open is a plain one.
        drop(index);
        let names: Vec<String> = std::fs::read_dir(dir.path().join("graph"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| n.ends_with(".seg")), "{names:?}");
        let index = open(dir.path(), exact_threshold);
        assert_eq!(index.open_report().converted_from, None);
        assert_eq!(index.open_report().images, GraphStatus::Loaded);
        assert_answers_as_written(&index);
    }
}

#[test]
fn v1_fixture_with_search_views_is_converted_by_adopting_them() {
    let dir = copy_fixture("v1-view");
    let index = open(dir.path(), 0);
    let report = index.open_report().clone();
    assert_eq!(report.converted_from, Some(1));
    // The views held every vector: nothing to rebuild, and the tombstones are still there.
    assert_eq!(report.images, GraphStatus::Loaded);
    assert_eq!(report.texts, GraphStatus::Loaded);
    let stats = index.stats().unwrap();
    assert_eq!(stats.images.tombstones, fixture::REMOVED.len() + 1);
    assert_eq!(stats.images.segments, 1);
    assert_answers_as_written(&index);
    assert_keeps_records_hashes_and_failures(&index);
    drop(index);
    let mut names: Vec<String> = std::fs::read_dir(dir.path().join("graph"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    // The views were written again in the current layout, under new names.
    assert_eq!(names, ["images-0.seg", "texts-0.seg"]);
    let index = open(dir.path(), 0);
    assert_eq!(index.open_report().converted_from, None);
    assert_eq!(index.open_report().images, GraphStatus::Loaded);
}

/// Indexes written before image metadata existed open with none, and take it without any
/// vector being written again (what `xsearch index` does to them on its next run).
#[test]
fn v2_fixture_gains_metadata_without_new_vectors() {
    let dir = copy_fixture("v2");
    let index = open(dir.path(), 0);
    let images = index.images();
    let record = images.get(&fixture::image_key(3)).unwrap().unwrap();
    assert_eq!(images.meta_of(record.id).unwrap(), None);
    assert!(images.meta_table().is_empty());
    let meta = ImageMeta {
        camera: Some("Canon EOS 5D".to_owned()),
        width: 640,
        height: 480,
        ..ImageMeta::default()
    };
    assert_eq!(images.set_meta(vec![(record.id, meta.clone())]).unwrap(), 1);
    index.checkpoint().unwrap();
    // Same id, same vector: nothing was embedded or inserted again.
    assert_eq!(
        images.get(&fixture::image_key(3)).unwrap(),
        Some(record.clone())
    );
    assert_eq!(
        index.stats().unwrap().images.graph_points,
        fixture::IMAGES + 1
    );
    assert_answers_as_written(&index);
    drop(index);
    let reader = Reader::open(dir.path()).unwrap();
    assert_eq!(reader.images().meta_of(record.id), Some(&meta));
}
