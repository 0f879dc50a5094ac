#![allow(dead_code)] // each includer (the generator, the test) uses a different subset
//! What `fixtures/index/v1` holds: shared by the generator (`examples/make_fixture.rs`) and
//! the compatibility test (`tests/compat.rs`), so both describe the same index.

use xsearch_index::{Entry, FileStamp, Index, IndexError, IndexSpec};

pub const DIM: usize = 8;
pub const IMAGES: usize = 40;
pub const REMOVED: [usize; 2] = [5, 6];
/// Re-upserted with the vector of seed `REPLACED_SEED`.
pub const REPLACED: usize = 10;
pub const REPLACED_SEED: usize = 100;
pub const TEXTS: [&str; 3] = ["a red circle", "a blue square", "a green triangle"];
pub const FAILED: &str = "/fixture/broken.jpg";
pub const FAILURE_REASON: &str = "invalid JPEG marker";

pub fn spec() -> IndexSpec {
    IndexSpec {
        model: "xsearch-index-fixture-v1".into(),
        dim: DIM,
    }
}

/// A deterministic unit vector.
pub fn vector(seed: usize) -> Vec<f32> {
    let v: Vec<f32> = (0..DIM)
        .map(|j| ((seed * 31 + j * 17) as f32 * 0.37).sin())
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / norm).collect()
}

pub fn image_key(i: usize) -> Vec<u8> {
    format!("/fixture/img{i:02}.jpg").into_bytes()
}

pub fn stamp(i: usize) -> FileStamp {
    FileStamp {
        size: 1_000 + i as u64,
        mtime_ns: 1_700_000_000_000_000_000 + i as i64,
        hash: format!("hash-{i}").into_bytes(),
    }
}

/// The live images and their vectors after the fixture's history.
pub fn live_images() -> Vec<(Vec<u8>, Vec<f32>)> {
    (0..IMAGES)
        .filter(|i| !REMOVED.contains(i))
        .map(|i| {
            let seed = if i == REPLACED { REPLACED_SEED } else { i };
            (image_key(i), vector(seed))
        })
        .collect()
}

/// Writes the fixture's history into an empty directory.
pub fn make(dir: &std::path::Path) -> Result<(), IndexError> {
    let index = Index::open(dir, &spec())?;
    let images = (0..IMAGES)
        .map(|i| Entry {
            key: image_key(i),
            file: Some(stamp(i)),
            vector: vector(i),
            meta: None,
        })
        .collect();
    index.images().upsert_batch(images)?;
    let removed: Vec<Vec<u8>> = REMOVED.iter().map(|&i| image_key(i)).collect();
    index.images().remove(&removed)?;
    index.images().upsert_batch(vec![Entry {
        key: image_key(REPLACED),
        file: Some(stamp(REPLACED)),
        vector: vector(REPLACED_SEED),
        meta: None,
    }])?;
    let texts = TEXTS
        .iter()
        .enumerate()
        .map(|(j, text)| Entry {
            key: text.as_bytes().to_vec(),
            file: None,
            vector: vector(200 + j),
            meta: None,
        })
        .collect();
    index.texts().upsert_batch(texts)?;
    index.record_failure(FAILED.as_bytes(), FAILURE_REASON)?;
    index.close()
}

/// Copies the directory `from` (a committed fixture) to `to`, recursively.
#[allow(dead_code)] // not every test binary copies fixtures
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
