//! Resolving `--model`: directories, the hub cache, and failing fast when offline.

use std::path::Path;
use std::time::{Duration, Instant};

use xsearch::model::hub::{HubOptions, CONFIG_FILE, WEIGHTS_FILE};
use xsearch::model::{Error, ModelFiles};

const REPO: &str = "timm/resnet50_clip.openai";

fn options(home: &Path, offline: bool) -> HubOptions {
    HubOptions {
        cache_dir: home.join("hub"),
        // Port 9 (discard) on loopback: nothing listens, the connection is refused.
        endpoint: "http://127.0.0.1:9".to_string(),
        offline,
    }
}

fn assert_names_repo_and_files(err: &Error) {
    let text = err.to_string();
    assert!(
        matches!(err, Error::ModelUnavailable { repo, .. } if repo == REPO),
        "{text}"
    );
    for needle in [REPO, CONFIG_FILE, WEIGHTS_FILE, "into a directory"] {
        assert!(text.contains(needle), "{needle:?} missing from: {text}");
    }
}

#[test]
fn unreachable_hub_fails_fast_naming_repo_and_files() {
    let home = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let err = ModelFiles::resolve_with(REPO, &options(home.path(), false), None).unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
    assert_names_repo_and_files(&err);
    assert!(err.to_string().contains("unreachable"), "{err}");
}

#[test]
fn offline_and_not_cached_fails_without_network() {
    let home = tempfile::tempdir().unwrap();
    let err = ModelFiles::resolve_with(REPO, &options(home.path(), true), None).unwrap_err();
    assert_names_repo_and_files(&err);
    assert!(err.to_string().contains("HF_HUB_OFFLINE"), "{err}");
}

#[test]
fn cached_model_resolves_without_network() {
    let home = tempfile::tempdir().unwrap();
    // The Hugging Face cache layout: refs/main names the snapshot holding the files.
    let repo_dir = home.path().join("hub/models--timm--resnet50_clip.openai");
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let snapshot = repo_dir.join("snapshots").join(commit);
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo_dir.join("refs")).unwrap();
    std::fs::write(repo_dir.join("refs/main"), commit).unwrap();
    let config = r#"{"model_cfg": {"embed_dim": 1024, "quick_gelu": true,
        "vision_cfg": {"image_size": 224, "layers": [3, 4, 6, 3], "width": 64},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12}}}"#;
    std::fs::write(snapshot.join(CONFIG_FILE), config).unwrap();
    // A valid, empty safetensors file: 8-byte header length, then the header.
    let header = b"{}      ";
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    std::fs::write(snapshot.join(WEIGHTS_FILE), bytes).unwrap();

    for offline in [false, true] {
        let files = ModelFiles::resolve_with(REPO, &options(home.path(), offline), None).unwrap();
        assert_eq!(files.dir, snapshot);
        assert_eq!(files.weights, snapshot.join(WEIGHTS_FILE));
        assert_eq!(files.config.model_cfg.embed_dim, 1024);
    }
}

#[test]
fn directories_are_used_directly_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().to_str().unwrap();
    let err = ModelFiles::resolve_with(spec, &options(dir.path(), true), None).unwrap_err();
    assert!(
        matches!(
            err,
            Error::MissingModelFile {
                file: CONFIG_FILE,
                ..
            }
        ),
        "{err}"
    );
    let err =
        ModelFiles::resolve_with("./no/such/dir", &options(dir.path(), true), None).unwrap_err();
    assert!(matches!(err, Error::ModelNotFound { .. }), "{err}");
}

/// A stand-in for the hub on 127.0.0.1: answers `GET /REPO/resolve/main/FILE` with the file,
/// the headers the hub sends (`x-repo-commit`, a quoted `etag`) and, for a `Range` request,
/// `206` with `content-range`. Serves until the test ends.
fn serve_hub(files: Vec<(String, Vec<u8>)>, commit: &'static str) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            let mut ranged = false;
            loop {
                let mut line = String::new();
                // The reachability probe connects and closes without a request.
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                ranged |= line.to_ascii_lowercase().starts_with("range: bytes=0-0");
                if request.is_empty() {
                    request = line;
                }
            }
            let path = request.split_whitespace().nth(1).unwrap_or("");
            let found = files
                .iter()
                .find(|(name, _)| path == format!("/{REPO}/resolve/main/{name}"));
            let Some((name, body)) = found else {
                let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n");
                continue;
            };
            let etag = format!("etag-{}", name.len() * 1000 + body.len());
            let (status, part) = if ranged {
                ("206 Partial Content", &body[..1])
            } else {
                ("200 OK", &body[..])
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nx-repo-commit: {commit}\r\netag: \"{etag}\"\r\n\
                 content-range: bytes 0-0/{}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len(),
                part.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(part);
        }
    });
    endpoint
}

#[derive(Default)]
struct Recorded(std::sync::Mutex<Vec<(String, u64, u64, bool)>>);

impl xsearch::DownloadProgress for Recorded {
    fn start(&self, file: &str, total_bytes: u64) {
        self.0
            .lock()
            .unwrap()
            .push((file.to_string(), total_bytes, 0, false));
    }
    fn advance(&self, bytes: u64) {
        self.0.lock().unwrap().last_mut().unwrap().2 += bytes;
    }
    fn finish(&self) {
        self.0.lock().unwrap().last_mut().unwrap().3 = true;
    }
}

#[test]
fn download_fills_the_hub_cache_layout_then_works_offline() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/models/shapes-tiny");
    let files: Vec<(String, Vec<u8>)> = [CONFIG_FILE, WEIGHTS_FILE]
        .iter()
        .map(|name| (name.to_string(), std::fs::read(model.join(name)).unwrap()))
        .collect();
    let commit = "fedcba9876543210fedcba9876543210fedcba98";
    let home = tempfile::tempdir().unwrap();
    let options = HubOptions {
        cache_dir: home.path().join("hub"),
        endpoint: serve_hub(files.clone(), commit),
        offline: false,
    };
    let progress = Recorded::default();
    let resolved = ModelFiles::resolve_with(REPO, &options, Some(&progress)).unwrap();

    let repo_dir = home.path().join("hub/models--timm--resnet50_clip.openai");
    let snapshot = repo_dir.join("snapshots").join(commit);
    assert_eq!(resolved.dir, snapshot);
    assert_eq!(resolved.weights, snapshot.join(WEIGHTS_FILE));
    assert_eq!(resolved.config.model_cfg.embed_dim, 64);
    assert_eq!(
        std::fs::read_to_string(repo_dir.join("refs/main")).unwrap(),
        commit
    );
    for (name, body) in &files {
        let blob = repo_dir
            .join("blobs")
            .join(format!("etag-{}", name.len() * 1000 + body.len()));
        assert_eq!(&std::fs::read(&blob).unwrap(), body, "{name}");
        assert_eq!(&std::fs::read(snapshot.join(name)).unwrap(), body, "{name}");
    }
    let mut blobs: Vec<_> = std::fs::read_dir(repo_dir.join("blobs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    blobs.sort();
    assert!(
        blobs.iter().all(|b| !b.ends_with(".incomplete")),
        "{blobs:?}"
    );
    let expected: Vec<_> = files
        .iter()
        .map(|(name, body)| (name.clone(), body.len() as u64, body.len() as u64, true))
        .collect();
    assert_eq!(*progress.0.lock().unwrap(), expected);

    // The same cache, offline: no network, same files.
    let offline = HubOptions {
        endpoint: "http://127.0.0.1:9".to_string(),
        offline: true,
        ..options
    };
    let cached = ModelFiles::resolve_with(REPO, &offline, None).unwrap();
    assert_eq!(cached.weights, resolved.weights);
    assert_eq!(cached.fingerprint(), resolved.fingerprint());
}
