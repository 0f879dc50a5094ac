//! Builds the inputs of the `xsearch query` latency benchmark (`benches/query_latency.py`):
//! a full-size RN50 checkpoint with the deterministic weights of the model tests, and a
//! 100k-vector index that carries its fingerprint.
//!
//!     /work/venv/bin/python index/benches/hnsw_vs_hnswlib.py generate target/bench
//!     cargo run --release --example rn50_bench_index -- \
//!         target/bench/rn50 target/bench/rn50-index target/bench/points.f32
//!
//! The model directory gets `open_clip_config.json` (from `fixtures/parity/rn50`) and
//! `open_clip_model.safetensors` (written unless present). The index directory must not
//! exist; it receives one image record per row of the f32 file, under made-up absolute paths
//! (`/bench/photos/000000.jpg`, ...) with made-up file stamps: querying never reads the files.
//! It writes the index with `xsearch-index` directly, keyed as the engine keys an image (the
//! bytes of its path), so the `xsearch` command opens it like one it built.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use xsearch::Clip;
use xsearch_index::{Entry, FileStamp, Index, IndexSpec};

/// Records per `upsert_batch`, as a large ingest batch.
const BATCH: usize = 1000;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// `keys.json` as (key, shape) pairs, sorted by key.
fn rn50_keys() -> Result<Vec<(String, Vec<usize>)>> {
    let path = common::fixture("rn50/keys.json");
    let bad = || format!("{}: expected [[key, [dims...]], ...]", path.display());
    let json = common::read_json(&path);
    json.as_array()
        .ok_or_else(bad)?
        .iter()
        .map(|pair| {
            let name = pair[0].as_str().ok_or_else(bad)?.to_string();
            let shape = pair[1]
                .as_array()
                .ok_or_else(bad)?
                .iter()
                .map(|d| d.as_u64().map(|d| d as usize).ok_or_else(bad))
                .collect::<std::result::Result<_, _>>()?;
            Ok((name, shape))
        })
        .collect()
}

fn write_model(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::copy(
        common::fixture("rn50/open_clip_config.json"),
        dir.join("open_clip_config.json"),
    )?;
    if !dir.join("open_clip_model.safetensors").exists() {
        common::write_scheme_checkpoint(dir, &rn50_keys()?);
    }
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [model, index, points] = args.as_slice() else {
        return Err("usage: rn50_bench_index <model dir> <new index dir> <points.f32>".into());
    };
    if index.exists() {
        return Err(format!("{}: already exists, remove it first", index.display()).into());
    }
    write_model(model)?;
    let model = model.to_str().ok_or("the model directory must be UTF-8")?;
    let clip = Clip::open(model, None)?;
    let dim = clip.embed_dim();
    let spec = IndexSpec {
        model: clip.files().fingerprint(),
        dim,
    };
    let store = Index::open(index, &spec)?;
    let bytes = std::fs::read(points).map_err(|e| format!("{}: {e}", points.display()))?;
    let rows: Vec<&[u8]> = bytes.chunks_exact(dim * 4).collect();

    let start = Instant::now();
    for (b, batch) in rows.chunks(BATCH).enumerate() {
        let entries = batch
            .iter()
            .enumerate()
            .map(|(i, row)| {
                let n = (b * BATCH + i) as u64;
                Entry {
                    key: format!("/bench/photos/{n:06}.jpg").into_bytes(),
                    file: Some(FileStamp {
                        size: 100_000 + n,
                        mtime_ns: 1_700_000_000_000_000_000 + n as i64,
                        hash: n.to_le_bytes().to_vec(),
                    }),
                    vector: row
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect(),
                    meta: None,
                }
            })
            .collect();
        store.images().upsert_batch(entries)?;
    }
    store.checkpoint()?;
    eprintln!(
        "{}: {} vectors of {dim} dimensions in {:.1} s",
        index.display(),
        rows.len(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
