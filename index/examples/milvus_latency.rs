//! Query latency through Milvus against the embedded index, on the same vectors, in one run:
//! POINTS clustered 1024-d vectors (64-d clusters lifted by a fixed random projection, as the
//! other index benchmarks make them) go into a new embedded index and into a Milvus collection;
//! then each query is asked of both in turn (interleaved, so a load spike on this shared
//! machine hits both), k = 10, and the p50/p99 latency and recall@10 against the exact answer
//! are printed for each.
//!
//!     milvus-lite server --data-dir D --host 127.0.0.1 --port 19530 &
//!     cargo run --release -p xsearch-index --features milvus --example milvus_latency -- \
//!         milvus://127.0.0.1:19530/bench "$PWD/target/bench-milvus" [POINTS] [QUERIES]
//!
//! The embedded side is searched through a [`Reader`] (what `xsearch query` uses), the Milvus
//! side through the backend `xsearch query` uses (gRPC on loopback, strong consistency).

#[path = "../tests/common/clustered.rs"]
mod clustered;

use std::time::{Duration, Instant};

use clustered::{centres, normalize, sample, Rng};
use xsearch_index::{
    open_remote, Entry, Index, IndexOptions, IndexSpec, Location, Open, Part, Reader,
};

const LATENT: usize = 64;
const DIM: usize = 1024;
const K: usize = 10;
const BATCH: usize = 500;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: milvus_latency milvus://HOST:PORT/COLLECTION DIR [POINTS] [QUERIES]";
    let url = args.next().ok_or(usage)?;
    let Location::Milvus(url) = Location::parse(url.as_ref())? else {
        return Err(usage.into());
    };
    let dir = std::path::PathBuf::from(args.next().ok_or(usage)?);
    let points: usize = args.next().map_or(Ok(20_000), |a| a.parse())?;
    let queries: usize = args.next().map_or(Ok(300), |a| a.parse())?;
    let mut rng = Rng(11);
    let centres = centres(&mut rng, 200, LATENT);
    let lift: Vec<Vec<f32>> = (0..DIM)
        .map(|_| (0..LATENT).map(|_| rng.normal()).collect())
        .collect();
    let lifted = |x: Vec<f32>| -> Vec<f32> {
        normalize(
            lift.iter()
                .map(|row| row.iter().zip(&x).map(|(a, b)| a * b).sum())
                .collect(),
        )
    };
    let spec = IndexSpec {
        model: format!("milvus-latency-{points}"),
        dim: DIM,
    };
    let path = dir.join(format!("index-{points}"));
    if path.exists() {
        std::fs::remove_dir_all(&path)?;
    }
    let index = Index::open_with(&path, &spec, IndexOptions::default())?;
    let remote = open_remote(&url, Open::Create(&spec, "bench"))?;
    let (mut local_load, mut remote_load) = (Duration::ZERO, Duration::ZERO);
    for first in (0..points).step_by(BATCH) {
        let batch: Vec<Entry> = (first..(first + BATCH).min(points))
            .map(|i| Entry {
                key: format!("/p/{i:06}.jpg").into_bytes(),
                file: None,
                vector: lifted(sample(&mut rng, &centres)),
                meta: None,
            })
            .collect();
        let start = Instant::now();
        index.images().upsert_batch(batch.clone())?;
        local_load += start.elapsed();
        let start = Instant::now();
        remote.images().upsert_batch(batch)?;
        remote_load += start.elapsed();
    }
    index.close()?;
    assert_eq!(
        remote.count(Part::Images)?,
        points,
        "Milvus holds every vector"
    );
    println!(
        "loaded {points} x {DIM}: embedded {:.1} s (graph built as it goes), Milvus {:.1} s",
        local_load.as_secs_f64(),
        remote_load.as_secs_f64()
    );
    let reader = Reader::open(&path)?;
    let queries: Vec<Vec<f32>> = (0..queries)
        .map(|_| lifted(sample(&mut rng, &centres)))
        .collect();
    // Warm both (the reader's maps, Milvus's loaded segments and connection).
    for query in queries.iter().take(10) {
        reader.images().search(query, K, None)?;
        remote.search(Part::Images, query, K, None)?;
    }
    let (mut local, mut milvus) = (Vec::new(), Vec::new());
    let (mut local_recall, mut milvus_recall) = (0.0, 0.0);
    for query in &queries {
        let exact = reader.images().exact_search(query, K, None)?;
        let truth: Vec<&[u8]> = exact.iter().map(|hit| &hit.key[..]).collect();
        let recall = |hits: &[xsearch_index::Hit]| {
            hits.iter()
                .filter(|hit| truth.contains(&&hit.key[..]))
                .count() as f64
                / K as f64
        };
        let start = Instant::now();
        let hits = reader.images().search(query, K, None)?;
        local.push(start.elapsed());
        local_recall += recall(&hits);
        let start = Instant::now();
        let hits = remote.search(Part::Images, query, K, None)?;
        milvus.push(start.elapsed());
        milvus_recall += recall(&hits);
    }
    let n = queries.len() as f64;
    for (name, times, recall) in [
        ("embedded", &mut local, local_recall / n),
        ("milvus", &mut milvus, milvus_recall / n),
    ] {
        times.sort();
        let at =
            |q: f64| times[((times.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
        println!(
            "{name:<12} p50 {:>7.2} ms  p99 {:>7.2} ms  recall@{K} {recall:.3}",
            at(0.5),
            at(0.99)
        );
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "load average (1, 5, 15 min): {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    Ok(())
}
