//! `Engine::watch` under each kind of change, with real files in temporary folders and the
//! real events of the platform's notify backend. Nothing sleeps to assert: each test polls for
//! the state it expects, up to a deadline, and then checks what the watcher reported doing.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use xsearch::{
    Engine, EngineOptions, Error, IngestSummary, OpenMode, Pass, Query, SearchOptions, WatchEvent,
    WatchOptions,
};
use xsearch_shapes::{render, save, scene, Format};

const MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/models/shapes-tiny");
/// How long a change may take to show: far more than the debounce, for loaded CI machines.
const DEADLINE: Duration = Duration::from_secs(20);
const SEED: u64 = 4242;

/// A watcher running on its own thread over `root`s under a temporary folder.
struct Watching {
    dir: tempfile::TempDir,
    engine: Arc<Engine>,
    passes: Arc<Mutex<Vec<(Pass, IngestSummary)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), Error>>>,
}

impl Watching {
    /// Writes the images of each root (relative to the temporary folder), then starts
    /// watching the roots and waits for the initial pass.
    fn start(roots: &[(&str, &[(&str, u64)])], options: WatchOptions) -> Self {
        let dir = tempfile::tempdir().unwrap();
        for (root, items) in roots {
            std::fs::create_dir_all(dir.path().join(root)).unwrap();
            for (name, item) in *items {
                let path = dir.path().join(root).join(name);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                write_image(&path, *item);
            }
        }
        let engine = EngineOptions::new(MODEL)
            .index(dir.path().join("index"))
            .mode(OpenMode::Create);
        let engine = Arc::new(Engine::open(&engine, None).unwrap());
        let passes = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (engine, passes, stop) = (engine.clone(), passes.clone(), stop.clone());
            let roots: Vec<PathBuf> = roots.iter().map(|(r, _)| dir.path().join(r)).collect();
            std::thread::spawn(move || {
                let observer = |event: WatchEvent<'_>| {
                    if let WatchEvent::Applied { pass, summary, .. } = event {
                        passes.lock().unwrap().push((pass, summary.clone()));
                    }
                };
                engine.watch(&roots, &options, &observer, &stop)
            })
        };
        let watching = Self {
            dir,
            engine,
            passes,
            stop,
            thread: Some(thread),
        };
        watching.wait_for("the initial pass", || watching.passes_since(0).len() == 1);
        watching
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// The passes reported from the `from`th on.
    fn passes_since(&self, from: usize) -> Vec<(Pass, IngestSummary)> {
        self.passes.lock().unwrap()[from..].to_vec()
    }

    fn pass_count(&self) -> usize {
        self.passes.lock().unwrap().len()
    }

    /// Every indexed path, relative to the temporary folder, as a search through the engine
    /// the watcher writes with sees it.
    fn indexed(&self) -> BTreeSet<String> {
        relative(&self.engine, self.dir.path())
    }

    /// Polls `done` until it holds, failing after [`DEADLINE`] with what the watcher did.
    fn wait_for(&self, what: &str, done: impl Fn() -> bool) {
        let start = Instant::now();
        while !done() {
            if self.thread.as_ref().is_some_and(JoinHandle::is_finished) {
                panic!("the watcher ended while waiting for {what}");
            }
            assert!(
                start.elapsed() < DEADLINE,
                "no {what} within {DEADLINE:?}; passes: {:#?}; indexed: {:?}",
                self.passes_since(0),
                self.indexed()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the passes from the `from`th on add up to what `done` wants, and returns
    /// their total.
    fn wait_for_total(
        &self,
        from: usize,
        what: &str,
        done: impl Fn(&IngestSummary) -> bool,
    ) -> IngestSummary {
        self.wait_for(what, || done(&total(&self.passes_since(from))));
        total(&self.passes_since(from))
    }

    /// Stops the watcher, which must end cleanly and soon.
    fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self.thread.take().unwrap();
        let start = Instant::now();
        while !thread.is_finished() {
            assert!(start.elapsed() < DEADLINE, "the watcher did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
        thread.join().unwrap().unwrap();
    }
}

fn relative(engine: &Engine, dir: &Path) -> BTreeSet<String> {
    engine
        .search(&Query::text("a shape"), &SearchOptions::new(1000))
        .unwrap()
        .into_iter()
        .map(|hit| {
            let path = hit.path.strip_prefix(dir).unwrap();
            path.to_str().unwrap().to_owned()
        })
        .collect()
}

/// Writes scene `item` of the test's seed as a PNG: each item is a different picture.
fn write_image(path: &Path, item: u64) {
    save(&render(&scene(SEED, item)), Format::Png, path).unwrap();
}

fn set(paths: &[&str]) -> BTreeSet<String> {
    paths.iter().map(|p| p.to_string()).collect()
}

/// The summaries of `passes`, added up.
fn total(passes: &[(Pass, IngestSummary)]) -> IngestSummary {
    let mut total = IngestSummary::default();
    for (_, s) in passes {
        total.found += s.found;
        total.added += s.added;
        total.updated += s.updated;
        total.reused += s.reused;
        total.removed += s.removed;
        total.failed += s.failed;
    }
    total
}

fn kinds(passes: &[(Pass, IngestSummary)]) -> HashSet<Pass> {
    passes.iter().map(|(pass, _)| *pass).collect()
}

fn quick() -> WatchOptions {
    // Rescans far apart: these changes must come through events.
    WatchOptions::default()
        .debounce(Duration::from_millis(300))
        .rescan_every(Duration::from_secs(3600))
}

// Each test waits on what the watcher reports (a pass is reported once committed and
// published), then checks what search sees.

#[test]
fn created_changed_and_deleted_files_reach_search_and_readers() {
    let w = Watching::start(&[("photos", &[("a.png", 0), ("b.png", 1)])], quick());
    assert_eq!(w.indexed(), set(&["photos/a.png", "photos/b.png"]));

    // Created: searchable through the watching engine, and published to a read-only engine
    // (another process's `xsearch query`).
    let before = w.pass_count();
    write_image(&w.path("photos/c.png"), 2);
    let done = w.wait_for_total(before, "the new file", |t| t.added == 1);
    assert_eq!((done.reused, done.removed), (0, 0));
    let all = set(&["photos/a.png", "photos/b.png", "photos/c.png"]);
    assert_eq!(w.indexed(), all);
    let reader = EngineOptions::new(MODEL)
        .index(w.path("index"))
        .mode(OpenMode::Read);
    let reader = Engine::open(&reader, None).unwrap();
    assert_eq!(relative(&reader, w.dir.path()), all);

    // Changed: a.png becomes another picture, and its stored vector is the new picture's.
    let before = w.pass_count();
    write_image(&w.path("photos/a.png"), 3);
    let done = w.wait_for_total(before, "the changed file", |t| t.updated == 1);
    assert_eq!((done.added, done.reused), (0, 0));
    let hits = w
        .engine
        .search(
            &Query::image(w.path("photos/a.png")),
            &SearchOptions::new(1),
        )
        .unwrap();
    assert_eq!(hits[0].path, w.path("photos/a.png"));
    assert!(hits[0].score > 0.999, "{hits:?}");

    // Deleted: gone from search by its own event.
    let before = w.pass_count();
    std::fs::remove_file(w.path("photos/b.png")).unwrap();
    w.wait_for_total(before, "the deleted file", |t| t.removed == 1);
    assert_eq!(w.indexed(), set(&["photos/a.png", "photos/c.png"]));
    assert_eq!(kinds(&w.passes_since(before)), [Pass::Changes].into());
    w.stop();
}

#[test]
fn renamed_files_and_moved_folders_keep_their_vectors() {
    let w = Watching::start(&[("photos", &[("a.png", 10)])], quick());
    let before = w.pass_count();
    std::fs::create_dir_all(w.path("photos/trip/day1")).unwrap();
    for (name, item) in [("x.png", 11), ("y.png", 12), ("day1/z.png", 13)] {
        write_image(&w.path(&format!("photos/trip/{name}")), item);
    }
    w.wait_for_total(before, "the new folder", |t| t.added == 3);

    let before = w.pass_count();
    std::fs::rename(w.path("photos/a.png"), w.path("photos/renamed.png")).unwrap();
    // Added under its new name with the vector it had: nothing embedded.
    let done = w.wait_for_total(before, "the renamed file", |t| {
        t.added == 1 && t.removed == 1
    });
    assert_eq!((done.reused, done.updated), (1, 0));
    assert_eq!(
        w.indexed(),
        set(&[
            "photos/renamed.png",
            "photos/trip/day1/z.png",
            "photos/trip/x.png",
            "photos/trip/y.png",
        ])
    );

    let before = w.pass_count();
    std::fs::create_dir(w.path("photos/2024")).unwrap();
    std::fs::rename(w.path("photos/trip"), w.path("photos/2024/trip")).unwrap();
    let done = w.wait_for_total(before, "the moved folder", |t| {
        t.added == 3 && t.removed == 3
    });
    assert_eq!((done.reused, done.updated), (3, 0));
    assert_eq!(
        w.indexed(),
        set(&[
            "photos/2024/trip/day1/z.png",
            "photos/2024/trip/x.png",
            "photos/2024/trip/y.png",
            "photos/renamed.png",
        ])
    );
    assert_eq!(kinds(&w.passes_since(before)), [Pass::Changes].into());

    // Moved out of the roots (to the trash, say): gone from search by the event, not left
    // for a rescan.
    let before = w.pass_count();
    std::fs::create_dir(w.path("trash")).unwrap();
    std::fs::rename(w.path("photos/2024"), w.path("trash/2024")).unwrap();
    w.wait_for_total(before, "the folder moved away", |t| t.removed == 3);
    assert_eq!(w.indexed(), set(&["photos/renamed.png"]));
    assert_eq!(kinds(&w.passes_since(before)), [Pass::Changes].into());
    w.stop();
}

#[test]
fn a_burst_of_files_is_applied_in_few_sets() {
    let w = Watching::start(&[("photos", &[])], quick());
    // Encoded first, then copied in one go, as from a camera's card.
    let card = w.path("card");
    std::fs::create_dir(&card).unwrap();
    for i in 0..40 {
        write_image(&card.join(format!("{i:02}.png")), 100 + i);
    }
    for i in 0..40 {
        let name = format!("{i:02}.png");
        std::fs::copy(card.join(&name), w.path(&format!("photos/{name}"))).unwrap();
    }
    w.wait_for_total(1, "the burst", |t| t.added == 40);
    assert_eq!(w.indexed().len(), 40);
    let sets: Vec<_> = w
        .passes_since(1)
        .into_iter()
        .filter(|(pass, s)| *pass == Pass::Changes && s.added > 0)
        .collect();
    // One set when the copies are quicker than the debounce, as here; two if a slow machine
    // paused in the middle. Never one per file.
    assert!(sets.len() <= 2, "{sets:#?}");
    w.stop();
}

#[test]
fn a_vanished_folder_is_pruned_by_the_rescan_that_finds_its_parent() {
    // No event tells of this folder's going (as when a drive mounted inside a root is
    // unmounted, or on a network share): the next rescan prunes it, its parent being there.
    let options = WatchOptions::default()
        .events(false)
        .rescan_every(Duration::from_secs(1));
    let w = Watching::start(
        &[(
            "photos",
            &[("a.png", 20), ("sub/b.png", 21), ("sub/c.png", 22)],
        )],
        options,
    );
    let before = w.pass_count();
    std::fs::rename(w.path("photos/sub"), w.path("elsewhere")).unwrap();
    w.wait_for_total(before, "the vanished folder", |t| t.removed == 2);
    assert_eq!(w.indexed(), set(&["photos/a.png"]));
    assert_eq!(kinds(&w.passes_since(before)), [Pass::Rescan].into());
    w.stop();
}

#[test]
fn a_missing_root_is_never_pruned_and_is_watched_again_when_back() {
    let options = WatchOptions::default()
        .debounce(Duration::from_millis(300))
        .rescan_every(Duration::from_secs(1));
    let w = Watching::start(
        &[
            ("photos", &[("a.png", 23)]),
            ("drive", &[("d.png", 24), ("e.png", 25)]),
        ],
        options,
    );
    let all = set(&["drive/d.png", "drive/e.png", "photos/a.png"]);
    assert_eq!(w.indexed(), all);

    // The root goes (an unplugged drive; here renamed, so that its own event says it left):
    // its photos stay through the rescans that find it missing.
    let before = w.pass_count();
    std::fs::rename(w.path("drive"), w.path("unplugged")).unwrap();
    w.wait_for("two rescans", || {
        let passes = w.passes_since(before);
        passes
            .iter()
            .filter(|(pass, _)| *pass == Pass::Rescan)
            .count()
            >= 2
    });
    assert_eq!(total(&w.passes_since(before)).removed, 0);
    assert_eq!(w.indexed(), all);

    // Back, and watched again: a photo added there is found.
    std::fs::rename(w.path("unplugged"), w.path("drive")).unwrap();
    let before = w.pass_count();
    write_image(&w.path("drive/f.png"), 26);
    w.wait_for_total(before, "the drive's new photo", |t| t.added == 1);
    assert_eq!(
        w.indexed(),
        set(&["drive/d.png", "drive/e.png", "drive/f.png", "photos/a.png"])
    );
    w.stop();
}

#[test]
fn an_empty_folder_standing_in_for_a_root_prunes_nothing_until_it_has_files() {
    // A drive unmounted from a fixed mount point leaves an empty folder at the root's path:
    // another folder than the drive's. Here the root is moved away and an empty folder made in
    // its place, which looks the same to the watcher.
    let options = WatchOptions::default()
        .debounce(Duration::from_millis(300))
        .rescan_every(Duration::from_secs(1));
    let w = Watching::start(&[("drive", &[("d.png", 40), ("e.png", 41)])], options);
    let before = w.pass_count();
    std::fs::rename(w.path("drive"), w.path("unmounted")).unwrap();
    std::fs::create_dir(w.path("drive")).unwrap();
    w.wait_for("two rescans", || {
        let passes = w.passes_since(before);
        passes
            .iter()
            .filter(|(pass, _)| *pass == Pass::Rescan)
            .count()
            >= 2
    });
    assert_eq!(total(&w.passes_since(before)).removed, 0);
    assert_eq!(w.indexed(), set(&["drive/d.png", "drive/e.png"]));

    // Once it holds files it is the root: what is not in it is gone.
    let before = w.pass_count();
    write_image(&w.path("drive/f.png"), 42);
    let done = w.wait_for_total(before, "the new folder's photo", |t| {
        t.added == 1 && t.removed == 2
    });
    assert_eq!(done.reused, 0);
    assert_eq!(w.indexed(), set(&["drive/f.png"]));
    w.stop();
}

#[test]
fn the_rescan_finds_changes_no_event_reported() {
    // Without events (as on a network share, where another machine's changes make none),
    // the periodic rescan alone finds what changed.
    let options = WatchOptions::default()
        .events(false)
        .rescan_every(Duration::from_secs(1));
    let w = Watching::start(&[("share", &[("a.png", 30)])], options);
    let before = w.pass_count();
    write_image(&w.path("share/b.png"), 31);
    std::fs::remove_file(w.path("share/a.png")).unwrap();
    w.wait_for_total(before, "the rescan", |t| t.added == 1 && t.removed == 1);
    assert_eq!(w.indexed(), set(&["share/b.png"]));
    assert_eq!(kinds(&w.passes_since(before)), [Pass::Rescan].into());
    w.stop();
}

#[test]
fn a_stop_mid_pass_commits_whole_batches_and_the_next_run_finishes_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    std::fs::create_dir(&photos).unwrap();
    for i in 0..60 {
        write_image(&photos.join(format!("{i:02}.png")), 200 + i);
    }
    let options = EngineOptions::new(MODEL)
        .index(dir.path().join("index"))
        .mode(OpenMode::Create)
        .ingest(xsearch::IngestOptions::default().batch_size(4));
    let engine = Engine::open(&options, None).unwrap();
    // Stop as soon as the first batch is committed, as a signal handler would.
    let stop = AtomicBool::new(false);
    let initial = Mutex::new(None);
    let observer = |event: WatchEvent<'_>| match event {
        WatchEvent::Ingest(xsearch::IngestEvent::Committed { .. }) => {
            stop.store(true, Ordering::Relaxed)
        }
        WatchEvent::Applied { pass, summary, .. } => {
            assert_eq!(pass, Pass::Initial);
            *initial.lock().unwrap() = Some(summary.clone());
        }
        _ => {}
    };
    engine
        .watch(std::slice::from_ref(&photos), &quick(), &observer, &stop)
        .unwrap();
    // The batches under way when the stop came are committed whole (the pipeline holds at
    // most three), the rest is left, and what was committed is published.
    let added = initial.into_inner().unwrap().unwrap().added;
    assert!((4..=12).contains(&added), "{added}");
    assert_eq!(engine.image_count().unwrap(), added);
    let reader = EngineOptions::new(MODEL)
        .index(dir.path().join("index"))
        .mode(OpenMode::Read);
    assert_eq!(
        Engine::open(&reader, None).unwrap().image_count().unwrap(),
        added
    );
    // The next run does the rest, and only the rest.
    let summary = engine.ingest(&[photos], &()).unwrap();
    assert_eq!((summary.unchanged, summary.added), (added, 60 - added));
}
