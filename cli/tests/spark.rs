//! `deploy/spark/xsearch_spark.py` under `spark-submit --master local[2]` against `xsearch
//! index` of the same folder: the same records, metadata and failures, vectors equal to float
//! rounding, the same query results; a re-run lists and adds nothing. The same into a Milvus
//! collection (a milvus-lite server started here), where each task imports its own records.
//!
//! Needs pyspark (`spark-submit`) and Java: found in `$XSEARCH_CI_VENV/bin` (CI's virtual
//! environment, `.ci/run` installs pyspark 4.3.0 there) or on the PATH. Without them the test
//! skips loudly, and fails under `CI=true`.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};

mod common;
#[path = "../../tests/common/milvus.rs"]
mod milvus;
use common::held::held;
use common::{skip, stderr, stdout, Sandbox, SHAPES};

const META: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/meta");
const JOB: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/spark/xsearch_spark.py"
);

/// `spark-submit` and the Python beside it, from CI's virtual environment or the PATH; `None`
/// (after the skip rule) when pyspark or Java is missing.
fn spark() -> Option<(PathBuf, PathBuf)> {
    let dirs = std::env::var_os("XSEARCH_CI_VENV")
        .map(|venv| PathBuf::from(venv).join("bin"))
        .into_iter()
        .chain(
            std::env::var_os("PATH")
                .into_iter()
                .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>()),
        );
    let Some(bin) = dirs
        .into_iter()
        .find(|dir| dir.join("spark-submit").is_file())
    else {
        skip::skip_or_fail(
            "spark: no spark-submit in $XSEARCH_CI_VENV/bin or on the PATH; install pyspark \
             (pip install pyspark==4.3.0) and Java 17 to run the Spark job test",
        );
        return None;
    };
    let java = Command::new("java").arg("-version").output();
    if !java.is_ok_and(|out| out.status.success()) {
        skip::skip_or_fail("spark: no java on the PATH; install Java 17 to run the Spark job");
        return None;
    }
    let python = bin.join("python3");
    let python = if python.is_file() {
        python
    } else {
        "python3".into()
    };
    Some((bin.join("spark-submit"), python))
}

/// Runs the job over `dir` into `index` (a directory or a `milvus://` location) in `local[2]`.
fn job(sb: &Sandbox, spark: &(PathBuf, PathBuf), dir: &Path, index: &Path) -> Output {
    Command::new(&spark.0)
        .env("SPARK_LOCAL_IP", "127.0.0.1")
        .env("PYSPARK_PYTHON", &spark.1)
        .env("TZ", common::ZONE)
        .env("HF_HUB_OFFLINE", "1")
        .current_dir(sb.path(""))
        .args([
            "--master",
            "local[2]",
            "--conf",
            "spark.ui.enabled=false",
            JOB,
        ])
        .args(["index".as_ref(), dir.as_os_str()])
        .args(["--index".as_ref(), index.as_os_str()])
        .args([
            "--model",
            SHAPES,
            "--xsearch",
            env!("CARGO_BIN_EXE_xsearch"),
        ])
        .output()
        .unwrap()
}

/// Runs the job (see [`job`]); its summary line and exit status.
fn run_job(sb: &Sandbox, spark: &(PathBuf, PathBuf), dir: &Path, index: &Path) -> (Value, i32) {
    let out = job(sb, spark, dir, index);
    let summary = stdout(&out).lines().last().map(|line| {
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}\n{}", stderr(&out)))
    });
    let summary = summary.unwrap_or_else(|| panic!("no summary\n{}", stderr(&out)));
    (summary, out.status.code().unwrap())
}

/// The top 5 paths for `text` with their scores rounded to 5 places: the vectors of the job and
/// of `xsearch index` may differ in the last bit (see the directory test).
fn query_scored(sb: &Sandbox, index: &Path, text: &str) -> Vec<(String, String)> {
    let out = sb
        .command(SHAPES)
        .env("XSEARCH_INDEX", index)
        .args(["query", "--json", "-k", "5", text])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    common::json_lines(&out)
        .iter()
        .map(|hit| {
            let score = hit["score"].as_f64().unwrap();
            (
                hit["path"].as_str().unwrap().to_owned(),
                format!("{score:.5}"),
            )
        })
        .collect()
}

fn query(sb: &Sandbox, index: &Path, text: &str) -> Vec<String> {
    let hits = query_scored(sb, index, text);
    hits.into_iter().map(|(path, _)| path).collect()
}

#[test]
fn the_spark_job_in_local_mode_indexes_a_folder_as_xsearch_index_does() {
    let Some(spark) = spark() else { return };
    let sb = Sandbox::new();
    let (dir, _) = sb.photos("photos", 12, 4);
    std::fs::copy(Path::new(META).join("offset.jpg"), dir.join("offset.jpg")).unwrap();
    let odd = dir.join(OsStr::from_bytes(b"caf\xe9.jpg"));
    std::fs::copy(Path::new(META).join("plain.jpg"), &odd).unwrap();
    let broken = dir.join("broken.jpg");
    std::fs::write(&broken, b"\xff\xd8 not really").unwrap();
    // An old file: its failure is then not retried by the re-run (see `needs_work`).
    let file = std::fs::File::options().write(true).open(&broken).unwrap();
    file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000))
        .unwrap();

    let (by_spark, by_index) = (sb.path("spark-index"), sb.path("index"));
    let (summary, status) = run_job(&sb, &spark, &dir, &by_spark);
    assert_eq!(status, 2, "{summary}");
    assert_eq!(
        (&summary["listed"], &summary["added"], &summary["failed"]),
        (&json!(15), &json!(14), &json!(1))
    );
    assert!(!sb.path("spark-index.spark-stage").exists());
    let out = sb
        .command(SHAPES)
        .env("XSEARCH_INDEX", &by_index)
        .args(["index".as_ref(), dir.as_os_str()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    let (spark_images, spark_failures) = held(&by_spark);
    let (index_images, index_failures) = held(&by_index);
    assert_eq!(spark_failures, index_failures);
    assert_eq!(
        spark_images.keys().collect::<Vec<_>>(),
        index_images.keys().collect::<Vec<_>>()
    );
    assert!(spark_images.contains_key(odd.as_os_str().as_bytes()));
    for (key, (stamp, vector, meta)) in &spark_images {
        let (index_stamp, index_vector, index_meta) = &index_images[key];
        assert_eq!((stamp, meta), (index_stamp, index_meta));
        // The tasks' batches are not `xsearch index`'s: the tower's sums may round
        // differently in the last bit with another batch around an image.
        let worst = vector
            .iter()
            .zip(index_vector)
            .map(|(a, b)| (f32::from_bits(*a) - f32::from_bits(*b)).abs())
            .fold(0f32, f32::max);
        assert!(worst <= 1e-6, "{}: {worst}", String::from_utf8_lossy(key));
    }
    for text in ["a red circle", "a green triangle"] {
        assert_eq!(query(&sb, &by_spark, text), query(&sb, &by_index, text));
    }

    // A re-run: nothing to list, nothing written.
    let (summary, status) = run_job(&sb, &spark, &dir, &by_spark);
    assert_eq!((status, &summary["listed"]), (0, &json!(0)), "{summary}");
    assert_eq!(held(&by_spark), (spark_images, spark_failures));
}

#[test]
fn the_spark_job_into_milvus_holds_what_xsearch_index_into_milvus_holds() {
    let Some(spark) = spark() else { return };
    let Some(server) = milvus::MilvusLite::start(skip::skip_or_fail) else {
        return;
    };
    let sb = Sandbox::new();
    let (dir, _) = sb.photos("photos", 12, 6);
    std::fs::copy(Path::new(META).join("offset.jpg"), dir.join("offset.jpg")).unwrap();
    std::fs::write(dir.join("broken.jpg"), b"\xff\xd8 not really").unwrap();
    let (by_spark, by_index) = (server.url("spark"), server.url("index"));
    let (by_spark, by_index) = (Path::new(&by_spark), Path::new(&by_index));

    // Each task imports its own records into the collection: no staging, no driver import.
    let (summary, status) = run_job(&sb, &spark, &dir, by_spark);
    assert_eq!(status, 2, "{summary}");
    assert_eq!(
        (&summary["listed"], &summary["added"], &summary["failed"]),
        (&json!(14), &json!(13), &json!(1))
    );
    let out = sb
        .command(SHAPES)
        .env("XSEARCH_INDEX", by_index)
        .args(["index".as_ref(), dir.as_os_str()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    let status_of = |location: &Path| {
        let out = sb
            .command(SHAPES)
            .env("XSEARCH_INDEX", location)
            .args(["status", "--json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let status = common::json_lines(&out).remove(0);
        (status["images"].clone(), status["failures"].clone())
    };
    let (images, failures) = status_of(by_spark);
    assert_eq!(images, json!(13));
    assert!(
        failures[0]["path"]
            .as_str()
            .unwrap()
            .ends_with("broken.jpg"),
        "{failures}"
    );
    assert_eq!(status_of(by_spark), status_of(by_index));
    for text in ["a red circle", "a green triangle", "a blue square"] {
        assert_eq!(
            query_scored(&sb, by_spark, text),
            query_scored(&sb, by_index, text),
            "{text}"
        );
    }
    // Both collections hold every file unchanged: an index run into either would read nothing
    // but the failed file, which it retries.
    for location in [by_spark, by_index] {
        let out = sb
            .command(SHAPES)
            .env("XSEARCH_INDEX", location)
            .args(["index".as_ref(), "--dry-run".as_ref(), dir.as_os_str()])
            .output()
            .unwrap();
        // Exit status 1 when nothing is left to read.
        assert!(matches!(out.status.code(), Some(0 | 1)), "{}", stderr(&out));
        let listed: Vec<_> = stdout(&out).lines().map(str::to_owned).collect();
        assert!(
            listed.iter().all(|line| line.ends_with("broken.jpg")),
            "{}: {listed:?}",
            location.display()
        );
    }

    // A re-run lists nothing the collection holds (at most the failed file, retried when it
    // failed within its modification's second) and adds nothing twice.
    let (summary, _) = run_job(&sb, &spark, &dir, by_spark);
    assert!(summary["listed"].as_u64().unwrap() <= 1, "{summary}");
    assert_eq!(summary["added"], json!(0), "{summary}");
    assert_eq!(status_of(by_spark), (images, failures));
}

#[test]
fn the_spark_job_fails_with_xsearchs_error() {
    let Some(spark) = spark() else { return };
    let sb = Sandbox::new();
    let (dir, _) = sb.photos("photos", 2, 7);
    // A folder of other files is not an index: xsearch exits with 2, as it does when some
    // files were skipped, and the job must not take that for a run that found nothing.
    let notes = sb.path("notes");
    std::fs::create_dir(&notes).unwrap();
    std::fs::write(notes.join("todo.txt"), "milk").unwrap();
    let out = job(&sb, &spark, &dir, &notes);
    // spark-submit passes the driver's stderr on as its stdout.
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains(&format!(
            "xsearch_spark.py: xsearch index --dry-run exited with 2: xsearch: {}: not an xsearch index",
            notes.display()
        )),
        "{said}"
    );
    assert!(!said.contains("\"listed\""), "no summary: {said}");
    assert_eq!(
        std::fs::read_dir(&notes).unwrap().count(),
        1,
        "the folder is left alone"
    );
}
