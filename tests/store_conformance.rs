//! One conformance suite, run against both index backends through `Engine`: the embedded index
//! (a directory) and Milvus (a milvus-lite server this test starts on 127.0.0.1). Every case
//! takes a fresh index location from its backend and checks exact outcomes; the last test
//! indexes the same photos into both and compares their top-k answers.
//!
//! Milvus needs the `milvus` feature (on in the workspace's test build, through the CLI) and
//! milvus-lite (`XSEARCH_CI_VENV` or the PATH); without either the Milvus tests skip loudly,
//! and fail under `CI=true`.

#[path = "common/milvus.rs"]
mod milvus;
#[path = "common/skip.rs"]
mod skip;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use xsearch::{Engine, EngineOptions, Error, IndexError, OpenMode, Query, SearchOptions, Status};

const MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/models/shapes-tiny");

/// Where a case's index lives.
trait Backend {
    /// A new, empty index location named after `case`.
    fn location(&self, case: &str) -> PathBuf;
}

struct Embedded(tempfile::TempDir);

impl Backend for Embedded {
    fn location(&self, case: &str) -> PathBuf {
        self.0.path().join(case)
    }
}

impl Backend for milvus::MilvusLite {
    fn location(&self, case: &str) -> PathBuf {
        PathBuf::from(self.url(case))
    }
}

fn open(location: &Path, model: &str, mode: OpenMode) -> Result<Engine, Error> {
    Engine::open(&EngineOptions::new(model).index(location).mode(mode), None)
}

fn writer(location: &Path) -> Engine {
    open(location, MODEL, OpenMode::Create).unwrap()
}

/// `n` shapes photos in `dir` (absolute), seeded by `seed`.
fn photos(dir: &Path, n: u64, seed: u64) -> Vec<PathBuf> {
    xsearch_shapes::write_dataset(dir, n, seed)
        .unwrap()
        .into_iter()
        .map(|item| std::path::absolute(dir.join(item.file)).unwrap())
        .collect()
}

fn search_paths(engine: &Engine, query: &str, options: &SearchOptions) -> Vec<PathBuf> {
    let hits = engine.search(&Query::text(query), options).unwrap();
    hits.into_iter().map(|hit| hit.path).collect()
}

fn sorted(mut paths: Vec<PathBuf>) -> Vec<PathBuf> {
    paths.sort();
    paths
}

/// Unchanged files are skipped, a changed file is embedded again.
fn incremental_rerun(backend: &dyn Backend, scratch: &Path) {
    let dir = scratch.join("incremental");
    let files = photos(&dir, 6, 1);
    let engine = writer(&backend.location("incremental"));
    let first = engine.ingest(std::slice::from_ref(&dir), &()).unwrap();
    assert_eq!((first.added, first.unchanged), (6, 0), "{first:?}");
    let again = engine.ingest(std::slice::from_ref(&dir), &()).unwrap();
    assert_eq!(
        (again.added, again.unchanged, again.updated),
        (0, 6, 0),
        "{again:?}"
    );
    // Another photo's bytes under the first's name, a second later.
    std::fs::copy(&files[1], &files[0]).unwrap();
    let later = SystemTime::now() + Duration::from_secs(2);
    std::fs::File::options()
        .write(true)
        .open(&files[0])
        .unwrap()
        .set_modified(later)
        .unwrap();
    let changed = engine.ingest(std::slice::from_ref(&dir), &()).unwrap();
    assert_eq!((changed.updated, changed.unchanged), (1, 5), "{changed:?}");
    assert_eq!(engine.image_count().unwrap(), 6);
}

/// A renamed file keeps its vector (found by content hash) and the old path goes.
fn rename_reuses_by_hash(backend: &dyn Backend, scratch: &Path) {
    let dir = scratch.join("rename");
    let files = photos(&dir, 4, 2);
    let engine = writer(&backend.location("rename"));
    engine.ingest(std::slice::from_ref(&dir), &()).unwrap();
    let renamed = dir.join("renamed.png");
    std::fs::rename(&files[2], &renamed).unwrap();
    let summary = engine.ingest(std::slice::from_ref(&dir), &()).unwrap();
    assert_eq!(
        (summary.added, summary.reused, summary.removed),
        (1, 1, 1),
        "{summary:?}"
    );
    let all = search_paths(&engine, "a red circle", &SearchOptions::new(10));
    let mut expected = files.clone();
    expected[2] = std::path::absolute(&renamed).unwrap();
    assert_eq!(sorted(all), sorted(expected));
}

/// A deleted file leaves the index at the next run.
fn deletion(backend: &dyn Backend, scratch: &Path) {
    let dir = scratch.join("deletion");
    let files = photos(&dir, 5, 3);
    let engine = writer(&backend.location("deletion"));
    engine.ingest(std::slice::from_ref(&dir), &()).unwrap();
    std::fs::remove_file(&files[3]).unwrap();
    let summary = engine.ingest(std::slice::from_ref(&dir), &()).unwrap();
    assert_eq!(summary.removed, 1, "{summary:?}");
    assert_eq!(engine.image_count().unwrap(), 4);
    let all = search_paths(&engine, "a blue square", &SearchOptions::new(10));
    assert!(!all.contains(&files[3]), "{all:?}");
    assert_eq!(all.len(), 4);
}

/// Texts are added once each and searched by meaning.
fn texts(backend: &dyn Backend, _scratch: &Path) {
    let engine = writer(&backend.location("texts"));
    let texts = [
        "a red circle",
        "a blue square",
        "a green triangle",
        "a red circle",
    ];
    let texts: Vec<String> = texts.iter().map(|t| t.to_string()).collect();
    assert_eq!(engine.add_texts(&texts).unwrap(), 3);
    assert_eq!(engine.add_texts(&texts).unwrap(), 0);
    assert_eq!(engine.text_count().unwrap(), 3);
    let hits = engine
        .search_texts(&Query::text("a red circle"), &SearchOptions::new(3))
        .unwrap();
    assert_eq!(hits[0].text, "a red circle");
    assert_eq!(hits.len(), 3);
}

/// `within` keeps a folder's images (not a sibling whose name starts the same); time filters
/// apply to capture times (here the files' modification times).
fn folder_and_date_filters(backend: &dyn Backend, scratch: &Path) {
    let root = scratch.join("filters");
    let inside = photos(&root.join("a"), 4, 4);
    let sibling = photos(&root.join("a_b"), 3, 5);
    let engine = writer(&backend.location("filters"));
    engine.ingest(std::slice::from_ref(&root), &()).unwrap();
    let within = SearchOptions::new(20).within(root.join("a"));
    assert_eq!(
        sorted(search_paths(&engine, "a shape", &within)),
        sorted(inside)
    );
    let within = SearchOptions::new(20).within(root.join("a_b"));
    assert_eq!(
        sorted(search_paths(&engine, "a shape", &within)),
        sorted(sibling)
    );
    let past = SystemTime::now() - Duration::from_secs(3600);
    let future = SystemTime::now() + Duration::from_secs(3600);
    assert_eq!(
        search_paths(&engine, "a shape", &SearchOptions::new(20).after(past)).len(),
        7
    );
    assert!(search_paths(&engine, "a shape", &SearchOptions::new(20).after(future)).is_empty());
    assert!(search_paths(&engine, "a shape", &SearchOptions::new(20).before(past)).is_empty());
}

/// Another model is refused by an index made with this one.
fn model_mismatch(backend: &dyn Backend, scratch: &Path) {
    let location = backend.location("mismatch");
    drop(writer(&location));
    // The same model with a different file size: another fingerprint.
    let other = scratch.join("other-model");
    std::fs::create_dir_all(&other).unwrap();
    for file in ["open_clip_config.json", "open_clip_model.safetensors"] {
        std::fs::copy(Path::new(MODEL).join(file), other.join(file)).unwrap();
    }
    let weights = other.join("open_clip_model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    bytes.extend_from_slice(&[0; 8]);
    std::fs::write(&weights, bytes).unwrap();
    match open(&location, other.to_str().unwrap(), OpenMode::Existing) {
        Err(Error::Index(IndexError::ModelMismatch { path, .. })) => assert_eq!(path, location),
        Err(other) => panic!("another error: {other}"),
        Ok(_) => panic!("{}: opened with another model", location.display()),
    }
}

/// `status` counts images, texts and failures, and names the model.
fn status_counts(backend: &dyn Backend, scratch: &Path) {
    let dir = scratch.join("status");
    photos(&dir, 3, 6);
    let broken = std::path::absolute(dir.join("broken.jpg")).unwrap();
    std::fs::write(&broken, b"not a jpeg").unwrap();
    let location = backend.location("status");
    let engine = writer(&location);
    let summary = engine.ingest(std::slice::from_ref(&dir), &()).unwrap();
    assert_eq!((summary.added, summary.failed), (3, 1), "{summary:?}");
    engine.add_texts(&["a red circle".to_string()]).unwrap();
    let Status {
        index,
        model,
        images,
        texts,
        failures,
        dim,
        ..
    } = Engine::inspect(&location).unwrap();
    assert_eq!(index, location);
    assert_eq!(model.as_deref(), Some(MODEL));
    assert_eq!((images, texts, dim), (3, 1, 64));
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].path, broken);
    // A known failure is not retried until the file changes.
    let again = engine.ingest(std::slice::from_ref(&dir), &()).unwrap();
    assert_eq!((again.failed, again.unchanged), (1, 3), "{again:?}");
}

/// A read-only engine searches and refuses to write.
fn read_only(backend: &dyn Backend, scratch: &Path) {
    let dir = scratch.join("read-only");
    photos(&dir, 2, 7);
    let location = backend.location("read_only");
    writer(&location)
        .ingest(std::slice::from_ref(&dir), &())
        .unwrap();
    let reader = open(&location, MODEL, OpenMode::Read).unwrap();
    assert_eq!(reader.image_count().unwrap(), 2);
    match reader.ingest(std::slice::from_ref(&dir), &()) {
        Err(Error::ReadOnly { path }) => assert_eq!(path, location),
        other => panic!("a reader wrote: {other:?}"),
    }
}

type Case = fn(&dyn Backend, &Path);

const CASES: [(&str, Case); 8] = [
    ("incremental_rerun", incremental_rerun),
    ("rename_reuses_by_hash", rename_reuses_by_hash),
    ("deletion", deletion),
    ("texts", texts),
    ("folder_and_date_filters", folder_and_date_filters),
    ("model_mismatch", model_mismatch),
    ("status_counts", status_counts),
    ("read_only", read_only),
];

/// Runs every case against `backend`, naming the case that fails.
fn conform(backend: &dyn Backend, name: &str) {
    let scratch = tempfile::tempdir().unwrap();
    for (case, run) in CASES {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run(backend, &scratch.path().join(case))
        }));
        if let Err(panic) = result {
            eprintln!("{name} backend failed the case `{case}`");
            std::panic::resume_unwind(panic);
        }
    }
}

/// milvus-lite, when this build and this machine can run the Milvus tests.
fn milvus_lite() -> Option<milvus::MilvusLite> {
    if !cfg!(feature = "milvus") {
        skip::skip_or_fail(
            "the Milvus backend is not in this build: run with `--features milvus` (the \
             workspace's tests have it through the CLI)",
        );
        return None;
    }
    milvus::MilvusLite::start(skip::skip_or_fail)
}

#[test]
fn the_embedded_backend_conforms() {
    conform(&Embedded(tempfile::tempdir().unwrap()), "embedded");
}

#[test]
fn the_milvus_backend_conforms() {
    let Some(server) = milvus_lite() else { return };
    conform(&server, "milvus");
}

/// The same photos in both backends answer the same top-k, with the same scores.
#[test]
fn both_backends_give_the_same_top_k() {
    let Some(server) = milvus_lite() else { return };
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("photos");
    photos(&dir, 40, 8);
    let embedded = writer(&scratch.path().join("index"));
    let remote = writer(&server.location("same_top_k"));
    for engine in [&embedded, &remote] {
        let summary = engine.ingest(std::slice::from_ref(&dir), &()).unwrap();
        assert_eq!(summary.added, 40);
    }
    for query in [
        "a red circle",
        "a blue square",
        "a yellow star",
        "a green triangle",
    ] {
        let options = SearchOptions::new(10);
        let a = embedded.search(&Query::text(query), &options).unwrap();
        let b = remote.search(&Query::text(query), &options).unwrap();
        let paths =
            |hits: &[xsearch::ImageHit]| hits.iter().map(|h| h.path.clone()).collect::<Vec<_>>();
        assert_eq!(paths(&a), paths(&b), "{query}");
        for (x, y) in a.iter().zip(&b) {
            assert!(
                (x.score - y.score).abs() < 1e-5,
                "{query}: {} vs {}",
                x.score,
                y.score
            );
            assert_eq!(x.taken, y.taken, "{query}: {}", x.path.display());
        }
    }
}
