//! `xsearch embed --stdin` piped into `xsearch import` against `xsearch index` of the same
//! folder: the same records, vectors bit for bit, metadata, failures and query results; import
//! idempotent; another model's records refused.

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use serde_json::Value;
use xsearch_index::Reader;

mod common;
use common::held::held;
use common::{json_lines, stderr, stdout, Sandbox, SHAPES};

const META: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/meta");
const PARITY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/parity");

/// Runs `xsearch ARGS` with `input` on its standard input, `index` as its index.
fn pipe(sb: &Sandbox, index: &Path, args: &[&str], input: &[u8]) -> Output {
    let mut child = sb
        .command(SHAPES)
        .env("XSEARCH_INDEX", index)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // Written from a thread: the child may fill its stdout before reading all of stdin.
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    out
}

/// A library with what ingest must carry across: shapes photos, EXIF with camera, offset and
/// GPS, a file that does not decode, and a name that is not UTF-8.
fn library(sb: &Sandbox) -> PathBuf {
    let (dir, _) = sb.photos("photos", 10, 3);
    for name in ["local.jpg", "offset.jpg", "hostile_gps.jpg"] {
        std::fs::copy(Path::new(META).join(name), dir.join(name)).unwrap();
    }
    let broken = dir.join("broken.jpg");
    std::fs::write(&broken, b"\xff\xd8 not really").unwrap();
    // An old file: its failure is then not retried by the next run (see `needs_work`).
    let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    let file = std::fs::File::options().write(true).open(&broken).unwrap();
    file.set_modified(old).unwrap();
    let odd = dir.join(OsStr::from_bytes(b"caf\xe9.jpg"));
    std::fs::copy(Path::new(META).join("plain.jpg"), odd).unwrap();
    dir
}

/// `index --dry-run --json` of `dir` against `index`, its paths as embed --stdin -0 input.
fn pending(sb: &Sandbox, index: &Path, dir: &Path) -> Vec<u8> {
    let out = pipe(
        sb,
        index,
        &["index", "--dry-run", "--json", dir.to_str().unwrap()],
        b"",
    );
    let lines = json_lines(&out);
    // Exit status 1: nothing to read.
    let status = if lines.is_empty() { 1 } else { 0 };
    assert_eq!(out.status.code(), Some(status), "{}", stderr(&out));
    let mut list = Vec::new();
    for line in lines {
        let bytes = match line.get("path_bytes") {
            Some(b64) => base64_decode(b64.as_str().unwrap()),
            None => line["path"].as_str().unwrap().as_bytes().to_vec(),
        };
        list.extend(bytes);
        list.push(0);
    }
    list
}

fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for c in text.bytes().take_while(|&c| c != b'=') {
        bits = bits << 6 | ALPHABET.iter().position(|&a| a == c).unwrap() as u32;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    out
}

/// Embeds `list` (NUL-separated) and imports the records into `index`; the import's summary.
fn embed_and_import(sb: &Sandbox, index: &Path, list: &[u8]) -> Value {
    let embedded = pipe(sb, index, &["embed", "--stdin", "-0"], list);
    assert_eq!(embedded.status.code(), Some(2), "{}", stderr(&embedded));
    let imported = pipe(sb, index, &["import", "--json"], &embedded.stdout);
    assert_eq!(imported.status.code(), Some(2), "{}", stderr(&imported));
    json_lines(&imported).remove(0)
}

fn query(sb: &Sandbox, index: &Path, text: &str) -> String {
    let out = pipe(sb, index, &["query", "--json", "-k", "8", text], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

#[test]
fn embed_stdin_piped_into_import_equals_index_of_the_same_folder() {
    let sb = Sandbox::new();
    let dir = library(&sb);
    let (indexed, imported) = (sb.path("indexed"), sb.path("imported"));
    let out = pipe(&sb, &indexed, &["index", dir.to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    let list = pending(&sb, &imported, &dir);
    assert_eq!(list.iter().filter(|&&b| b == 0).count(), 15);
    let summary = embed_and_import(&sb, &imported, &list);
    assert_eq!(
        (&summary["records"], &summary["added"], &summary["failed"]),
        (&15.into(), &14.into(), &1.into())
    );
    let (images, failures) = held(&imported);
    assert_eq!(images.len(), 14);
    let odd = dir.join(OsStr::from_bytes(b"caf\xe9.jpg"));
    assert!(images.contains_key(odd.as_os_str().as_bytes()));
    let gps = images
        .values()
        .filter_map(|(_, _, meta)| meta.as_ref()?.gps)
        .count();
    assert!(gps >= 1, "a GPS position crossed");
    assert_eq!(
        failures.keys().collect::<Vec<_>>(),
        [&dir.join("broken.jpg").as_os_str().as_bytes().to_vec()]
    );
    assert_eq!(held(&indexed), (images, failures));
    for text in ["a red circle", "a blue square"] {
        assert_eq!(query(&sb, &imported, text), query(&sb, &indexed, text));
    }

    // Again: nothing new to list, and the same records again add nothing.
    assert!(pending(&sb, &imported, &dir).is_empty());
    let before = held(&imported);
    let summary = embed_and_import(&sb, &imported, &list);
    assert_eq!(
        (
            &summary["unchanged"],
            &summary["added"],
            &summary["updated"]
        ),
        (&14.into(), &0.into(), &0.into())
    );
    assert_eq!(held(&imported), before);

    // A changed file: listed alone, and replaced by the import as index replaces it.
    // New content (a copy of another indexed file would be reused by index, not embedded).
    let (other, items) = sb.photos("other", 1, 11);
    std::fs::copy(other.join(&items[0].file), dir.join("000003.png")).unwrap();
    let out = pipe(&sb, &indexed, &["index", dir.to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let list = pending(&sb, &imported, &dir);
    assert_eq!(
        list,
        [dir.join("000003.png").as_os_str().as_bytes(), b"\0"].concat()
    );
    let embedded = pipe(&sb, &imported, &["embed", "--stdin", "-0"], &list);
    assert!(embedded.status.success(), "{}", stderr(&embedded));
    let imported_again = pipe(&sb, &imported, &["import", "--json"], &embedded.stdout);
    assert!(
        imported_again.status.success(),
        "{}",
        stderr(&imported_again)
    );
    assert_eq!(json_lines(&imported_again)[0]["updated"], 1);
    assert_eq!(held(&imported), held(&indexed));
}

#[test]
fn paths_on_stdin_are_taken_byte_for_byte_one_per_line_or_nul_separated() {
    let sb = Sandbox::new();
    let (dir, _) = sb.photos("photos", 2, 5);
    let newline = dir.join("two\nlines.png");
    std::fs::copy(dir.join("000000.png"), &newline).unwrap();
    let index = sb.path("index");
    let list = [
        newline.as_os_str().as_bytes(),
        b"\0\0",
        dir.join("000001.jpg").as_os_str().as_bytes(),
    ]
    .concat();
    let out = pipe(&sb, &index, &["embed", "--stdin", "-0"], &list);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["kind"], "model");
    assert_eq!(lines[0]["dim"], 64);
    assert_eq!(lines[1]["path"], newline.to_str().unwrap());
    assert_eq!(lines[2]["path"], dir.join("000001.jpg").to_str().unwrap());
    assert_eq!(lines[1]["embedding"].as_array().unwrap().len(), 64);

    // By lines, relative paths made absolute; a missing file is a failure line, named on
    // stderr, and the exit status says some were not embedded.
    let out = sb
        .command(SHAPES)
        .current_dir(&dir)
        .args(["embed", "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    out.stdin
        .as_ref()
        .unwrap()
        .write_all(b"000001.jpg\n\nmissing.png\n")
        .unwrap();
    let out = out.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let lines = json_lines(&out);
    assert_eq!(lines[1]["path"], dir.join("000001.jpg").to_str().unwrap());
    let missing = dir.join("missing.png");
    assert_eq!(
        lines[2],
        serde_json::json!({"kind": "failure", "path": missing.to_str().unwrap(), "reason": "no such file or directory"})
    );
    assert_eq!(
        stderr(&out),
        format!(
            "xsearch: {}: no such file or directory\n",
            missing.display()
        )
    );
}

#[test]
fn import_refuses_records_of_another_model_naming_both() {
    let sb = Sandbox::new();
    let (dir, _) = sb.photos("photos", 2, 5);
    let index = sb.path("index");
    let out = pipe(&sb, &index, &["index", dir.to_str().unwrap()], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    let list = dir.join("000000.png").to_str().unwrap().to_owned() + "\n";
    let parity = format!("{PARITY}/model");
    let embedded = sb
        .command(&parity)
        .args(["embed", "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    embedded
        .stdin
        .as_ref()
        .unwrap()
        .write_all(list.as_bytes())
        .unwrap();
    let embedded = embedded.wait_with_output().unwrap();
    assert!(embedded.status.success());
    let theirs = json_lines(&embedded)[0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = pipe(&sb, &index, &["import"], &embedded.stdout);
    assert_eq!(out.status.code(), Some(2));
    let ours = Reader::open(&index)
        .unwrap()
        .info()
        .model_fingerprint
        .clone();
    assert_eq!(
        stderr(&out),
        format!(
            "xsearch: {}: these records were embedded with model {theirs}, but the index holds \
             vectors of model {ours}\n\nEmbed the files with the index's model, or import the \
             records into an index of their own.\n",
            index.display()
        )
    );
    let out = pipe(&sb, &index, &["import"], b"{\"kind\":\"image\"}\n");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "xsearch: -: line 1: not a model line\n\nImport reads what `xsearch embed --stdin` \
         writes, whose first line names the model.\n"
    );
}
