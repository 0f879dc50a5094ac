//! xsearch's side of the HNSW benchmark against hnswlib, through the persisted product path
//! (`Index::open_with`, `upsert_batch`, `close`, then `Reader::open_with` and `search`, as
//! `xsearch query` and the server search). The data sets and hnswlib's side are
//! `hnsw_vs_hnswlib.py` (its docstring has the whole recipe):
//!
//!     RAYON_NUM_THREADS=2 cargo bench -p xsearch-index --bench hnsw_vs_hnswlib -- target/bench
//!
//! Prints one `key value` line per figure: build time (upserts in batches of 1000, then the
//! last segment sealed by `close`), the wall time of `Index::open` on the result (median of
//! 5), and for each ef the recall@10 and queries/s of 1000 queries on 2 threads (median of 3),
//! asked of a reader of the published view.
//! `SEGMENT_POINTS` and `EF_CONSTRUCTION` override the index defaults, to measure what
//! several segments cost a search, or what a cheaper build costs in recall; each setting gets
//! its own index directory under the data directory. `SKIP_BUILD=1` reuses the index built
//! last time with the same setting, and `EFS=192,224` sweeps only those ef values, so query
//! sweeps can be interleaved with hnswlib's.

use std::path::{Path, PathBuf};
use std::time::Instant;

use xsearch_index::{Entry, HnswParams, Index, IndexOptions, IndexSpec, Reader};

const DIM: usize = 1024;
const K: usize = 10;
const BATCH: usize = 1000;
const THREADS: usize = 2;
/// The ef values `hnsw_vs_hnswlib.py` sweeps on hnswlib's side.
const EFS: [usize; 25] = [
    10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384,
    416, 448, 480, 512,
];

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn read_f32s(path: &Path) -> Result<Vec<Vec<f32>>> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(bytes
        .chunks_exact(DIM * 4)
        .map(|row| {
            row.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        })
        .collect())
}

fn read_truth(path: &Path) -> Result<Vec<Vec<u32>>> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(bytes
        .chunks_exact(K * 4)
        .map(|row| {
            row.chunks_exact(4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        })
        .collect())
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Keys are the point's row number in `points.f32`, as decimal text.
fn row_of(key: &[u8]) -> Option<u32> {
    std::str::from_utf8(key).ok()?.parse().ok()
}

fn options(ef_search: usize) -> IndexOptions {
    let defaults = IndexOptions::default();
    let env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    IndexOptions {
        exact_threshold: 0,
        ef_search,
        segment_points: env("SEGMENT_POINTS", defaults.segment_points),
        hnsw: HnswParams {
            ef_construction: env("EF_CONSTRUCTION", defaults.hnsw.ef_construction),
            ..defaults.hnsw
        },
        ..defaults
    }
}

fn build(dir: &Path, spec: &IndexSpec, points: Vec<Vec<f32>>) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    let start = Instant::now();
    let index = Index::open_with(dir, spec, options(64))?;
    let mut rows = points.into_iter().enumerate().peekable();
    while rows.peek().is_some() {
        let batch = rows
            .by_ref()
            .take(BATCH)
            .map(|(row, vector)| Entry {
                key: row.to_string().into_bytes(),
                file: None,
                vector,
                meta: None,
            })
            .collect();
        index.images().upsert_batch(batch)?;
    }
    let upserted = start.elapsed().as_secs_f64();
    index.close()?;
    let total = start.elapsed().as_secs_f64();
    println!("xsearch upsert_s {upserted:.3}");
    println!("xsearch seal_s {:.3}", total - upserted);
    println!("xsearch build_s {total:.3}");
    Ok(())
}

/// Runs every query once on `THREADS` threads; returns the wall time and the recall@10.
fn run_queries(index: &Reader, queries: &[Vec<f32>], truth: &[Vec<u32>]) -> Result<(f64, f64)> {
    let start = Instant::now();
    let chunk = queries.len().div_ceil(THREADS);
    let found: Vec<Vec<Vec<u32>>> = std::thread::scope(|s| {
        let workers: Vec<_> = queries
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || -> std::result::Result<Vec<Vec<u32>>, String> {
                    part.iter()
                        .map(|q| {
                            let hits = index
                                .images()
                                .search(q, K, None)
                                .map_err(|e| e.to_string())?;
                            Ok(hits.iter().filter_map(|h| row_of(&h.key)).collect())
                        })
                        .collect()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .map_err(|_| "a query thread panicked".to_string())?
            })
            .collect::<std::result::Result<_, String>>()
    })?;
    let seconds = start.elapsed().as_secs_f64();
    let hits: usize = found
        .iter()
        .flatten()
        .zip(truth)
        .map(|(got, want)| got.iter().filter(|row| want.contains(row)).count())
        .sum();
    Ok((seconds, hits as f64 / (truth.len() * K) as f64))
}

fn main() -> Result<()> {
    // `cargo bench` appends `--bench`; the first other argument is the data directory.
    let data = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .map(PathBuf::from)
        .ok_or("usage: hnsw_vs_hnswlib <dir written by hnsw_vs_hnswlib.py generate>")?;
    let points = read_f32s(&data.join("points.f32"))?;
    let queries = read_f32s(&data.join("queries.f32"))?;
    let truth = read_truth(&data.join("truth.u32"))?;
    let spec = IndexSpec {
        model: "hnsw-bench".into(),
        dim: DIM,
    };
    let probe = options(0);
    let dir = data.join(format!(
        "xsearch-index-ef{}-seg{}",
        probe.hnsw.ef_construction, probe.segment_points
    ));
    if std::env::var_os("SKIP_BUILD").is_none() {
        build(&dir, &spec, points)?;
    }

    let mut opens = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let index = Index::open_with(&dir, &spec, options(64))?;
        opens.push(start.elapsed().as_secs_f64());
        if index.open_report().images.is_repair() {
            return Err(format!("{}: the segments were not loaded", dir.display()).into());
        }
        index.close()?;
    }
    println!("xsearch open_s {:.4}", median(opens));
    let segments = Index::open_with(&dir, &spec, options(64))?
        .stats()?
        .images
        .segments;
    println!("xsearch segments {segments}");

    let efs: Vec<usize> = match std::env::var("EFS") {
        Ok(list) => list
            .split(',')
            .map(str::parse)
            .collect::<std::result::Result<_, _>>()?,
        Err(_) => EFS.to_vec(),
    };
    for ef in efs {
        let reader = Reader::open_with(&dir, options(ef))?;
        let mut times = Vec::new();
        let mut recall = 0.0;
        for _ in 0..3 {
            let (seconds, r) = run_queries(&reader, &queries, &truth)?;
            times.push(seconds);
            recall = r;
        }
        let qps = queries.len() as f64 / median(times);
        println!("xsearch ef {ef} recall {recall:.4} qps {qps:.1}");
    }
    Ok(())
}
