//! `xsearch index|query|status` against a Milvus location (`milvus://127.0.0.1:PORT/NAME`, a
//! milvus-lite server started here), through the real binary: the same commands and output as
//! with a directory, the same answers as a directory index of the same photos, and a clear
//! error where Milvus cannot do what a directory does. Without milvus-lite the server tests
//! skip loudly; under CI (`CI=true`) they fail.

use std::path::{Path, PathBuf};

use serde_json::Value;

mod common;
#[path = "../../tests/common/milvus.rs"]
mod milvus;

use common::{json_lines, stderr, Sandbox, SHAPES};

/// `xsearch ARGS` on the index `location`, with the shapes model.
fn run(sb: &Sandbox, location: &Path, args: &[&str]) -> std::process::Output {
    sb.command(SHAPES)
        .env("XSEARCH_INDEX", location)
        .args(args)
        .output()
        .unwrap()
}

fn ok_json(sb: &Sandbox, location: &Path, args: &[&str]) -> Vec<Value> {
    let out = run(sb, location, args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    json_lines(&out)
}

fn paths(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|record| record["path"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn index_query_and_status_work_on_a_milvus_location_as_on_a_directory() {
    let Some(server) = milvus::MilvusLite::start(common::skip::skip_or_fail) else {
        return;
    };
    let sb = Sandbox::new();
    let (photos, _) = sb.photos("photos", 12, 5);
    let photos = photos.to_str().unwrap();
    let url = server.url("cli");
    let remote = Path::new(&url);
    let local = sb.index();

    for location in [remote, local.as_path()] {
        let summary = ok_json(&sb, location, &["index", "--json", photos]);
        assert_eq!(
            summary[0]["added"],
            12,
            "{}: {}",
            location.display(),
            summary[0]
        );
        let again = ok_json(&sb, location, &["index", "--json", photos]);
        assert_eq!(
            (again[0]["unchanged"].as_u64(), again[0]["added"].as_u64()),
            (Some(12), Some(0)),
            "{}",
            location.display()
        );
    }
    // `?consistency=bounded` (searches that do not wait for Milvus's write log) answers the
    // same once the writes are in; milvus-lite applies every write at once.
    let bounded = format!("{url}?consistency=bounded");
    for query in ["a red circle", "a blue square"] {
        let args = ["query", "--json", "-k", "5", query];
        let expected = paths(&ok_json(&sb, &local, &args));
        assert_eq!(paths(&ok_json(&sb, remote, &args)), expected, "{query}");
        let got = paths(&ok_json(&sb, Path::new(&bounded), &args));
        assert_eq!(got, expected, "{query}, bounded");
    }
    let status = ok_json(&sb, Path::new(&bounded), &["status", "--json"]);
    assert_eq!(
        (status[0]["index"].as_str(), status[0]["images"].as_u64()),
        (Some(bounded.as_str()), Some(12))
    );
    let status = ok_json(&sb, remote, &["status", "--json"]);
    assert_eq!(status[0]["index"], url.as_str());
    assert_eq!(
        (status[0]["images"].as_u64(), status[0]["texts"].as_u64()),
        (Some(12), Some(0))
    );
    assert_eq!(status[0]["model"], SHAPES);

    // Where Milvus cannot do what a directory does, the command says so and fails.
    let dupes = run(&sb, remote, &["dupes"]);
    assert_eq!(dupes.status.code(), Some(2), "{}", stderr(&dupes));
    assert!(
        stderr(&dupes).contains(&format!(
            "{url}: finding duplicates is not available with a Milvus index"
        )),
        "{}",
        stderr(&dupes)
    );
    let serve = run(&sb, remote, &["serve"]);
    assert_eq!(serve.status.code(), Some(2), "{}", stderr(&serve));
    assert!(
        stderr(&serve).contains("does not serve a Milvus index"),
        "{}",
        stderr(&serve)
    );
}

#[test]
fn a_milvus_location_without_a_server_says_so() {
    // Port 1 on loopback: nothing listens there.
    let sb = Sandbox::new();
    let out = run(&sb, Path::new("milvus://127.0.0.1:1/photos"), &["status"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("xsearch: milvus://127.0.0.1:1/photos: no Milvus at 127.0.0.1:1"),
        "{}",
        stderr(&out)
    );
    let out = run(&sb, Path::new("milvus://127.0.0.1/photos"), &["status"]);
    assert!(
        stderr(&out).contains("milvus://127.0.0.1/photos: not an index location: it names no port"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn writers_racing_on_one_collection_all_finish_and_count_each_file_once() {
    let Some(server) = milvus::MilvusLite::start(common::skip::skip_or_fail) else {
        return;
    };
    let sb = Sandbox::new();
    // Spark tasks or several machines start on a new collection together: each finds it
    // missing and creates it, and Milvus refuses all but one of them.
    let folders: Vec<_> = (0..4)
        .map(|n| sb.photos(&format!("photos{n}"), 3, 20 + n as u64).0)
        .collect();
    // Each writer's summary, in order of `folders`.
    let index_at_once = |url: &str, folders: &[&Path]| -> Vec<Value> {
        let writers: Vec<_> = folders
            .iter()
            .map(|folder| {
                sb.command(SHAPES)
                    .env("XSEARCH_INDEX", url)
                    .args(["index".as_ref(), "--json".as_ref(), folder.as_os_str()])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        writers
            .into_iter()
            .map(|writer| {
                let out = writer.wait_with_output().unwrap();
                assert!(out.status.success(), "{url}: {}", stderr(&out));
                json_lines(&out).remove(0)
            })
            .collect()
    };
    for round in 0..3 {
        let url = server.url(&format!("race{round}"));
        let disjoint: Vec<&Path> = folders.iter().map(PathBuf::as_path).collect();
        for summary in index_at_once(&url, &disjoint) {
            assert_eq!(summary["added"], 3, "round {round}: {summary}");
        }
        let status = ok_json(&sb, Path::new(&url), &["status", "--json"]);
        assert_eq!(status[0]["images"], 12, "round {round}");
    }
    // Writers on the same files: each counts every file once, as added by it or as found
    // held (committed by another between its walks).
    for round in 0..3 {
        let url = server.url(&format!("same{round}"));
        for summary in index_at_once(&url, &[folders[0].as_path(); 3]) {
            let count = |field: &str| summary[field].as_u64().unwrap();
            assert_eq!(
                count("found"),
                count("unchanged") + count("added") + count("updated") + count("failed"),
                "round {round}: {summary}"
            );
        }
        let status = ok_json(&sb, Path::new(&url), &["status", "--json"]);
        assert_eq!(status[0]["images"], 3, "round {round}");
    }
}
