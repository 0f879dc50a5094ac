//! Opening, locking, segments and bookkeeping of an index directory.

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
            meta: None,
        })
        .collect()
}

/// Forces the graph path so segments matter for search.
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

fn segment_files(dir: &Path) -> Vec<std::path::PathBuf> {
    graph_files(dir)
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "seg"))
        .collect()
}

fn top_key(index: &Index, seed: usize) -> Vec<u8> {
    index.images().search(&unit(seed), 1, None).unwrap()[0]
        .key
        .clone()
}

fn key(i: usize) -> Vec<u8> {
    format!("/p/{i:04}.jpg").into_bytes()
}

#[test]
fn segments_are_mapped_on_reopen_and_new_vectors_join_them() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open_with(dir.path(), &spec(), graph_options()).unwrap();
    assert_eq!(index.open_report().images, GraphStatus::Empty);
    index.images().upsert_batch(entries(0..300)).unwrap();
    assert_eq!(index.images().stats().unwrap().unsealed, 300);
    index.close().unwrap();

    let index = Index::open_with(dir.path(), &spec(), graph_options()).unwrap();
    assert_eq!(index.open_report().images, GraphStatus::Loaded);
    assert_eq!(index.open_report().texts, GraphStatus::Empty);
    let stats = index.images().stats().unwrap();
    assert_eq!(
        (stats.live, stats.graph_points, stats.tombstones),
        (300, 300, 0)
    );
    assert_eq!((stats.segments, stats.unsealed), (1, 0));
    // The segment finds each stored vector as its own best match; new vectors go to the
    // tail, which searches see at once.
    assert_eq!(top_key(&index, 123), key(123));
    index.images().upsert_batch(entries(300..310)).unwrap();
    assert_eq!(index.images().stats().unwrap().unsealed, 10);
    assert_eq!(top_key(&index, 305), key(305));
    index.close().unwrap();

    let index = Index::open_with(dir.path(), &spec(), graph_options()).unwrap();
    assert_eq!(index.open_report().images, GraphStatus::Loaded);
    let stats = index.images().stats().unwrap();
    assert_eq!((stats.live, stats.segments, stats.unsealed), (310, 2, 0));
    assert_eq!(segment_files(dir.path()).len(), 2);
    assert_eq!(top_key(&index, 305), key(305));
    assert_eq!(top_key(&index, 123), key(123));
}

#[test]
fn opening_a_clean_index_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open_with(dir.path(), &spec(), graph_options()).unwrap();
    index.images().upsert_batch(entries(0..100)).unwrap();
    index.close().unwrap();
    let modified = |dir: &Path| -> Vec<_> {
        graph_files(dir)
            .into_iter()
            .map(|f| (f.clone(), std::fs::metadata(f).unwrap().modified().unwrap()))
            .collect()
    };
    let before = modified(dir.path());
    let index = Index::open_with(dir.path(), &spec(), graph_options()).unwrap();
    assert_eq!(top_key(&index, 5), key(5));
    index.close().unwrap();
    assert_eq!(modified(dir.path()), before);
}

#[test]
fn vectors_committed_after_the_last_checkpoint_are_added_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open_with(dir.path(), &spec(), graph_options()).unwrap();
    index.images().upsert_batch(entries(0..200)).unwrap();
    index.close().unwrap();
    // Commit more and "die" without a checkpoint: the tail is lost with the process.
    let index = Index::open_with(dir.path(), &spec(), graph_options()).unwrap();
    index.images().upsert_batch(entries(200..250)).unwrap();
    index.images().remove(&[key(7)]).unwrap();
    drop(index);

    let index = Index::open_with(dir.path(), &spec(), graph_options()).unwrap();
    assert_eq!(
        index.open_report().images,
        GraphStatus::Updated { inserted: 50 }
    );
    assert!(index.open_report().images.is_repair());
    let stats = index.images().stats().unwrap();
    assert_eq!(
        (stats.live, stats.graph_points, stats.tombstones),
        (249, 250, 1)
    );
    assert_eq!((stats.segments, stats.unsealed), (2, 0));
    let hits = index.images().search(&unit(7), 300, None).unwrap();
    assert!(hits.iter().all(|h| h.key != key(7)));
    assert_eq!(hits.len(), 249);
    assert_eq!(top_key(&index, 230), key(230));
    // The repair wrote its segment: the next open has nothing to do.
    drop(index);
    let index = Index::open_with(dir.path(), &spec(), graph_options()).unwrap();
    assert_eq!(index.open_report().images, GraphStatus::Loaded);
}

#[test]
fn corrupt_segment_is_rebuilt_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open_with(dir.path(), &spec(), graph_options()).unwrap();
    index.images().upsert_batch(entries(0..100)).unwrap();
    index.close().unwrap();
    let files = segment_files(dir.path());
    assert_eq!(files.len(), 1, "{files:?}");
    let mut bytes = std::fs::read(&files[0]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&files[0], bytes).unwrap();

    let index = Index::open_with(dir.path(), &spec(), graph_options()).unwrap();
    match &index.open_report().images {
        GraphStatus::Rebuilt { reason, inserted } => {
            assert!(reason.contains("checksum mismatch"), "{reason}");
            assert_eq!(*inserted, 100);
        }
        other => panic!("expected Rebuilt, got {other:?}"),
    }
    assert!(index.open_report().images.to_string().contains("rebuilt"));
    assert_eq!(top_key(&index, 42), key(42));
    // The corrupt file was replaced.
    let new_files = segment_files(dir.path());
    assert_eq!(new_files.len(), 1);
    assert_ne!(new_files, files);
    drop(index);
    let index = Index::open_with(dir.path(), &spec(), graph_options()).unwrap();
    assert_eq!(index.open_report().images, GraphStatus::Loaded);
}

#[test]
fn missing_segments_are_rebuilt_and_reported() {
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
fn the_tail_is_sealed_when_it_reaches_the_segment_size() {
    let dir = tempfile::tempdir().unwrap();
    let options = IndexOptions {
        segment_points: 64,
        // Every segment is smaller than the beam, so each is searched exhaustively: this
        // test is about merging their answers (recall.rs measures the graphs).
        ef_search: 128,
        ..graph_options()
    };
    let index = Index::open_with(dir.path(), &spec(), options).unwrap();
    for start in (0..200).step_by(10) {
        index
            .images()
            .upsert_batch(entries(start..start + 10))
            .unwrap();
        // The memory a writer holds: never more than one segment (and a batch).
        assert!(index.images().stats().unwrap().unsealed < 64);
    }
    let stats = index.images().stats().unwrap();
    assert_eq!((stats.segments, stats.unsealed), (2, 60));
    assert_eq!(segment_files(dir.path()).len(), 2);
    for seed in [3, 77, 150, 199] {
        assert_eq!(top_key(&index, seed), key(seed));
    }
    index.close().unwrap();
    let index = Index::open_with(dir.path(), &spec(), options).unwrap();
    assert_eq!(index.open_report().images, GraphStatus::Loaded);
    assert_eq!(index.images().stats().unwrap().segments, 3);
    // Searching three graphs finds what one exact scan finds.
    for seed in [5, 90, 180] {
        let query = unit(seed * 31 + 1);
        let graph = index.images().search(&query, 10, None).unwrap();
        let exact = index.images().exact_search(&query, 10, None).unwrap();
        let keys =
            |hits: &[xsearch_index::Hit]| hits.iter().map(|h| h.key.clone()).collect::<Vec<_>>();
        assert_eq!(keys(&graph), keys(&exact));
        for (g, e) in graph.iter().zip(&exact) {
            assert!((g.score - e.score).abs() < 1e-5);
        }
    }
}

#[test]
fn small_segments_are_merged_at_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open_with(dir.path(), &spec(), graph_options()).unwrap();
    // Twenty runs of five photos each, as a library indexed day by day.
    for run in 0..20 {
        index
            .images()
            .upsert_batch(entries(run * 5..run * 5 + 5))
            .unwrap();
        index.checkpoint().unwrap();
    }
    // Eight segments of five were merged into one of forty, twice: 40, 40, then four of five.
    let stats = index.images().stats().unwrap();
    assert_eq!(
        (stats.live, stats.graph_points, stats.segments),
        (100, 100, 6)
    );
    assert_eq!(segment_files(dir.path()).len(), 6);
    for seed in [0, 39, 41, 99] {
        assert_eq!(top_key(&index, seed), key(seed));
    }
    index.close().unwrap();
    let index = Index::open_with(dir.path(), &spec(), graph_options()).unwrap();
    assert_eq!(index.open_report().images, GraphStatus::Loaded);
    assert_eq!(index.images().stats().unwrap().segments, 6);
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
        (
            stats.live,
            stats.graph_points,
            stats.tombstones,
            stats.segments
        ),
        (70, 70, 0, 1)
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
    assert_eq!(
        index.failure(b"/p/big.png").unwrap().unwrap().reason,
        "image too large"
    );
    assert!(index.failure(b"/p/none.png").unwrap().is_none());
    assert!(index.clear_failure(b"/p/bad.jpg").unwrap());
    assert!(!index.clear_failure(b"/p/bad.jpg").unwrap());
    assert_eq!(index.stats().unwrap().failures, 1);
}

#[test]
fn a_huge_k_allocates_nothing_and_returns_every_record() {
    let dir = tempfile::tempdir().unwrap();
    for options in [IndexOptions::default(), graph_options()] {
        let index = Index::open_with(
            dir.path().join(format!("{}", options.exact_threshold)),
            &spec(),
            options,
        )
        .unwrap();
        index.images().upsert_batch(entries(0..40)).unwrap();
        for k in [usize::MAX, 1 << 32, 1_000_000_000] {
            let hits = index.images().search(&unit(3), k, None).unwrap();
            assert_eq!(hits.len(), 40, "k = {k}");
            assert_eq!(hits[0].key, b"/p/0003.jpg");
            let exact = index.images().exact_search(&unit(3), k, None).unwrap();
            assert_eq!(exact.len(), 40);
        }
    }
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
    // Keys ending in 7.jpg: 40 of 400, so the graph path must widen its search or scan.
    let accept = index
        .images()
        .ids_where(|key, _| key.ends_with(b"7.jpg"))
        .unwrap();
    assert_eq!(accept.len(), 40);
    let query = unit(5);
    let graph = index.images().search(&query, 10, Some(&accept)).unwrap();
    let exact = index
        .images()
        .exact_search(&query, 10, Some(&accept))
        .unwrap();
    assert_eq!(exact.len(), 10);
    assert!(exact.iter().all(|h| h.key.ends_with(b"7.jpg")));
    let graph_keys: Vec<_> = graph.iter().map(|h| &h.key).collect();
    let exact_keys: Vec<_> = exact.iter().map(|h| &h.key).collect();
    assert_eq!(graph_keys, exact_keys);
}

/// Graph GC deletes only files this index wrote (its meta names them): files copied into
/// `graph/` under names like ours stay (issue 12: a stray `graph/images-0.seg` was deleted).
/// That a file half-written by a killed run is deleted is tested inside the crate
/// (`index::tests`), where the kill can be staged.
#[test]
fn files_the_index_did_not_write_are_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open_with(dir.path(), &spec(), graph_options()).unwrap();
    index.images().upsert_batch(entries(0..50)).unwrap();
    index.close().unwrap();
    let graph = dir.path().join("graph");
    for stray in [
        "images-7.seg",
        "images-0.hnsw.graph",
        "images-0.hnsw.data",
        "notes.txt",
    ] {
        std::fs::write(graph.join(stray), b"not ours").unwrap();
    }

    let index = Index::open_with(dir.path(), &spec(), graph_options()).unwrap();
    assert_eq!(index.open_report().images, GraphStatus::Loaded);
    index.images().upsert_batch(entries(50..60)).unwrap();
    index.close().unwrap();
    // A compaction replaces images-0.seg (12 of its 50 points removed) by images-2.seg and
    // deletes it: ours; the strays stay.
    let index = Index::open_with(dir.path(), &spec(), graph_options()).unwrap();
    index
        .images()
        .remove(&[
            key(0),
            key(1),
            key(2),
            key(3),
            key(4),
            key(5),
            key(6),
            key(7),
            key(8),
            key(9),
            key(10),
            key(11),
        ])
        .unwrap();
    index.close().unwrap();

    let names: Vec<String> = graph_files(dir.path())
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "images-0.hnsw.data",
            "images-0.hnsw.graph",
            "images-1.seg",
            "images-2.seg",
            "images-7.seg",
            "notes.txt"
        ]
    );
    assert_eq!(
        std::fs::read(graph.join("images-7.seg")).unwrap(),
        b"not ours"
    );
    let index = Index::open_with(dir.path(), &spec(), graph_options()).unwrap();
    assert_eq!(index.open_report().images, GraphStatus::Loaded);
    assert_eq!(index.images().len(), 48);
}

#[test]
fn a_folder_that_is_not_an_index_is_never_written_to() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("photos");
    std::fs::create_dir_all(folder.join("graph")).unwrap();
    std::fs::write(folder.join("graph/images-0.seg"), b"a user's file").unwrap();
    std::fs::write(folder.join("holiday.jpg"), b"jpeg").unwrap();

    let err = Index::open(&folder, &spec()).err().unwrap();
    assert!(
        matches!(&err, IndexError::NotAnIndex { path } if *path == folder),
        "{err:?}"
    );
    assert!(err.to_string().contains("not an xsearch index"), "{err}");
    let mut left: Vec<_> = walk(&folder);
    left.sort();
    assert_eq!(left, ["graph", "graph/images-0.seg", "holiday.jpg"]);
    assert_eq!(
        std::fs::read(folder.join("graph/images-0.seg")).unwrap(),
        b"a user's file"
    );

    // A missing directory, and an empty one, become new indexes.
    for new in [dir.path().join("new/index"), dir.path().join("empty")] {
        if new.ends_with("empty") {
            std::fs::create_dir(&new).unwrap();
        }
        Index::open(&new, &spec()).unwrap().close().unwrap();
        assert!(new.join("store").is_dir());
        Index::open(&new, &spec()).unwrap().close().unwrap();
    }
}

/// Paths under `dir`, relative, files and directories.
fn walk(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path
            .strip_prefix(dir)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if path.is_dir() {
            found.extend(walk(&path).into_iter().map(|p| format!("{name}/{p}")));
        }
        found.push(name);
    }
    found
}
