//! Peak resident memory of a writer as its collection grows: upserts N random unit vectors of
//! dimension DIM in batches of 64, with segments of SEGMENT_POINTS points (default: the index
//! default), checkpoints, and prints the process's peak resident set (`VmHWM`) and time.
//!
//!     cargo run --release -p xsearch-index --example upsert_memory -- DIR N DIM [SEGMENT_POINTS]
//!
//! DIR must not exist. Linux only (it reads `/proc/self/status`).

use std::time::Instant;

use xsearch_index::{Entry, Index, IndexOptions, IndexSpec};

/// splitmix64, for reproducible vectors without a dependency.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn unit(state: &mut u64, dim: usize) -> Vec<f32> {
    let v: Vec<f32> = (0..dim)
        .map(|_| (next(state) >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / norm).collect()
}

fn peak_rss_mb() -> Result<f64, Box<dyn std::error::Error>> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .ok_or("no VmHWM in /proc/self/status")?;
    let kb: f64 = line
        .split_whitespace()
        .nth(1)
        .ok_or("malformed VmHWM")?
        .parse()?;
    Ok(kb / 1024.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let usage = "usage: upsert_memory DIR N DIM [SEGMENT_POINTS]";
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, n, dim, rest @ ..] = args.as_slice() else {
        return Err(usage.into());
    };
    let (n, dim): (usize, usize) = (n.parse()?, dim.parse()?);
    if std::path::Path::new(dir).exists() {
        return Err(format!("{dir}: already exists, remove it first").into());
    }
    let mut options = IndexOptions::default();
    if let Some(points) = rest.first() {
        options.segment_points = points.parse()?;
    }
    let spec = IndexSpec {
        model: "upsert-memory".into(),
        dim,
    };
    let start = Instant::now();
    let index = Index::open_with(dir, &spec, options)?;
    let mut state = 2026;
    for first in (0..n).step_by(64) {
        let batch = (first..(first + 64).min(n))
            .map(|i| Entry {
                key: format!("/photos/{i:07}.jpg").into_bytes(),
                file: None,
                vector: unit(&mut state, dim),
                meta: None,
            })
            .collect();
        index.images().upsert_batch(batch)?;
    }
    index.checkpoint()?;
    let stats = index.images().stats()?;
    println!(
        "points {n} dim {dim} segment_points {} segments {} peak_rss_mb {:.1} seconds {:.1}",
        options.segment_points,
        stats.segments,
        peak_rss_mb()?,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
