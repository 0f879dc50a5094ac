//! Snapshots of what people read: `--help` and the error messages of common mistakes. A change
//! here is a change to the user interface; review it with `cargo insta review` or by reading the
//! diff of `tests/snapshots/`.

use std::process::Command;

fn xsearch(args: &[&str], dir: &std::path::Path) -> (String, String, Option<i32>) {
    let out = Command::new(env!("CARGO_BIN_EXE_xsearch"))
        .args(args)
        .current_dir(dir)
        .env_remove("XSEARCH_MODEL")
        .env_remove("XSEARCH_INDEX")
        // clap wraps help to $COLUMNS when it is set; snapshots are taken at its default width.
        .env_remove("COLUMNS")
        .env_remove("LINES")
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HOME", dir.join("hf"))
        // The default index place (`embed` reads the model an index there records): not the
        // person's running the tests.
        .env("XDG_DATA_HOME", dir.join("data"))
        .output()
        .unwrap();
    let clean =
        |bytes: &[u8]| String::from_utf8_lossy(bytes).replace(&dir.display().to_string(), "[TMP]");
    (clean(&out.stdout), clean(&out.stderr), out.status.code())
}

#[test]
fn help_pages() {
    let dir = tempfile::tempdir().unwrap();
    for (name, args) in [
        ("help", &["--help"][..]),
        ("help_index", &["index", "--help"]),
        ("help_query", &["query", "--help"]),
        ("help_embed", &["embed", "--help"]),
        ("help_import", &["import", "--help"]),
        ("help_tag", &["tag", "--help"]),
        ("help_dupes", &["dupes", "--help"]),
        ("help_serve", &["serve", "--help"]),
    ] {
        let (stdout, _, code) = xsearch(args, dir.path());
        assert_eq!(code, Some(0));
        insta::assert_snapshot!(name, stdout);
    }
}

#[test]
fn error_messages() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("not-a-model")).unwrap();
    let shapes = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/models/shapes-tiny"
    );
    for (name, args) in [
        (
            "error_no_index",
            vec![
                "--model",
                shapes,
                "--index",
                "[TMP]/nowhere",
                "query",
                "cat",
            ],
        ),
        (
            "error_not_a_model_dir",
            vec!["--model", "not-a-model", "embed", "--text", "x"],
        ),
        ("error_offline_hub", vec!["embed", "--text", "x"]),
        (
            "error_serve_open_without_token",
            vec!["serve", "--addr", "0.0.0.0:7878"],
        ),
        (
            "error_texts_file_missing",
            vec![
                "--model",
                shapes,
                "--index",
                "idx",
                "texts",
                "add",
                "missing.txt",
            ],
        ),
    ] {
        let args: Vec<String> = args
            .iter()
            .map(|a| a.replace("[TMP]", &dir.path().display().to_string()))
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (stdout, stderr, code) = xsearch(&args, dir.path());
        assert_eq!(code, Some(2), "{stderr}");
        assert_eq!(stdout, "");
        insta::assert_snapshot!(name, stderr);
    }
}
