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
