//! Opening, locking, snapshots and bookkeeping of an index directory.

use std::path::Path;

use xsearch_index::{
    Entry, FileStamp, GraphStatus, Index, IndexError, IndexOptions, IndexSpec, FORMAT_VERSION,
};

fn spec() -> IndexSpec {
    IndexSpec {
        model: "test-model".into(),
        dim: 8,
    }
}

/// A deterministic unit vector.
fn unit(seed: usize) -> Vec<f32> {
    let v: Vec<f32> = (0..8)
        .map(|j| ((seed * 7 + j * 13) as f32 * 0.61).sin())
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / norm).collect()
}

fn entries(range: std::ops::Range<usize>) -> Vec<Entry> {
    range
        .map(|i| Entry {
            key: format!("/p/{i:04}.jpg").into_bytes(),
            file: Some(FileStamp {
                size: i as u64,
                mtime_ns: 1_700_000_000_000_000_000 + i as i64,
                hash: format!("h{i}").into_bytes(),
            }),
            vector: unit(i),
        })
        .collect()
}

/// Forces the graph path so snapshots matter for search.
fn graph_options() -> IndexOptions {
    IndexOptions {
        exact_threshold: 0,
        ..IndexOptions::default()
    }
}

fn graph_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("graph"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[test]
fn model_mismatch_names_both() {
    let dir = tempfile::tempdir().unwrap();
    Index::open(dir.path(), &spec()).unwrap().close().unwrap();
    let other = IndexSpec {
        model: "other-model".into(),
        dim: 16,
    };
    let err = Index::open(dir.path(), &other).err().unwrap();
    match &err {
        IndexError::ModelMismatch {
            index, requested, ..
        } => {
            assert_eq!(*index, spec());
            assert_eq!(*requested, other);
        }
        e => panic!("expected ModelMismatch, got {e:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("model 'test-model' (dim 8)"), "{text}");
    assert!(text.contains("model 'other-model' (dim 16)"), "{text}");
}

#[test]
fn foreign_format_version_is_incompatible() {
    let dir = tempfile::tempdir().unwrap();
    Index::open(dir.path(), &spec()).unwrap().close().unwrap();
    {
        let db = sled::open(dir.path().join("store")).unwrap();
        let meta = db.open_tree("meta").unwrap();
        meta.insert("format_version", &99u32.to_be_bytes()).unwrap();
        db.flush().unwrap();
    }
    match Index::open(dir.path(), &spec()) {
        Err(IndexError::Incompatible {
            found, supported, ..
        }) => assert_eq!((found, supported), (99, FORMAT_VERSION)),
        other => panic!("expected Incompatible, got {:?}", other.err()),
    }
}

#[test]
fn second_open_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Index::open(dir.path(), &spec()).unwrap();
    let err = Index::open(dir.path(), &spec()).err().unwrap();
    assert!(matches!(err, IndexError::Locked { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("in use by another xsearch process"),
        "{err}"
    );
}

#[test]
fn snapshot_is_reused_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open_with(dir.path(), &spec(), graph_options()).unwrap();
    assert_eq!(index.open_report().images, GraphStatus::Empty);
    index.images().upsert_batch(entries(0..300)).unwrap();
    index.close().unwrap();

    let index = Index::open_with(dir.path(), &spec(), graph_options()).unwrap();
    assert_eq!(index.open_report().images, GraphStatus::Loaded);
    assert_eq!(index.open_report().texts, GraphStatus::Empty);
    let stats = index.images().stats().unwrap();
    assert_eq!(
        (stats.live, stats.graph_points, stats.tombstones),
        (300, 300, 0)
    );
    assert_eq!(stats.snapshot_generation, Some(stats.generation));
    // The reloaded graph finds each stored vector as its own best match, and takes inserts.
    let query = unit(123);
    assert_eq!(
        index.images().search(&query, 1, None).unwrap()[0].key,
        b"/p/0123.jpg"
    );
    index.images().upsert_batch(entries(300..310)).unwrap();
    let query = unit(305);
    assert_eq!(
        index.images().search(&query, 1, None).unwrap()[0].key,
        b"/p/0305.jpg"
    );
}

#[test]
fn stale_snapshot_is_caught_up_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open_with(dir.path(), &spec(), graph_options()).unwrap();
    index.images().upsert_batch(entries(0..200)).unwrap();
    index.close().unwrap();
    // Commit more and "die" without a checkpoint: the snapshot now covers an older generation.
    let index = Index::open_with(dir.path(), &spec(), graph_options()).unwrap();
    index.images().upsert_batch(entries(200..250)).unwrap();
    index.images().remove(&[b"/p/0007.jpg"]).unwrap();
    drop(index);

    let index = Index::open_with(dir.path(), &spec(), graph_options()).unwrap();
    match &index.open_report().images {
        GraphStatus::Updated {
            snapshot_generation,
            generation,
            inserted,
        } => {
            assert_eq!((*snapshot_generation, *generation, *inserted), (1, 3, 50));
        }
        other => panic!("expected Updated, got {other:?}"),
    }
    let stats = index.images().stats().unwrap();
    assert_eq!(
        (stats.live, stats.graph_points, stats.tombstones),
        (249, 250, 1)
    );
    // The repair wrote a fresh snapshot: the next open loads it.
    assert_eq!(stats.snapshot_generation, Some(3));
    let hits = index.images().search(&unit(7), 300, None).unwrap();
    assert!(hits.iter().all(|h| h.key != b"/p/0007.jpg"));
    assert_eq!(hits.len(), 249);
    drop(index);
    let index = Index::open_with(dir.path(), &spec(), graph_options()).unwrap();
    assert_eq!(index.open_report().images, GraphStatus::Loaded);
}

#[test]
fn corrupt_snapshot_is_rebuilt_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open_with(dir.path(), &spec(), graph_options()).unwrap();
    index.images().upsert_batch(entries(0..100)).unwrap();
    index.close().unwrap();
    let files = graph_files(dir.path());
    // hnsw_rs's graph and data files, and the search view.
    assert_eq!(files.len(), 3, "{files:?}");
    for file in &files {
        let mut bytes = std::fs::read(file).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        std::fs::write(file, bytes).unwrap();
    }

    let index = Index::open_with(dir.path(), &spec(), graph_options()).unwrap();
    match &index.open_report().images {
        GraphStatus::Rebuilt { reason, inserted } => {
            assert!(reason.contains("checksum mismatch"), "{reason}");
            assert_eq!(*inserted, 100);
        }
        other => panic!("expected Rebuilt, got {other:?}"),
    }
    assert!(index.open_report().images.to_string().contains("rebuilt"));
    assert_eq!(
        index.images().search(&unit(42), 1, None).unwrap()[0].key,
        b"/p/0042.jpg"
    );
    // The old, corrupt files were replaced by the new snapshot's.
    let new_files = graph_files(dir.path());
    assert_eq!(new_files.len(), 3);
    assert!(
        new_files.iter().all(|f| !files.contains(f)),
        "{new_files:?}"
    );
}

#[test]
fn missing_snapshot_is_rebuilt_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(dir.path(), &spec()).unwrap();
    index.texts().upsert_batch(entries(0..20)).unwrap();
    index.close().unwrap();
    std::fs::remove_dir_all(dir.path().join("graph")).unwrap();
    let index = Index::open(dir.path(), &spec()).unwrap();
    assert_eq!(index.open_report().images, GraphStatus::Empty);
    match &index.open_report().texts {
        GraphStatus::Rebuilt { inserted, .. } => assert_eq!(*inserted, 20),
        other => panic!("expected Rebuilt, got {other:?}"),
    }
}

#[test]
fn checkpoint_compacts_tombstones() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open_with(dir.path(), &spec(), graph_options()).unwrap();
    index.images().upsert_batch(entries(0..100)).unwrap();
    let gone: Vec<Vec<u8>> = entries(0..30).into_iter().map(|e| e.key).collect();
    assert_eq!(index.images().remove(&gone).unwrap(), 30);
    assert_eq!(index.images().stats().unwrap().tombstones, 30);
    index.checkpoint().unwrap();
    let stats = index.images().stats().unwrap();
    assert_eq!(
        (stats.live, stats.graph_points, stats.tombstones),
        (70, 70, 0)
    );
    // Below the fraction, checkpoint leaves tombstones alone.
    index.images().remove(&[b"/p/0050.jpg"]).unwrap();
    index.checkpoint().unwrap();
    assert_eq!(index.images().stats().unwrap().tombstones, 1);
}

#[test]
fn hashes_find_vectors_until_their_last_record_goes() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(dir.path(), &spec()).unwrap();
    let images = index.images();
    let ids = images.upsert_batch(entries(0..3)).unwrap();
    let (id, vector) = images.lookup_hash(b"h1").unwrap().unwrap();
    assert_eq!((id, vector), (ids[1], unit(1)));
    assert_eq!(images.lookup_hash(b"h").unwrap(), None);
    // A copy of file 1 under another name, reusing its vector.
    let mut copy = entries(1..2);
    copy[0].key = b"/p/copy.jpg".to_vec();
    let copy_id = images.upsert_batch(copy).unwrap()[0];
    images.remove(&[b"/p/0001.jpg"]).unwrap();
    assert_eq!(images.lookup_hash(b"h1").unwrap().unwrap().0, copy_id);
    images.remove(&[b"/p/copy.jpg"]).unwrap();
    assert_eq!(images.lookup_hash(b"h1").unwrap(), None);
    // Re-upserting a key replaces its record and vector.
    let mut changed = entries(2..3);
    changed[0].vector = unit(99);
    changed[0].file.as_mut().unwrap().hash = b"h2-new".to_vec();
    let new_id = images.upsert_batch(changed).unwrap()[0];
    let record = images.get(b"/p/0002.jpg").unwrap().unwrap();
    assert_eq!(record.id, new_id);
    assert_eq!(images.vector(ids[2]).unwrap(), None);
    assert_eq!(images.vector(new_id).unwrap(), Some(unit(99)));
    assert_eq!(images.lookup_hash(b"h2").unwrap(), None);
    let keys: Vec<Vec<u8>> = images.iter().map(|r| r.unwrap().0).collect();
    assert_eq!(keys, vec![b"/p/0000.jpg".to_vec(), b"/p/0002.jpg".to_vec()]);
}

#[test]
fn failures_are_recorded_and_cleared() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(dir.path(), &spec()).unwrap();
    index
        .record_failure(b"/p/bad.jpg", "invalid JPEG marker")
        .unwrap();
    index
        .record_failure(b"/p/big.png", "image too large")
        .unwrap();
    index.close().unwrap();
    let index = Index::open(dir.path(), &spec()).unwrap();
    let failures = index.failures().unwrap();
    assert_eq!(failures.len(), 2);
    assert_eq!(failures[0].0, b"/p/bad.jpg");
    assert_eq!(failures[0].1.reason, "invalid JPEG marker");
    assert!(failures[0].1.time_s > 1_600_000_000);
    assert!(index.clear_failure(b"/p/bad.jpg").unwrap());
    assert!(!index.clear_failure(b"/p/bad.jpg").unwrap());
    assert_eq!(index.stats().unwrap().failures, 1);
}

#[test]
fn bad_vectors_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(dir.path(), &spec()).unwrap();
    let mut short = entries(0..1);
    short[0].vector.pop();
    assert!(matches!(
        index.images().upsert_batch(short),
        Err(IndexError::Dimension {
            expected: 8,
            found: 7,
            ..
        })
    ));
    let mut nan = entries(0..1);
    nan[0].vector[3] = f32::NAN;
    assert!(matches!(
        index.images().upsert_batch(nan),
        Err(IndexError::NonFinite { .. })
    ));
    assert!(matches!(
        index.images().search(&[0.0; 3], 5, None),
        Err(IndexError::Dimension { found: 3, .. })
    ));
    assert!(index.images().is_empty());
}

#[test]
fn filter_restricts_graph_and_exact_search() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open_with(dir.path(), &spec(), graph_options()).unwrap();
    index.images().upsert_batch(entries(0..400)).unwrap();
    // Keys ending in 7.jpg: 40 of 400, so the graph path must widen its search or fall back.
    let accept = |key: &[u8]| key.ends_with(b"7.jpg");
    let query = unit(5);
    let graph = index.images().search(&query, 10, Some(&accept)).unwrap();
    let exact = index
        .images()
        .exact_search(&query, 10, Some(&accept))
        .unwrap();
    assert_eq!(exact.len(), 10);
    assert!(exact.iter().all(|h| accept(&h.key)));
    let graph_keys: Vec<_> = graph.iter().map(|h| &h.key).collect();
    let exact_keys: Vec<_> = exact.iter().map(|h| &h.key).collect();
    assert_eq!(graph_keys, exact_keys);
}

#[test]
fn corrupt_view_falls_back_to_the_graph_snapshot_and_is_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open_with(dir.path(), &spec(), graph_options()).unwrap();
    index.images().upsert_batch(entries(0..100)).unwrap();
    index.close().unwrap();
    let files = graph_files(dir.path());
    let view = files
        .iter()
        .find(|f| f.extension().is_some_and(|e| e == "view"))
        .expect("a view file");
    let mut bytes = std::fs::read(view).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(view, bytes).unwrap();

    let index = Index::open_with(dir.path(), &spec(), graph_options()).unwrap();
    // The graph snapshot itself was intact: nothing to repair or announce.
    assert_eq!(index.open_report().images, GraphStatus::Loaded);
    assert!(!index.images().stats().unwrap().searching_view);
    assert_eq!(
        index.images().search(&unit(42), 1, None).unwrap()[0].key,
        b"/p/0042.jpg"
    );
    // Both were written anew, so the next open reads the view again.
    let new_files = graph_files(dir.path());
    assert_eq!(new_files.len(), 3, "{new_files:?}");
    assert!(!new_files.contains(view), "{new_files:?}");
    drop(index);
    let index = Index::open_with(dir.path(), &spec(), graph_options()).unwrap();
    assert_eq!(index.open_report().images, GraphStatus::Loaded);
    assert!(index.images().stats().unwrap().searching_view);
    assert_eq!(graph_files(dir.path()), new_files);
    assert_eq!(
        index.images().search(&unit(7), 1, None).unwrap()[0].key,
        b"/p/0007.jpg"
    );
}

#[test]
fn writes_after_opening_from_the_view_reach_search_and_the_next_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open_with(dir.path(), &spec(), graph_options()).unwrap();
    index.images().upsert_batch(entries(0..100)).unwrap();
    index.close().unwrap();

    let index = Index::open_with(dir.path(), &spec(), graph_options()).unwrap();
    assert!(index.images().stats().unwrap().searching_view);
    index.images().upsert_batch(entries(100..150)).unwrap();
    assert!(!index.images().stats().unwrap().searching_view);
    index.images().remove(&[b"/p/0042.jpg"]).unwrap();
    let top = |index: &Index, n: usize| index.images().search(&unit(n), 1, None).unwrap();
    assert_eq!(top(&index, 120)[0].key, b"/p/0120.jpg");
    assert_ne!(top(&index, 42)[0].key, b"/p/0042.jpg");
    index.close().unwrap();

    let index = Index::open_with(dir.path(), &spec(), graph_options()).unwrap();
    assert_eq!(index.open_report().images, GraphStatus::Loaded);
    assert!(index.images().stats().unwrap().searching_view);
    assert_eq!(index.images().len(), 149);
    assert_eq!(top(&index, 120)[0].key, b"/p/0120.jpg");
    assert_eq!(top(&index, 7)[0].key, b"/p/0007.jpg");
    assert_ne!(top(&index, 42)[0].key, b"/p/0042.jpg");
    let stats = index.images().stats().unwrap();
    assert_eq!(stats.graph_points, 150);
}

#[test]
fn files_left_by_an_interrupted_checkpoint_are_removed_by_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open_with(dir.path(), &spec(), graph_options()).unwrap();
    index.images().upsert_batch(entries(0..50)).unwrap();
    index.close().unwrap();
    // What a kill between writing a snapshot and recording it in meta leaves behind.
    let graph = dir.path().join("graph");
    for stray in ["images-7.hnsw.graph", "images-7.hnsw.data", "images-7.view"] {
        std::fs::write(graph.join(stray), b"half-written").unwrap();
    }
    std::fs::write(graph.join("notes.txt"), b"not ours").unwrap();

    let index = Index::open_with(dir.path(), &spec(), graph_options()).unwrap();
    assert_eq!(index.open_report().images, GraphStatus::Loaded);
    index.images().upsert_batch(entries(50..60)).unwrap();
    index.close().unwrap();

    let names: Vec<String> = graph_files(dir.path())
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
    assert!(names.contains(&"notes.txt".to_string()), "{names:?}");
    assert!(
        names.iter().all(|n| !n.starts_with("images-7")),
        "{names:?}"
    );
    let index = Index::open_with(dir.path(), &spec(), graph_options()).unwrap();
    assert_eq!(index.open_report().images, GraphStatus::Loaded);
    assert_eq!(index.images().len(), 60);
}
