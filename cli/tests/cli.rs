//! The `xsearch` binary end to end: real processes, fresh temporary index directories, the
//! fixture models. Output shapes, exit codes, error messages, incremental indexing, locking and
//! crash safety.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

mod common;
use common::{json_lines, stderr, stdout, Sandbox, SHAPES};

const PARITY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/parity");
const META: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/meta");
/// 2023-11-14 22:13:20 UTC, 23:13:20 in `common::ZONE`: a modification time tests give files.
const MTIME: u64 = 1_700_000_000;

/// Sets the modification time of every file in `dir` to [`MTIME`].
fn set_mtimes(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let file = std::fs::File::options()
            .write(true)
            .open(entry.unwrap().path())
            .unwrap();
        file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(MTIME))
            .unwrap();
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn parity_reference() -> Value {
    serde_json::from_str(&std::fs::read_to_string(format!("{PARITY}/reference.json")).unwrap())
        .unwrap()
}

#[test]
fn embed_prints_reference_embeddings_as_json_lines() {
    let sb = Sandbox::new();
    let reference = parity_reference();
    let prompt = &reference["texts"][0];
    let text = prompt["text"].as_str().unwrap();
    let out = sb.run(
        &format!("{PARITY}/model"),
        &["embed", "--json", "--text", text],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["kind"], "text");
    assert_eq!(lines[0]["input"], text);
    let got = floats(&lines[0]["embedding"]);
    assert!(cosine(&got, &floats(&prompt["embedding"])) >= 0.99999);
}

#[test]
fn embed_skips_a_bad_image_names_it_and_goes_on() {
    let sb = Sandbox::new();
    let bad = sb.path("bad.png");
    std::fs::write(&bad, b"this is not a png").unwrap();
    let good = format!("{PARITY}/images/shapes.png");
    let out = sb.run(
        &format!("{PARITY}/model"),
        &["embed", "--image", bad.to_str().unwrap(), &good],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains(bad.to_str().unwrap()), "{err}");
    let printed = stdout(&out);
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 1);
    assert!(lines[0].starts_with(&good));
}

#[test]
fn a_model_directory_without_its_files_is_a_clear_error() {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.path("empty-model")).unwrap();
    let out = sb.run(
        sb.path("empty-model").to_str().unwrap(),
        &["embed", "--text", "x"],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("open_clip_config.json"), "{err}");
    assert!(err.starts_with("xsearch: "), "{err}");
}

#[test]
fn offline_without_a_cached_model_fails_fast_and_says_what_to_do() {
    let sb = Sandbox::new();
    let started = std::time::Instant::now();
    let out = sb.run("timm/resnet50_clip.openai", &["embed", "--text", "x"]);
    assert!(started.elapsed().as_secs() < 10);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    for needle in [
        "timm/resnet50_clip.openai",
        "open_clip_model.safetensors",
        "--model",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in {err}");
    }
}

#[test]
fn index_then_query_finds_the_described_shapes() {
    let sb = Sandbox::new();
    let (photos, items) = sb.photos("photos", 96, 2024);
    set_mtimes(&photos);
    let out = sb.run(SHAPES, &["index", "--json", photos.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = &json_lines(&out)[0];
    assert_eq!(summary["added"], 96);
    assert_eq!(summary["failed"], 0);

    let out = sb.run(
        SHAPES,
        &["query", "--json", "-k", "3", "a", "red", "circle"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let hits = json_lines(&out);
    assert_eq!(hits.len(), 3);
    for (i, hit) in hits.iter().enumerate() {
        let keys: Vec<&String> = hit.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["path", "rank", "score", "taken"]);
        assert_eq!(hit["rank"], i + 1);
        // No EXIF: the modification time, in the local zone.
        assert_eq!(hit["taken"], "2023-11-14T23:13:20+01:00");
        let path = Path::new(hit["path"].as_str().unwrap());
        assert!(path.is_absolute());
        let item = items
            .iter()
            .find(|it| photos.join(&it.file) == path)
            .unwrap();
        assert_eq!(
            (item.scene.colour.name(), item.scene.shape.name()),
            ("red", "circle"),
            "{hit}"
        );
    }

    // Text output: score then path, best first.
    let out = sb.run(SHAPES, &["query", "-k", "2", "a blue square"]);
    let lines: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0]
        .split_once("  ")
        .unwrap()
        .1
        .starts_with(photos.to_str().unwrap()));
}

#[test]
fn query_without_an_index_says_to_index_first() {
    let sb = Sandbox::new();
    let out = sb.run(SHAPES, &["query", "a red circle"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("no index here") && err.contains("xsearch index"),
        "{err}"
    );

    let out = sb.run(SHAPES, &["texts", "add", "-"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = sb.run(SHAPES, &["query", "a red circle"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("run `xsearch index <FOLDER>` first"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn reindexing_is_incremental() {
    let sb = Sandbox::new();
    let (photos, items) = sb.photos("photos", 12, 77);
    let index = |sb: &Sandbox| {
        let out = sb.run(SHAPES, &["index", "--json", photos.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
        json_lines(&out).remove(0)
    };
    assert_eq!(index(&sb)["added"], 12);
    let again = index(&sb);
    assert_eq!(
        (again["unchanged"].as_u64(), again["added"].as_u64()),
        (Some(12), Some(0))
    );

    // A copy reuses the stored vector, a changed file is embedded again, a deleted one leaves.
    std::fs::copy(photos.join(&items[0].file), photos.join("copy.png")).unwrap();
    std::fs::copy(photos.join(&items[1].file), photos.join(&items[2].file)).unwrap();
    std::fs::remove_file(photos.join(&items[3].file)).unwrap();
    let changed = index(&sb);
    assert_eq!(changed["added"], 1, "{changed}");
    assert_eq!(changed["reused"], 2, "{changed}");
    assert_eq!(changed["updated"], 1, "{changed}");
    assert_eq!(changed["removed"], 1, "{changed}");
    assert_eq!(changed["unchanged"], 10, "{changed}");

    let status = sb.run(SHAPES, &["status", "--json"]);
    assert_eq!(json_lines(&status)[0]["images"], 12);
}

#[test]
fn roots_named_twice_or_nested_index_each_file_once() {
    let sb = Sandbox::new();
    let (photos, items) = sb.photos("photos", 6, 21);
    let photos = photos.to_str().unwrap();
    let inner = format!("{photos}/{}", items[0].file);
    let out = sb.run(SHAPES, &["index", "--json", photos, &inner, photos]);
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = json_lines(&out).remove(0);
    assert_eq!(
        (summary["found"].as_u64(), summary["added"].as_u64()),
        (Some(6), Some(6)),
        "{summary}"
    );
}

#[test]
fn bad_files_are_skipped_recorded_and_listed_by_status() {
    let sb = Sandbox::new();
    let (photos, _) = sb.photos("photos", 4, 5);
    std::fs::write(photos.join("zero.jpg"), b"").unwrap();
    std::fs::write(photos.join("random.png"), [7u8; 300]).unwrap();
    let jpeg = std::fs::read(format!("{PARITY}/images/gradient.jpg")).unwrap();
    std::fs::write(photos.join("truncated.jpg"), &jpeg[..jpeg.len() / 3]).unwrap();
    std::fs::write(photos.join("photo.heic"), b"ftypheic").unwrap();
    let out = sb.run(SHAPES, &["index", photos.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    for name in ["zero.jpg", "random.png", "truncated.jpg", "photo.heic"] {
        assert!(err.contains(name), "{name} not reported: {err}");
    }
    let status = json_lines(&sb.run(SHAPES, &["status", "--json"])).remove(0);
    let failed: Vec<&str> = status["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(failed.iter().any(|p| p.ends_with("zero.jpg")), "{status}");
    assert!(failed.iter().any(|p| p.ends_with("random.png")), "{status}");
    assert!(
        failed.iter().any(|p| p.ends_with("truncated.jpg")),
        "{status}"
    );
    assert_eq!(status["images"], 4, "{status}");
}

#[test]
fn videos_are_counted_once_in_the_summary_and_jxl_is_indexed() {
    let sb = Sandbox::new();
    let (photos, _) = sb.photos("photos", 2, 9);
    std::fs::write(photos.join("clip.mp4"), b"not decoded").unwrap();
    std::fs::write(photos.join("trip.MOV"), b"not decoded").unwrap();
    // A Matroska file under an extension that says nothing: told by its signature.
    std::fs::write(photos.join("movie.bin"), b"\x1a\x45\xdf\xa3\x9f\x42\x86").unwrap();
    let formats = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/formats");
    std::fs::copy(format!("{formats}/jxl_lossy.jxl"), photos.join("photo.jxl")).unwrap();
    let out = sb.run(SHAPES, &["index", photos.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("indexed 3 new and 0 changed files"), "{err}");
    assert!(err.contains(", 3 videos skipped"), "{err}");
    for name in ["clip.mp4", "trip.MOV", "movie.bin"] {
        assert!(!err.contains(name), "{name} got a line of its own: {err}");
    }
}

#[test]
fn readers_answer_while_a_writer_holds_the_index_and_a_second_writer_is_refused() {
    let sb = Sandbox::new();
    let (first, _) = sb.photos("first", 3, 9);
    let (second, _) = sb.photos("second", 4, 10);
    let options = xsearch::EngineOptions::new(SHAPES)
        .index(sb.index())
        .mode(xsearch::OpenMode::Create);
    let writer = xsearch::Engine::open(&options, None).unwrap();
    writer.ingest(&[first], &()).unwrap();

    // The writer still holds the index: readers see what it published at its checkpoint.
    let images = |sb: &Sandbox| {
        let out = sb.run(SHAPES, &["--json", "status"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        json_lines(&out)[0]["images"].as_u64().unwrap()
    };
    assert_eq!(images(&sb), 3);
    let out = sb.run(SHAPES, &["query", "--json", "-k", "10", "a red circle"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json_lines(&out).len(), 3);

    writer.ingest(&[second], &()).unwrap();
    assert_eq!(images(&sb), 7);

    // A second writer is refused at once, saying why.
    let started = std::time::Instant::now();
    let texts = sb.path("texts.txt");
    std::fs::write(&texts, "a red circle\n").unwrap();
    let out = sb.run(SHAPES, &["texts", "add", texts.to_str().unwrap()]);
    assert!(started.elapsed().as_secs_f64() < 5.0);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("another xsearch process"), "{err}");
}

#[test]
fn index_watch_publishes_new_files_to_readers_and_stops_cleanly_on_sigterm() {
    let sb = Sandbox::new();
    let (photos, _) = sb.photos("photos", 3, 11);
    std::fs::write(photos.join("bad.jpg"), b"not a jpeg").unwrap();
    let mut child = Reaped(
        sb.command(SHAPES)
            .args(["--json", "index", "--watch", "--rescan", "1"])
            .arg(&photos)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // One JSON record per pass, read as they come.
    let (records, passes) = std::sync::mpsc::channel::<Value>();
    let stdout = child.0.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            let _ = records.send(serde_json::from_str(&line.unwrap()).unwrap());
        }
    });
    let next_any = || -> Value {
        passes
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("no pass within 20 s")
    };
    let next = |pass: &str| -> Value {
        let record = next_any();
        assert_eq!(record["pass"], pass, "{record}");
        record
    };
    let initial = next("initial");
    assert_eq!(
        (initial["added"].as_u64(), initial["failed"].as_u64()),
        (Some(3), Some(1))
    );
    // Each pass is published before it is reported: a read-only query sees it at once.
    assert_eq!(hit_paths(&sb, "a shape").len(), 3);

    let (staging, items) = sb.photos("staging", 1, 12);
    let new = photos.join(format!("new-{}", items[0].file));
    std::fs::copy(staging.join(&items[0].file), &new).unwrap();
    // Its change set, or a rescan (one a second) that came first and found it.
    let start = std::time::Instant::now();
    let found = loop {
        assert!(
            start.elapsed().as_secs() < 20,
            "the new file was not found within 20 s"
        );
        let record = next_any();
        if record["added"] == 1 {
            break record;
        }
        // A rescan before the file came: nothing new, the bad file met again.
        assert_eq!(
            (&record["pass"], &record["failed"]),
            (&"rescan".into(), &1.into())
        );
    };
    assert_eq!(found["reused"], 0, "{found}");
    let hits = hit_paths(&sb, "a shape");
    assert_eq!(hits.len(), 4);
    assert!(hits.contains(&new.to_str().unwrap().to_owned()), "{hits:?}");
    for _ in 0..2 {
        let rescan = next("rescan");
        assert_eq!(
            (rescan["unchanged"].as_u64(), rescan["failed"].as_u64()),
            (Some(4), Some(1))
        );
    }

    let killed = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(start.elapsed().as_secs() < 20, "no stop on SIGTERM");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    reader.join().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.0.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    // The bad file is said once, not again at every rescan that meets it.
    assert_eq!(err.matches("bad.jpg").count(), 1, "{err}");
}

/// A child process killed if the test ends before it does.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        // Already gone when the test got that far; the errors say so.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Every file of `dir`, with its length and modification time.
fn listing(dir: &Path) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
    let mut files: Vec<_> = walk_files(dir)
        .into_iter()
        .map(|path| {
            let meta = std::fs::metadata(&path).unwrap();
            (path, meta.len(), meta.modified().unwrap())
        })
        .collect();
    files.sort();
    files
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk_files(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn searching_and_status_write_nothing_and_never_create_an_index() {
    let sb = Sandbox::new();
    let (photos, _) = sb.photos("photos", 3, 12);
    assert!(sb
        .run(SHAPES, &["index", photos.to_str().unwrap()])
        .status
        .success());
    let before = listing(&sb.index());
    // Images found; no texts to find (exit 1); the counts.
    for (args, code) in [
        (&["query", "a red circle"][..], 0),
        (&["query", "--texts", "a red circle"], 1),
        (&["status"], 0),
        (&["dupes", "--threshold", "1"], 1),
    ] {
        let out = sb.run(SHAPES, args);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
    }
    assert_eq!(listing(&sb.index()), before);

    // A folder that is not an index is left as it was, by readers and writers alike.
    let folder = sb.path("not-an-index");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("notes.txt"), "mine").unwrap();
    let before = listing(&folder);
    for args in [
        &["status"][..],
        &["query", "a red circle"],
        &["dupes"],
        &["index", photos.to_str().unwrap()],
    ] {
        let out = sb
            .command(SHAPES)
            .env("XSEARCH_INDEX", &folder)
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&out).contains("not an xsearch index"),
            "{}",
            stderr(&out)
        );
    }
    assert_eq!(listing(&folder), before);
}

#[test]
fn the_index_remembers_its_model() {
    let sb = Sandbox::new();
    let model = sb.path("models/shapes");
    std::fs::create_dir_all(&model).unwrap();
    for file in ["open_clip_config.json", "open_clip_model.safetensors"] {
        std::fs::copy(Path::new(SHAPES).join(file), model.join(file)).unwrap();
    }
    let (photos, _) = sb.photos("photos", 3, 13);
    let model_arg = model.to_str().unwrap();
    assert!(sb
        .run(model_arg, &["index", photos.to_str().unwrap()])
        .status
        .success());

    // Neither --model nor XSEARCH_MODEL: the index's own model answers (offline).
    let bare = |args: &[&str]| {
        sb.command(SHAPES)
            .env_remove("XSEARCH_MODEL")
            .args(args)
            .output()
            .unwrap()
    };
    let out = bare(&["query", "--json", "a red circle"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json_lines(&out).len(), 3);
    let out = bare(&["--json", "status"]);
    assert_eq!(json_lines(&out)[0]["model"], model_arg, "{}", stdout(&out));
    // `embed` uses no index, but embeds in the index's space all the same.
    let embedded = bare(&["embed", "--json", "--text", "a red circle"]);
    assert_eq!(embedded.status.code(), Some(0), "{}", stderr(&embedded));
    let named = sb.run(model_arg, &["embed", "--json", "--text", "a red circle"]);
    assert_eq!(json_lines(&embedded), json_lines(&named));
    assert_eq!(
        json_lines(&embedded)[0]["embedding"]
            .as_array()
            .unwrap()
            .len(),
        64
    );

    // Moved away: the error names where it was and its fingerprint, and how to fix it.
    let fingerprint = json_lines(&out)[0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    std::fs::rename(&model, sb.path("models/moved")).unwrap();
    let out = bare(&["query", "a red circle"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains(model_arg) && err.contains(&fingerprint),
        "{err}"
    );
    assert!(err.contains("Pass --model"), "{err}");
    let out = bare(&["embed", "--text", "a red circle"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains(&fingerprint), "{}", stderr(&out));
    // status needs no model at all.
    assert_eq!(bare(&["status"]).status.code(), Some(0));
    // Named again at its new place, it is the same model, and the index records the move.
    let moved = sb.path("models/moved");
    let out = sb.run(
        moved.to_str().unwrap(),
        &["index", photos.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = bare(&["--json", "status"]);
    assert_eq!(json_lines(&out)[0]["model"], moved.to_str().unwrap());
}

#[test]
fn an_index_built_with_another_model_is_refused_naming_both() {
    let sb = Sandbox::new();
    let (photos, _) = sb.photos("photos", 2, 11);
    assert!(sb
        .run(SHAPES, &["index", photos.to_str().unwrap()])
        .status
        .success());
    let out = sb.run(&format!("{PARITY}/model"), &["query", "a red circle"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("the index was built with"), "{err}");
}

#[test]
fn texts_and_tag_rank_captions_for_an_image() {
    let sb = Sandbox::new();
    let (photos, items) = sb.photos("photos", 24, 31);
    let labels = sb.path("labels.txt");
    let mut lines = Vec::new();
    for c in [
        "red", "green", "blue", "yellow", "orange", "purple", "white", "black",
    ] {
        for s in ["circle", "square", "triangle", "star"] {
            lines.push(format!("a {c} {s}"));
        }
    }
    std::fs::write(&labels, lines.join("\n")).unwrap();
    let image = photos.join(&items[0].file);
    let expected = format!("a {} {}", items[0].scene.colour, items[0].scene.shape);

    let out = sb.run(
        SHAPES,
        &[
            "tag",
            "--json",
            "-k",
            "3",
            image.to_str().unwrap(),
            "--labels",
            labels.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let tags = json_lines(&out);
    assert_eq!(tags.len(), 3);
    let keys: Vec<&String> = tags[0].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["path", "rank", "score", "text"]);
    assert_eq!(tags[0]["text"], expected.as_str());

    let out = sb.run(SHAPES, &["texts", "add", labels.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = sb.run(
        SHAPES,
        &[
            "query",
            "--json",
            "--texts",
            "-k",
            "1",
            "--image",
            image.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let hits = json_lines(&out);
    assert_eq!(hits[0]["text"], expected.as_str());
    let keys: Vec<&String> = hits[0].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["rank", "score", "text"]);
}

/// Kills `xsearch index` with SIGKILL at several moments; after each kill the index opens and
/// holds only whole entries, and re-running reaches the same state as an uninterrupted run.
#[cfg(unix)]
#[test]
fn killing_the_indexer_at_any_moment_loses_nothing_committed() {
    let sb = Sandbox::new();
    let (photos, _) = sb.photos("photos", 220, 4242);
    let photos_arg = photos.to_str().unwrap();

    let reference = Sandbox::new();
    let out = reference.run(SHAPES, &["index", "--batch-size", "4", photos_arg]);
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = all_vectors(&reference);
    assert_eq!(expected.len(), 220);

    let mut rng = 0x5eed_u64;
    let mut readers_checked = 0;
    for _ in 0..4 {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay = std::time::Duration::from_millis(150 + (rng >> 33) % 1500);
        let mut child = sb
            .command(SHAPES)
            .args(["index", "--quiet", "--batch-size", "4", photos_arg])
            .spawn()
            .unwrap();
        std::thread::sleep(delay / 2);
        // A reader during the run never waits and sees a whole published state (the index
        // exists from the first run's open on).
        let published = sb.index().join("view").exists();
        let out = sb.run(SHAPES, &["--json", "status"]);
        if published {
            assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
            assert!(json_lines(&out)[0]["images"].as_u64().unwrap() <= 220);
            readers_checked += 1;
        }
        std::thread::sleep(delay / 2);
        child.kill().unwrap(); // SIGKILL on unix
        child.wait().unwrap();
        // It opens, and whatever it holds is whole: every record has its vector, which is the
        // one an uninterrupted run computes.
        for (path, vector) in all_vectors(&sb) {
            let want = &expected[&path];
            assert!(cosine(&vector, want) > 0.99999, "{path}");
        }
    }
    // Every run after the first found the view its predecessor published.
    assert!(readers_checked >= 3, "{readers_checked}");
    let out = sb.run(SHAPES, &["index", "--json", photos_arg]);
    assert!(out.status.success(), "{}", stderr(&out));
    let got = all_vectors(&sb);
    assert_eq!(got.len(), expected.len());
    for (path, vector) in &got {
        assert!(cosine(vector, &expected[path]) > 0.99999, "{path}");
    }
}

/// Every image in the sandbox's index with its vector, read with the index crate (the engine
/// keys an image by its path's bytes).
fn all_vectors(sb: &Sandbox) -> std::collections::HashMap<String, Vec<f32>> {
    let clip = xsearch::Clip::open(SHAPES, None).unwrap();
    let spec = xsearch_index::IndexSpec {
        model: clip.files().fingerprint(),
        dim: clip.embed_dim(),
    };
    let index = xsearch_index::Index::open(sb.index(), &spec).unwrap();
    let images = index.images();
    images
        .iter()
        .map(|item| {
            let (key, record) = item.unwrap();
            let vector = images
                .vector(record.id)
                .unwrap()
                .expect("every record has its vector");
            (String::from_utf8(key).unwrap(), vector)
        })
        .collect()
}

#[test]
fn raw_files_are_indexed_through_their_preview_and_raw_jpeg_pairs_only_once() {
    let raw = |name: &str| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/formats/raw")
            .join(name)
    };
    for (flag, added) in [(None, 2), (Some("both"), 3)] {
        let sb = Sandbox::new();
        let photos = sb.path("photos");
        std::fs::create_dir_all(&photos).unwrap();
        std::fs::copy(raw("sample.nef"), photos.join("IMG_0001.NEF")).unwrap();
        std::fs::copy(raw("preview.jpg"), photos.join("img_0001.JPG")).unwrap();
        std::fs::copy(raw("sample.cr2"), photos.join("IMG_0002.CR2")).unwrap();
        let mut args = vec!["index", "--json"];
        if let Some(flag) = flag {
            args.extend(["--raw-pairs", flag]);
        }
        args.push(photos.to_str().unwrap());
        let out = sb.run(SHAPES, &args);
        assert!(out.status.success(), "{flag:?}: {}", stderr(&out));
        let summary = &json_lines(&out)[0];
        assert_eq!(summary["added"], added, "{flag:?}: {summary}");
        assert_eq!(summary["failed"], 0, "{flag:?}: {summary}");
    }
}

// Hostile and careless input (issue #12).

/// Makes a FIFO at `path`.
fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

/// A 300 MB file that costs no disk.
fn sparse_big_file(path: &Path) {
    std::fs::File::create(path)
        .unwrap()
        .set_len(300_000_000)
        .unwrap();
}

#[test]
fn devices_fifos_and_huge_files_named_on_the_command_line_are_refused_at_once() {
    let sb = Sandbox::new();
    let (photos, _) = sb.photos("photos", 3, 31);
    assert!(sb
        .run(SHAPES, &["index", photos.to_str().unwrap()])
        .status
        .success());
    let fifo = sb.path("pipe.jpg");
    mkfifo(&fifo);
    let big = sb.path("big.jpg");
    sparse_big_file(&big);
    let labels = sb.path("labels.txt");
    std::fs::write(&labels, "a red circle\na blue square\n").unwrap();
    let cases = [
        (
            "/dev/zero".to_owned(),
            "not a regular file: it is a character device",
        ),
        (
            fifo.display().to_string(),
            "not a regular file: it is a FIFO (named pipe)",
        ),
        (
            big.display().to_string(),
            "file is 286 MiB, over the 256 MiB limit for an image",
        ),
    ];
    for (input, reason) in &cases {
        let expected = format!("xsearch: {input}: {reason}\n");
        for args in [
            vec!["query", "--image", input],
            vec!["embed", "--image", input],
            vec!["tag", input, "--labels", labels.to_str().unwrap()],
        ] {
            let started = std::time::Instant::now();
            let out = sb.run(SHAPES, &args);
            assert!(started.elapsed().as_secs() < 20, "{args:?} took too long");
            assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
            assert_eq!(stderr(&out), expected, "{args:?}");
        }
    }

    // In a folder: the FIFO is counted and never opened, the big file is a listed failure.
    let mut bad = sb.path("photos/sub");
    std::fs::create_dir_all(&bad).unwrap();
    mkfifo(&bad.join("pipe.jpg"));
    bad.push("big.jpg");
    sparse_big_file(&bad);
    let out = sb.run(SHAPES, &["index", "--json", photos.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let summary = &json_lines(&out)[0];
    assert_eq!(
        (&summary["found"], &summary["failed"], &summary["special"]),
        (&Value::from(4), &Value::from(1), &Value::from(1)),
        "{summary}"
    );
    assert_eq!(
        stderr(&out),
        format!(
            "xsearch: {}: file is 286 MiB, over the 256 MiB limit for an image\n",
            bad.display()
        )
    );
}

/// Image paths of a text query's results, best first.
fn hit_paths(sb: &Sandbox, query: &str) -> Vec<String> {
    json_lines(&sb.run(SHAPES, &["query", "--json", "-k", "100", query]))
        .iter()
        .map(|hit| hit["path"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn files_that_stop_decoding_leave_search_and_counts_until_fixed() {
    let sb = Sandbox::new();
    let (photos, items) = sb.photos("photos", 6, 41);
    assert!(sb
        .run(SHAPES, &["index", photos.to_str().unwrap()])
        .status
        .success());
    let file = |i: usize| photos.join(&items[i].file);
    let original = std::fs::read(file(0)).unwrap();
    std::fs::write(file(0), b"").unwrap(); // emptied
    let bytes = std::fs::read(file(1)).unwrap();
    std::fs::write(file(1), &bytes[..bytes.len() / 2]).unwrap(); // truncated
    std::fs::write(file(2), [9u8; 77]).unwrap(); // replaced by garbage
    std::fs::remove_file(file(3)).unwrap(); // deleted
    let out = sb.run(SHAPES, &["index", "--json", photos.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let summary = &json_lines(&out)[0];
    assert_eq!(
        (
            &summary["failed"],
            &summary["removed"],
            &summary["unchanged"]
        ),
        (&Value::from(3), &Value::from(1), &Value::from(2)),
        "{summary}"
    );
    let status = json_lines(&sb.run(SHAPES, &["status", "--json"])).remove(0);
    assert_eq!(status["images"], 2, "{status}");
    let failed: Vec<String> = status["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_owned())
        .collect();
    let names = |range: std::ops::Range<usize>| -> Vec<String> {
        let mut names: Vec<String> = range.map(|i| file(i).display().to_string()).collect();
        names.sort();
        names
    };
    assert_eq!(failed, names(0..3));
    let mut found = hit_paths(&sb, "a red circle");
    found.sort();
    assert_eq!(found, names(4..6));

    // Fixed: indexed again, its failure gone; gone: its failure forgotten.
    std::fs::write(file(0), &original).unwrap();
    std::fs::remove_file(file(1)).unwrap();
    let out = sb.run(SHAPES, &["index", "--json", photos.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let status = json_lines(&sb.run(SHAPES, &["status", "--json"])).remove(0);
    assert_eq!(status["images"], 3, "{status}");
    assert_eq!(status["failures"].as_array().unwrap().len(), 1, "{status}");
    assert_eq!(status["failures"][0]["path"], file(2).display().to_string());
    let mut found = hit_paths(&sb, "a red circle");
    found.sort();
    let mut expected = names(4..6);
    expected.insert(0, file(0).display().to_string());
    expected.sort();
    assert_eq!(found, expected);
}

#[cfg(unix)]
#[test]
fn names_that_are_not_utf8_stay_distinct_and_exact() {
    use std::os::unix::ffi::OsStrExt;
    let sb = Sandbox::new();
    let (photos, items) = sb.photos("photos", 2, 51);
    let dir = sb.path("odd");
    std::fs::create_dir_all(&dir).unwrap();
    let base = dir.display().to_string();
    let raw = |byte: u8| {
        let mut raw = format!("{base}/c").into_bytes();
        raw.extend([byte, b'.', b'p', b'n', b'g']);
        raw
    };
    for (i, byte) in [0xe9u8, 0xe8].into_iter().enumerate() {
        let path = raw(byte);
        std::fs::copy(
            photos.join(&items[i].file),
            std::ffi::OsStr::from_bytes(&path),
        )
        .unwrap();
    }
    assert!(sb
        .run(SHAPES, &["index", dir.to_str().unwrap()])
        .status
        .success());
    let hits = json_lines(&sb.run(SHAPES, &["query", "--json", "a shape"]));
    let mut seen: Vec<(String, Vec<u8>)> = hits
        .iter()
        .map(|hit| {
            let bytes = base64_decode(hit["path_bytes"].as_str().unwrap());
            (hit["path"].as_str().unwrap().to_owned(), bytes)
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            (format!("{base}/c\\xE8.png"), raw(0xe8)),
            (format!("{base}/c\\xE9.png"), raw(0xe9)),
        ]
    );
    let text = stdout(&sb.run(SHAPES, &["query", "a shape"]));
    assert!(text.contains(&format!("{base}/c\\xE8.png")), "{text}");
    assert!(text.contains(&format!("{base}/c\\xE9.png")), "{text}");
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

#[test]
fn absurd_numbers_are_bounded() {
    let sb = Sandbox::new();
    let (photos, _) = sb.photos("photos", 5, 61);
    assert!(sb
        .run(SHAPES, &["index", photos.to_str().unwrap()])
        .status
        .success());
    for k in ["18446744073709551615", "4294967296", "1000000000"] {
        let out = sb.run(SHAPES, &["query", "--json", "-k", k, "a red circle"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(json_lines(&out).len(), 5);
        assert_eq!(
            stderr(&out),
            format!("xsearch: -k {k}: showing at most 10000 results\n")
        );
    }
    let scores = |query: &str| -> Vec<(String, f64)> {
        let out = sb.run(SHAPES, &["query", "--json", query]);
        assert!(out.status.success(), "{query}: {}", stderr(&out));
        json_lines(&out)
            .iter()
            .map(|h| {
                (
                    h["path"].as_str().unwrap().to_owned(),
                    h["score"].as_f64().unwrap(),
                )
            })
            .collect()
    };
    let plain = scores("circle");
    assert!(plain.iter().all(|(_, s)| s.is_finite() && *s != 0.0));
    assert_eq!(scores("1e20:circle"), plain);
    assert_eq!(scores("1e-15:circle"), plain);
}

#[test]
fn texts_over_the_length_limit_are_refused_by_line_and_the_rest_added() {
    let sb = Sandbox::new();
    let file = sb.path("texts.txt");
    let long = "a red circle ".repeat(100);
    std::fs::write(&file, format!("a red circle\n{long}\na blue square\n")).unwrap();
    let out = sb.run(SHAPES, &["texts", "add", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "xsearch: {}: text 2 is 1299 characters long, over the limit of 1000; skipped\n",
            file.display()
        )),
        "{err}"
    );
    assert!(
        err.ends_with("added 2 new texts (0 already present); the text collection holds 2\n"),
        "{err}"
    );

    let out = sb.run(SHAPES, &["query", "--texts", &long]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("is 1299 characters long, over the limit of 1000"),
        "{}",
        stderr(&out)
    );

    let out = sb.run(SHAPES, &["texts", "add", "/dev/zero"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "xsearch: /dev/zero: more than 64 MiB of text, over the limit\n\nSplit it into smaller files.\n"
    );
}

#[test]
fn metadata_is_captured_and_an_index_without_it_gains_it_without_embedding() {
    let sb = Sandbox::new();
    let photos = sb.path("photos");
    std::fs::create_dir_all(&photos).unwrap();
    for name in ["offset.jpg", "local.jpg", "plain.jpg", "exif.png"] {
        std::fs::copy(Path::new(META).join(name), photos.join(name)).unwrap();
    }
    set_mtimes(&photos);
    let photos_arg = photos.to_str().unwrap();
    let index = || {
        let out = sb.run(SHAPES, &["index", "--json", photos_arg]);
        assert!(out.status.success(), "{}", stderr(&out));
        json_lines(&out).remove(0)
    };
    let counts = |summary: &Value| {
        ["added", "updated", "reused", "unchanged", "backfilled"].map(|k| summary[k].as_u64())
    };
    let taken = || -> Vec<(String, Option<String>)> {
        let out = sb.run(SHAPES, &["query", "--json", "-k", "10", "a photo"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let mut taken: Vec<_> = json_lines(&out)
            .iter()
            .map(|hit| {
                let path = Path::new(hit["path"].as_str().unwrap());
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                (
                    name,
                    hit.get("taken").map(|t| t.as_str().unwrap().to_owned()),
                )
            })
            .collect();
        taken.sort();
        taken
    };
    let expected = vec![
        // EXIF with its own offset.
        (
            "exif.png".to_owned(),
            Some("2020-02-29T23:59:59-05:00".to_owned()),
        ),
        // A wall-clock time read and shown in the local zone: the camera's clock comes back.
        (
            "local.jpg".to_owned(),
            Some("2021-01-14T18:03:00+01:00".to_owned()),
        ),
        (
            "offset.jpg".to_owned(),
            Some("2021-07-14T18:03:00+02:00".to_owned()),
        ),
        // No EXIF: the modification time.
        (
            "plain.jpg".to_owned(),
            Some("2023-11-14T23:13:20+01:00".to_owned()),
        ),
    ];
    let first = index();
    assert_eq!(
        counts(&first),
        [Some(4), Some(0), Some(0), Some(0), Some(0)]
    );
    assert_eq!(taken(), expected);

    // Make it an index from before metadata: each record written again with its own vector and
    // no metadata, as older builds wrote them.
    let status = json_lines(&sb.run(SHAPES, &["--json", "status"])).remove(0);
    let spec = xsearch_index::IndexSpec {
        model: status["fingerprint"].as_str().unwrap().to_owned(),
        dim: status["dim"].as_u64().unwrap() as usize,
    };
    let store = xsearch_index::Index::open(sb.index(), &spec).unwrap();
    let records: Vec<_> = store.images().iter().map(Result::unwrap).collect();
    let entries = records
        .into_iter()
        .map(|(key, record)| xsearch_index::Entry {
            vector: store.images().vector(record.id).unwrap().unwrap(),
            key,
            file: record.file,
            meta: None,
        })
        .collect();
    store.images().upsert_batch(entries).unwrap();
    assert!(store.images().meta_table().is_empty());
    store.close().unwrap();
    assert!(taken().iter().all(|(_, taken)| taken.is_none()));

    // The next run reads the four files' metadata and embeds nothing.
    let second = index();
    assert_eq!(
        counts(&second),
        [Some(0), Some(0), Some(0), Some(4), Some(4)]
    );
    assert_eq!(taken(), expected);
    let third = index();
    assert_eq!(
        counts(&third),
        [Some(0), Some(0), Some(0), Some(4), Some(0)]
    );
}
/// Scenes of the shapes world whose shape and colour pairs all differ (so no two look alike
/// to any model), the first one on a noisy backdrop (so its PNG is larger than any JPEG of it).
fn distinct_scenes(n: usize) -> Vec<xsearch_shapes::Scene> {
    let mut scenes: Vec<xsearch_shapes::Scene> = Vec::new();
    for index in 0.. {
        let scene = xsearch_shapes::scene(31, index);
        let noisy = matches!(scene.backdrop, xsearch_shapes::Backdrop::Noise { .. });
        let new = scenes
            .iter()
            .all(|s| (s.shape, s.colour) != (scene.shape, scene.colour));
        if new && (noisy || !scenes.is_empty()) && scene.width.min(scene.height) >= 200 {
            scenes.push(scene);
            if scenes.len() == n {
                break;
            }
        }
    }
    scenes
}

/// A folder with planted duplicates: `variants/` holds a PNG and two variants of it (a JPEG
/// re-encode and a half-size resize); `photos/` five distinct images, one of them copied
/// byte for byte twice into `copies/` (later modification times than the original's).
fn planted_duplicates(sb: &Sandbox) -> (PathBuf, Vec<String>) {
    use xsearch_shapes::dupes::Variant;
    let root = sb.path("library");
    let scenes = distinct_scenes(6);
    let rendered = xsearch_shapes::render(&scenes[0]);
    std::fs::create_dir_all(root.join("variants")).unwrap();
    let mut names = Vec::new();
    for (name, variant) in [
        ("variants/original.png", Variant::Original),
        ("variants/reencoded.jpg", Variant::Jpeg(70)),
        ("variants/half.jpg", Variant::Resize(50)),
    ] {
        let (image, format) = variant.apply(&rendered);
        xsearch_shapes::save(&image, format, &root.join(name)).unwrap();
        names.push(name.to_string());
    }
    std::fs::create_dir_all(root.join("photos")).unwrap();
    std::fs::create_dir_all(root.join("copies")).unwrap();
    for (i, scene) in scenes[1..].iter().enumerate() {
        let name = format!("photos/distinct-{i}.png");
        xsearch_shapes::save(
            &xsearch_shapes::render(scene),
            xsearch_shapes::Format::Png,
            &root.join(&name),
        )
        .unwrap();
        names.push(name);
    }
    let base = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    for (i, name) in ["photos/distinct-0.png", "copies/a.png", "copies/b.png"]
        .iter()
        .enumerate()
    {
        if i > 0 {
            std::fs::copy(root.join("photos/distinct-0.png"), root.join(name)).unwrap();
            names.push(name.to_string());
        }
        let file = std::fs::File::options()
            .write(true)
            .open(root.join(name))
            .unwrap();
        file.set_modified(base + std::time::Duration::from_secs(60 * i as u64))
            .unwrap();
    }
    (root, names)
}

#[test]
fn dupes_groups_planted_copies_and_variants_and_nothing_else() {
    let sb = Sandbox::new();
    let (root, names) = planted_duplicates(&sb);
    assert_eq!(names.len(), 10);
    let out = sb.run(SHAPES, &["index", root.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let at = |name: &str| root.join(name).display().to_string();

    let out = sb.run(SHAPES, &["dupes", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lines: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    assert_eq!(lines.len(), 2, "{}", stdout(&out));
    // The exact group: the same bytes under three names; the oldest is kept.
    assert_eq!(
        lines[0],
        format!(
            r#"{{"group":1,"kind":"exact","score":1.0,"paths":["{}","{}","{}"],"keep":"{}"}}"#,
            at("copies/a.png"),
            at("copies/b.png"),
            at("photos/distinct-0.png"),
            at("photos/distinct-0.png"),
        )
    );
    // The near group: the PNG, its re-encode and its resize; the PNG (largest file) kept.
    let near: Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(near.as_object().unwrap().len(), 5);
    let places: Vec<usize> = ["group", "kind", "score", "paths", "keep"]
        .iter()
        .map(|key| lines[1].find(&format!("\"{key}\":")).unwrap())
        .collect();
    assert!(places.windows(2).all(|w| w[0] < w[1]), "{}", lines[1]);
    assert_eq!(near["group"], 2);
    assert_eq!(near["kind"], "near");
    assert_eq!(
        near["paths"],
        serde_json::json!([
            at("variants/half.jpg"),
            at("variants/original.png"),
            at("variants/reencoded.jpg")
        ])
    );
    assert_eq!(near["keep"], at("variants/original.png"));
    let score = near["score"].as_f64().unwrap();
    assert!(
        (f64::from(xsearch::DEFAULT_THRESHOLD)..=1.0).contains(&score),
        "{score}"
    );

    // The same as text, the keeper marked.
    let out = sb.run(SHAPES, &["dupes"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!(
            "group 1: exact, 3 identical files\n  keep {}\n       {}\n       {}\n\ngroup 2: near, 3 \
             files, lowest similarity ",
            at("photos/distinct-0.png"),
            at("copies/a.png"),
            at("copies/b.png"),
        )),
        "{text}"
    );
    assert!(text.contains(&format!("\n  keep {}\n", at("variants/original.png"))));

    // --in: both files of a pair must be under the folder.
    let out = sb.run(SHAPES, &["dupes", "--json", "--in", &at("copies")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let groups = json_lines(&out);
    assert_eq!(groups.len(), 1);
    assert_eq!(
        groups[0]["paths"],
        serde_json::json!([at("copies/a.png"), at("copies/b.png")])
    );
    assert_eq!(groups[0]["keep"], at("copies/a.png"));
    // Nothing alike among the distinct images alone: exit 1, nothing printed.
    std::fs::remove_file(root.join("photos/distinct-0.png")).unwrap();
    let out = sb.run(SHAPES, &["index", root.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = sb.run(SHAPES, &["dupes", "--in", &at("photos")]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");

    // A threshold that is no cosine is refused, saying what would do.
    let out = sb.run(SHAPES, &["dupes", "--threshold", "1.5"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        format!(
            "xsearch: near-duplicate threshold 1.5 is not a cosine similarity above 0 and at \
             most 1\n\nChoose one such as {}.\n",
            xsearch::DEFAULT_THRESHOLD
        )
    );
}

#[test]
fn dupes_reads_while_a_writer_holds_the_index() {
    let sb = Sandbox::new();
    let (root, _) = planted_duplicates(&sb);
    let options = xsearch::EngineOptions::new(SHAPES)
        .index(sb.index())
        .mode(xsearch::OpenMode::Create);
    let writer = xsearch::Engine::open(&options, None).unwrap();
    writer.ingest(&[root.join("copies")], &()).unwrap();
    let before = listing(&sb.index());

    // The writer holds the lock; dupes reads what it published.
    let out = sb.run(SHAPES, &["dupes", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let groups = json_lines(&out);
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0]["kind"], "exact");
    assert_eq!(listing(&sb.index()), before);

    // And sees the writer's next checkpoint, as the writer itself does.
    writer.ingest(&[root.join("variants")], &()).unwrap();
    let out = sb.run(SHAPES, &["dupes", "--json"]);
    let read = json_lines(&out);
    let written = writer
        .duplicates(&xsearch::DupesOptions::default())
        .unwrap();
    assert_eq!(read.len(), 2);
    assert_eq!(written.len(), 2);
    for (line, group) in read.iter().zip(&written) {
        let paths: Vec<String> = group
            .paths
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(line["paths"], serde_json::json!(paths));
        assert_eq!(line["keep"], group.keep.display().to_string());
    }
    assert_eq!(written[0].kind, xsearch::DupKind::Near);
    assert_eq!(written[1].kind, xsearch::DupKind::Exact);
}

/// Sets a file's modification time: the capture time of an image without EXIF.
fn set_mtime(path: &Path, unix: i64) {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix as u64);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(time)
        .unwrap();
}

/// `xsearch query --json` with `TZ` set (and `-k 100` unless `args` has a `-k`): the hits as
/// `folder/file`, in order, their scores, the exit code and stderr.
fn filtered(sb: &Sandbox, tz: &str, args: &[&str]) -> (Vec<String>, Vec<f64>, Option<i32>, String) {
    let out = sb
        .command(SHAPES)
        .env("TZ", tz)
        .args(["query", "--json"])
        .args(if args.contains(&"-k") {
            &[][..]
        } else {
            &["-k", "100"]
        })
        .args(args)
        .output()
        .unwrap();
    let hits = json_lines(&out);
    let names = hits
        .iter()
        .map(|hit| {
            let path = Path::new(hit["path"].as_str().unwrap());
            let folder = path
                .parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy();
            format!("{folder}/{}", path.file_name().unwrap().to_string_lossy())
        })
        .collect();
    let scores = hits
        .iter()
        .map(|hit| hit["score"].as_f64().unwrap())
        .collect();
    (names, scores, out.status.code(), stderr(&out))
}

fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names
}

// POSIX TZ rules: the tests need no time zone database.
const UTC: &str = "UTC0";
const PARIS: &str = "CET-1CEST,M3.5.0,M10.5.0/3";
const NEW_YORK: &str = "EST5EDT,M3.2.0,M11.1.0";
/// 2021-07-01T00:00:00Z.
const JULY_1: i64 = 1_625_097_600;

#[test]
fn date_filters_read_local_midnight_in_the_zone_and_files_without_exif_use_their_mtime() {
    let sb = Sandbox::new();
    let (a, items_a) = sb.photos("photos/a", 6, 31);
    let (b, items_b) = sb.photos("photos/b", 6, 32);
    // Three images on either side of midnight UTC, the rest a year earlier.
    let dated = [
        ("a", &a, &items_a[0].file, JULY_1 - 1_800), // 06-30 23:30Z
        ("a", &a, &items_a[1].file, JULY_1),         // 07-01 00:00Z
        ("b", &b, &items_b[0].file, JULY_1 + 1_800), // 07-01 00:30Z
        ("b", &b, &items_b[1].file, JULY_1 + 81_000), // 07-01 22:30Z
    ];
    for (dir, items) in [(&a, &items_a), (&b, &items_b)] {
        for item in items.iter() {
            set_mtime(&dir.join(&item.file), JULY_1 - 365 * 86_400);
        }
    }
    for (_, dir, file, unix) in dated {
        set_mtime(&dir.join(file), unix);
    }
    let name = |i: usize| format!("{}/{}", dated[i].0, dated[i].2);
    let out = sb.run(SHAPES, &["index", a.parent().unwrap().to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));

    let day = ["--after", "2021-07-01", "--before", "2021-07-02", "shape"];
    // UTC: the day starts at 00:00Z, inclusive.
    let (names, _, code, _) = filtered(&sb, UTC, &day);
    assert_eq!(code, Some(0));
    assert_eq!(sorted(names), sorted(vec![name(1), name(2), name(3)]));
    // Paris (UTC+2 in July): the day is 06-30 22:00Z to 07-01 22:00Z.
    let (names, _, _, _) = filtered(&sb, PARIS, &day);
    assert_eq!(sorted(names), sorted(vec![name(0), name(1), name(2)]));
    // New York (UTC-4): 07-01 04:00Z to 07-02 04:00Z.
    let (names, _, _, _) = filtered(&sb, NEW_YORK, &day);
    assert_eq!(names, vec![name(3)]);
    // A zone in the argument wins over TZ; --before is exclusive, --after inclusive.
    let (names, _, _, _) = filtered(
        &sb,
        NEW_YORK,
        &[
            "--after",
            "2021-07-01T02:00+02:00",
            "--before",
            "2021-07-01T00:30Z",
            "x",
        ],
    );
    assert_eq!(names, vec![name(1)]);
    // A date-time without a zone is local: 02:30 in Paris is 00:30Z.
    let (names, _, _, _) = filtered(&sb, PARIS, &["--after", "2021-07-01T02:30", "x"]);
    assert_eq!(sorted(names), sorted(vec![name(2), name(3)]));

    // Combined with the folder: only b's images of the day, newest first with --sort date.
    let in_b = ["--in", b.to_str().unwrap(), "--sort", "date"];
    let (names, _, _, _) = filtered(&sb, UTC, &[&day[..4], &in_b[..], &["shape"]].concat());
    assert_eq!(names, vec![name(3), name(2)]);

    // Nothing in range: exit 1, and stderr names the filters.
    let (names, _, code, err) = filtered(
        &sb,
        UTC,
        &["--in", b.to_str().unwrap(), "--before", "2020-01-01", "x"],
    );
    assert!(names.is_empty());
    assert_eq!(code, Some(1));
    assert_eq!(
        err,
        format!(
            "xsearch: no image passes --in {} --before 2020-01-01\n\nTo see more, loosen or drop \
             some of them.\n",
            b.display()
        )
    );
}

#[test]
fn sort_by_date_orders_the_best_by_score_newest_first() {
    let sb = Sandbox::new();
    let (photos, items) = sb.photos("photos", 24, 77);
    for (i, item) in items.iter().enumerate() {
        // Dates unrelated to the ranking: a permutation of 24 days.
        set_mtime(
            &photos.join(&item.file),
            JULY_1 + ((i * 7) % 24) as i64 * 86_400,
        );
    }
    let out = sb.run(SHAPES, &["index", photos.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (by_score, _, _, _) = filtered(&sb, UTC, &["-k", "8", "a red circle"]);
    let (by_date, _, _, _) = filtered(&sb, UTC, &["-k", "8", "--sort", "date", "a red circle"]);
    let mtime = |name: &String| {
        let file = name.split_once('/').unwrap().1;
        std::fs::metadata(photos.join(file))
            .unwrap()
            .modified()
            .unwrap()
    };
    let mut expected = by_score.clone();
    expected.sort_by_key(|name| std::cmp::Reverse(mtime(name)));
    assert_eq!(by_score.len(), 8);
    assert_eq!(by_date, expected);
    assert_ne!(
        by_date, by_score,
        "the dates were chosen to reorder the hits"
    );
}

#[test]
fn the_score_floor_drops_weak_hits_and_camera_needs_a_known_camera() {
    let sb = Sandbox::new();
    let (photos, _) = sb.photos("photos", 24, 5);
    let out = sb.run(SHAPES, &["index", photos.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (all, scores, _, _) = filtered(&sb, UTC, &["a green triangle"]);
    assert_eq!(all.len(), 24);
    // A floor halfway between the 5th and the 6th score keeps exactly the first five.
    let floor = format!("{}", (scores[4] + scores[5]) / 2.0);
    assert!(scores[4] > scores[5], "{scores:?}");
    let (kept, kept_scores, code, _) =
        filtered(&sb, UTC, &["--min-score", &floor, "a green triangle"]);
    assert_eq!(code, Some(0));
    assert_eq!(kept, all[..5]);
    assert_eq!(kept_scores, scores[..5]);
    // Above every hit: nothing, exit 1, the hint names the floor.
    let (none, _, code, err) = filtered(&sb, UTC, &["--min-score", "0.99", "a green triangle"]);
    assert!(none.is_empty());
    assert_eq!(code, Some(1));
    assert_eq!(
        err,
        "xsearch: no image passes --min-score 0.99\n\nTo see more, loosen or drop it.\n"
    );
    // These images carry no camera in their metadata, so no camera matches them.
    let (none, _, code, err) = filtered(&sb, UTC, &["--camera", "iphone", "a green triangle"]);
    assert!(none.is_empty());
    assert_eq!(code, Some(1));
    assert!(
        err.starts_with("xsearch: no image passes --camera iphone\n"),
        "{err}"
    );
    // Bad values are usage errors naming the flag, with an example.
    for (args, needle) in [
        (vec!["--after", "2021-13-01"], "invalid value '2021-13-01' for '--after <DATE>': expected an ISO 8601 date or date-time, e.g. 2021-07-01"),
        (vec!["--before", "yesterday"], "for '--before <DATE>'"),
        (vec!["--min-score", "2"], "invalid value '2' for '--min-score <S>': expected a score from -1 to 1"),
        (vec!["--sort", "name"], "invalid value 'name' for '--sort <ORDER>'"),
    ] {
        let out = sb.run(SHAPES, &[&["query"], &args[..], &["x"]].concat());
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn camera_and_dates_filter_on_exif_metadata() {
    let sb = Sandbox::new();
    let photos = sb.path("photos");
    std::fs::create_dir_all(&photos).unwrap();
    for name in ["offset.jpg", "local.jpg", "plain.jpg", "exif.png"] {
        std::fs::copy(Path::new(META).join(name), photos.join(name)).unwrap();
    }
    let out = sb
        .command(SHAPES)
        .env("TZ", UTC)
        .args(["index", photos.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let found = |tz: &str, args: &[&str]| {
        let (names, _, code, _) = filtered(&sb, tz, &[args, &["a photo"]].concat());
        (sorted(names), code)
    };
    let one = |name: &str| (vec![format!("photos/{name}")], Some(0));
    // Cameras: "Apple iPhone 12", "Canon EOS 5D", "NIKON D750"; plain.jpg has none.
    assert_eq!(found(UTC, &["--camera", "IPHONE"]), one("local.jpg"));
    assert_eq!(found(UTC, &["--camera", "d750"]), one("exif.png"));
    // offset.jpg was taken at 18:03 +02:00, i.e. 16:03Z: --after is inclusive to the second.
    assert_eq!(
        found(UTC, &["--camera", "canon", "--after", "2021-07-14T16:03Z"]),
        one("offset.jpg")
    );
    assert_eq!(
        found(
            UTC,
            &["--camera", "canon", "--after", "2021-07-14T16:03:01Z"]
        ),
        (vec![], Some(1))
    );
    // exif.png was taken at 23:59:59 on 29 February 2020 in New York (-05:00): before the
    // 1st of March there, not in UTC (it is 04:59:59Z on the 1st).
    assert_eq!(
        found(NEW_YORK, &["--camera", "nikon", "--before", "2020-03-01"]),
        one("exif.png")
    );
    assert_eq!(
        found(UTC, &["--camera", "nikon", "--before", "2020-03-01"]),
        (vec![], Some(1))
    );
}
