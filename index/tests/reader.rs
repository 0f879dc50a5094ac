//! Readers: the published view, opened without the store, while a writer writes.

mod common {
    pub mod fixture;
}

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use proptest::prelude::*;
use xsearch_index::{
    inspect, Entry, FileStamp, Index, IndexError, IndexOptions, IndexSpec, Reader,
};

const DIM: usize = 8;

fn spec() -> IndexSpec {
    IndexSpec {
        model: "reader-test".into(),
        dim: DIM,
    }
}

fn unit(seed: usize) -> Vec<f32> {
    let v: Vec<f32> = (0..DIM)
        .map(|j| ((seed * 7 + j * 13) as f32 * 0.61).sin())
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / norm).collect()
}

fn key(i: usize) -> Vec<u8> {
    format!("/p/{i:04}.jpg").into_bytes()
}

fn entries(range: std::ops::Range<usize>) -> Vec<Entry> {
    range
        .map(|i| Entry {
            key: key(i),
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

fn options(exact_threshold: usize) -> IndexOptions {
    IndexOptions {
        exact_threshold,
        segment_points: 64,
        ..IndexOptions::default()
    }
}

fn keys(hits: &[xsearch_index::Hit]) -> Vec<Vec<u8>> {
    hits.iter().map(|h| h.key.clone()).collect()
}

#[test]
fn readers_see_the_last_published_view_while_the_writer_writes() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open_with(dir.path(), &spec(), options(0)).unwrap();
    index.images().upsert_batch(entries(0..100)).unwrap();
    index
        .texts()
        .upsert_batch(vec![Entry {
            key: b"a red circle".to_vec(),
            file: None,
            vector: unit(7),
            meta: None,
        }])
        .unwrap();
    index
        .record_failure(b"/p/broken.jpg", "invalid JPEG marker")
        .unwrap();
    index.checkpoint().unwrap();

    // The writer holds the store's lock; the reader needs none.
    let first = Reader::open_with(dir.path(), options(0)).unwrap();
    let generation = first.info().generation;
    assert_eq!(first.images().len(), 100);
    assert_eq!(
        first.images().search(&unit(42), 1, None).unwrap()[0].key,
        key(42)
    );
    assert_eq!(
        first.texts().search(&unit(7), 1, None).unwrap()[0].key,
        b"a red circle"
    );
    assert_eq!(first.failures().len(), 1);
    assert_eq!(first.failures()[0].1.reason, "invalid JPEG marker");
    assert_eq!(
        first.images().get(&key(3)),
        index.images().get(&key(3)).unwrap().as_ref()
    );
    assert_eq!(first.stats(), index.stats().unwrap());

    // Committed but not yet published: readers opened now still see the previous view.
    index.images().upsert_batch(entries(100..300)).unwrap();
    index.images().remove(&[key(42)]).unwrap();
    let second = Reader::open_with(dir.path(), options(0)).unwrap();
    assert_eq!(second.info().generation, generation);
    assert_eq!(second.images().len(), 100);
    assert_eq!(second.images().get(&key(200)), None);
    assert_eq!(
        second.images().search(&unit(42), 1, None).unwrap()[0].key,
        key(42)
    );

    // After the checkpoint (which merges, replacing segments the old view named) a new
    // reader sees the new state; the old readers keep answering from their mapped files.
    index.checkpoint().unwrap();
    let third = Reader::open_with(dir.path(), options(0)).unwrap();
    assert!(third.info().generation > generation);
    assert!(third.info().published >= first.info().published);
    assert_eq!(third.images().len(), 299);
    assert_eq!(
        third.images().search(&unit(200), 1, None).unwrap()[0].key,
        key(200)
    );
    assert_ne!(
        third.images().search(&unit(42), 1, None).unwrap()[0].key,
        key(42)
    );
    assert_eq!(third.stats(), index.stats().unwrap());
    assert_eq!(
        first.images().search(&unit(42), 1, None).unwrap()[0].key,
        key(42)
    );
    assert_eq!(
        third
            .images()
            .iter()
            .map(|(k, r)| (k.to_vec(), r.clone()))
            .collect::<Vec<_>>(),
        index
            .images()
            .iter()
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
    );

    // A second writer is still refused.
    let err = Index::open(dir.path(), &spec()).err().unwrap();
    assert!(matches!(err, IndexError::Locked { .. }), "{err:?}");
}

/// Every path under `dir` with its size and modification time.
fn listing(dir: &Path) -> Vec<(PathBuf, u64, SystemTime)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = std::fs::metadata(&path).unwrap();
        if meta.is_dir() {
            found.extend(listing(&path));
        }
        found.push((path, meta.len(), meta.modified().unwrap()));
    }
    found.sort();
    found
}

fn set_mode(dir: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            set_mode(&path, mode);
        }
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_reader_works_on_a_read_only_directory_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index");
    let index = Index::open_with(&path, &spec(), options(0)).unwrap();
    index.images().upsert_batch(entries(0..150)).unwrap();
    index.close().unwrap();
    // sled releases its lock from a background thread a moment after close.
    std::thread::sleep(std::time::Duration::from_millis(100));

    let before = listing(&path);
    set_mode(&path, 0o555);
    for exact_threshold in [0, usize::MAX] {
        let reader = Reader::open_with(&path, options(exact_threshold)).unwrap();
        assert_eq!(
            reader.images().search(&unit(77), 1, None).unwrap()[0].key,
            key(77)
        );
        assert_eq!(reader.images().len(), 150);
        assert_eq!(inspect(&path).unwrap(), *reader.info());
        reader.check_spec(&spec()).unwrap();
        let other = IndexSpec {
            model: "other".into(),
            dim: DIM,
        };
        assert!(matches!(
            reader.check_spec(&other),
            Err(IndexError::ModelMismatch { .. })
        ));
    }
    set_mode(&path, 0o755);
    // Tests run as root, whom permissions do not stop: check that nothing changed at all.
    assert_eq!(listing(&path), before);
}

#[test]
fn a_reader_of_a_folder_that_is_not_an_index_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("holiday.jpg"), b"jpeg").unwrap();
    let before = listing(dir.path());
    for err in [
        Reader::open(dir.path()).err().unwrap(),
        inspect(dir.path()).unwrap_err(),
    ] {
        assert!(matches!(err, IndexError::NotAnIndex { .. }), "{err:?}");
    }
    let missing = dir.path().join("nothing-here");
    assert!(matches!(
        Reader::open(&missing),
        Err(IndexError::NotAnIndex { .. })
    ));
    assert_eq!(listing(dir.path()), before);
}

#[test]
fn a_view_of_an_older_build_is_no_view_until_the_next_writer_publishes() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open_with(dir.path(), &spec(), options(0)).unwrap();
    index.images().upsert_batch(entries(0..20)).unwrap();
    index.close().unwrap();
    // What the build before image metadata published: the same layout under magic `XSREAD01`.
    let view = dir.path().join("view");
    let mut bytes = std::fs::read(&view).unwrap();
    bytes[..8].copy_from_slice(b"XSREAD01");
    let content = bytes.len() - 4;
    let crc = crc32fast::hash(&bytes[..content]).to_le_bytes();
    bytes[content..].copy_from_slice(&crc);
    std::fs::write(&view, bytes).unwrap();
    assert!(matches!(
        Reader::open_with(dir.path(), options(0)),
        Err(IndexError::NoView { path }) if path == dir.path()
    ));
    let index = Index::open_with(dir.path(), &spec(), options(0)).unwrap();
    index.close().unwrap();
    let reader = Reader::open_with(dir.path(), options(0)).unwrap();
    assert_eq!(reader.images().len(), 20);
}

#[test]
fn a_writer_killed_mid_publish_leaves_the_old_view_readable() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open_with(dir.path(), &spec(), options(0)).unwrap();
    index.images().upsert_batch(entries(0..100)).unwrap();
    index.close().unwrap();
    let reader = Reader::open_with(dir.path(), options(0)).unwrap();
    let expected = keys(&reader.images().search(&unit(5), 10, None).unwrap());
    // What a kill leaves: a new view half-written under its temporary name, and a sealed
    // segment file no view names yet.
    std::fs::write(dir.path().join("view.tmp"), b"XSREAD01 half").unwrap();
    std::fs::write(dir.path().join("graph/images-9.seg"), b"half a segment").unwrap();
    let after_kill = Reader::open_with(dir.path(), options(0)).unwrap();
    assert_eq!(after_kill.info(), reader.info());
    assert_eq!(
        keys(&after_kill.images().search(&unit(5), 10, None).unwrap()),
        expected
    );

    // The next writer publishes over the leftover temporary file.
    let index = Index::open_with(dir.path(), &spec(), options(0)).unwrap();
    index.images().upsert_batch(entries(100..110)).unwrap();
    index.close().unwrap();
    let fresh = Reader::open_with(dir.path(), options(0)).unwrap();
    assert_eq!(fresh.images().len(), 110);
    assert!(!dir.path().join("view.tmp").exists());
}

#[test]
fn an_index_without_a_view_is_upgraded_by_its_next_writer() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/index/v2");
    let dir = tempfile::tempdir().unwrap();
    common::fixture::copy_dir(&fixture, dir.path());
    let err = Reader::open(dir.path()).err().unwrap();
    assert!(matches!(err, IndexError::NoView { .. }), "{err:?}");
    assert!(
        err.to_string().contains("Open it once for writing"),
        "{err}"
    );
    assert!(matches!(
        inspect(dir.path()),
        Err(IndexError::NoView { .. })
    ));

    Index::open(dir.path(), &common::fixture::spec())
        .unwrap()
        .close()
        .unwrap();
    let reader = Reader::open(dir.path()).unwrap();
    reader.check_spec(&common::fixture::spec()).unwrap();
    let live = common::fixture::live_images();
    assert_eq!(reader.images().len(), live.len());
    let hits = reader
        .images()
        .search(&common::fixture::vector(17), 1, None)
        .unwrap();
    assert_eq!(hits[0].key, common::fixture::image_key(17));
    assert_eq!(reader.failures()[0].0, common::fixture::FAILED.as_bytes());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// On the same data, a reader answers exactly as the writer: same keys, ids and scores,
    /// by graph and exactly, with tombstones and a filter.
    #[test]
    fn a_reader_answers_as_the_writer(
        n in 1usize..400,
        removed in proptest::collection::vec(0usize..400, 0..60),
        queries in proptest::collection::vec(0usize..1000, 1..6),
        k in 1usize..20,
    ) {
        let dir = tempfile::tempdir().unwrap();
        for exact_threshold in [0, usize::MAX] {
            let path = dir.path().join(exact_threshold.to_string());
            let index = Index::open_with(&path, &spec(), options(exact_threshold)).unwrap();
            for chunk in (0..n).collect::<Vec<_>>().chunks(97) {
                index.images().upsert_batch(entries(chunk[0]..chunk[chunk.len() - 1] + 1)).unwrap();
            }
            let gone: Vec<Vec<u8>> = removed.iter().map(|&i| key(i)).collect();
            index.images().remove(&gone).unwrap();
            index.checkpoint().unwrap();
            let reader = Reader::open_with(&path, options(exact_threshold)).unwrap();
            let odd = index.images().ids_where(|key, _| key[7] % 2 == 1).unwrap();
            prop_assert_eq!(&reader.images().ids_where(|key, _| key[7] % 2 == 1), &odd);
            let tens = index.images().ids_with_prefix(b"/p/001").unwrap();
            prop_assert_eq!(&reader.images().ids_with_prefix(b"/p/001"), &tens);
            for &q in &queries {
                let query = unit(q);
                let writer = index.images().search(&query, k, None).unwrap();
                prop_assert_eq!(&reader.images().search(&query, k, None).unwrap(), &writer);
                let writer = index.images().search(&query, k, Some(&odd)).unwrap();
                prop_assert_eq!(&reader.images().search(&query, k, Some(&odd)).unwrap(), &writer);
                prop_assert!(writer.iter().all(|hit| hit.key[7] % 2 == 1));
                let writer = index.images().search(&query, k, Some(&tens)).unwrap();
                prop_assert_eq!(&reader.images().search(&query, k, Some(&tens)).unwrap(), &writer);
                prop_assert!(writer.iter().all(|hit| hit.key.starts_with(b"/p/001")));
                let writer = index.images().exact_search(&query, k, None).unwrap();
                prop_assert_eq!(&reader.images().exact_search(&query, k, None).unwrap(), &writer);
            }
        }
    }
}

#[test]
fn a_view_is_published_when_the_state_changes_and_only_then() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(dir.path(), &spec()).unwrap();
    index.images().upsert_batch(entries(0..10)).unwrap();
    index.record_failure(b"/p/x.jpg", "first reason").unwrap();
    index.close().unwrap();
    let generation = inspect(dir.path()).unwrap().generation;

    // Opening and closing without a change publishes nothing.
    Index::open(dir.path(), &spec()).unwrap().close().unwrap();
    assert_eq!(inspect(dir.path()).unwrap().generation, generation);

    // A failure recorded again with a new reason is a change, though the count is not.
    let index = Index::open(dir.path(), &spec()).unwrap();
    index.record_failure(b"/p/x.jpg", "second reason").unwrap();
    index.checkpoint().unwrap();
    let reader = Reader::open(dir.path()).unwrap();
    assert_eq!(reader.info().generation, generation + 1);
    assert_eq!(reader.failures()[0].1.reason, "second reason");
    index.clear_failure(b"/p/x.jpg").unwrap();
    index.checkpoint().unwrap();
    assert!(Reader::open(dir.path()).unwrap().failures().is_empty());
}

#[test]
fn the_index_remembers_where_its_model_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(dir.path(), &spec()).unwrap();
    assert_eq!(index.model_source(), None);
    index.close().unwrap();
    assert_eq!(inspect(dir.path()).unwrap().model_source, None);

    let index = Index::open(dir.path(), &spec()).unwrap();
    index.set_model_source("/models/rn50-small").unwrap();
    assert_eq!(index.model_source().as_deref(), Some("/models/rn50-small"));
    index.close().unwrap();

    // Read from the view, without the model, a lock or a write.
    let info = inspect(dir.path()).unwrap();
    assert_eq!(info.model_fingerprint, "reader-test");
    assert_eq!(info.model_source.as_deref(), Some("/models/rn50-small"));
    assert_eq!(
        (info.dim, info.format),
        (DIM, xsearch_index::FORMAT_VERSION)
    );
    assert_eq!(Reader::open(dir.path()).unwrap().info(), &info);
    // The writer reads it back from meta; the fingerprint alone decides a match.
    let index = Index::open(dir.path(), &spec()).unwrap();
    assert_eq!(index.model_source().as_deref(), Some("/models/rn50-small"));
    index.set_model_source("timm/resnet50_clip.openai").unwrap();
    index.close().unwrap();
    assert_eq!(
        inspect(dir.path()).unwrap().model_source.as_deref(),
        Some("timm/resnet50_clip.openai")
    );
}

#[test]
fn an_index_from_before_model_sources_reports_none() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/index/v2");
    let dir = tempfile::tempdir().unwrap();
    common::fixture::copy_dir(&fixture, dir.path());
    let index = Index::open(dir.path(), &common::fixture::spec()).unwrap();
    assert_eq!(index.model_source(), None);
    index.close().unwrap();
    let info = inspect(dir.path()).unwrap();
    assert_eq!(info.model_source, None);
    assert_eq!(info.model_fingerprint, common::fixture::spec().model);
}

#[test]
fn readers_and_writers_name_a_live_id_s_key_and_vector_and_forget_replaced_ids() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open_with(dir.path(), &spec(), options(4)).unwrap();
    let ids = index.images().upsert_batch(entries(0..30)).unwrap();
    // Replacing key 3 gives it a new id; the old one names nothing any more.
    let replaced = index
        .images()
        .upsert_batch(vec![Entry {
            key: key(3),
            file: None,
            vector: unit(100),
            meta: None,
        }])
        .unwrap()[0];
    index.checkpoint().unwrap();
    let reader = Reader::open(dir.path()).unwrap();
    for (i, &id) in ids.iter().enumerate().filter(|&(i, _)| i != 3) {
        assert_eq!(reader.images().key(id), Some(&key(i)[..]));
        assert_eq!(reader.images().vector(id), Some(&unit(i)[..]));
        assert_eq!(index.images().key(id).unwrap(), Some(key(i)));
        assert_eq!(index.images().vector(id).unwrap(), Some(unit(i)));
    }
    assert_eq!(reader.images().key(replaced), Some(&key(3)[..]));
    assert_eq!(reader.images().vector(replaced), Some(&unit(100)[..]));
    for gone in [ids[3], replaced + 1, u64::MAX] {
        assert_eq!(reader.images().key(gone), None);
        assert_eq!(reader.images().vector(gone), None);
        assert_eq!(index.images().key(gone).unwrap(), None);
    }
}
