//! Filtered search speed: queries/s at filter selectivities 50%, 10%, 1% and 0.1% against
//! unfiltered search, on 100k clustered 1024-d vectors in segments of 50k, through a
//! [`Reader`] (what `xsearch query` uses), with recall@10 against the exact filtered search.
//! Each filtered row is run as planned (the shipped `filter_scan_factor`), with every graph
//! walked (factor 0) and with every filter scanned (factor ∞), so the planner's threshold is
//! read off the same run; the unfiltered search is run again between rows, since this machine
//! is shared: compare each row with the unfiltered figure beside it.
//!
//!     RAYON_NUM_THREADS=2 cargo run --release -p xsearch-index --example filtered_search -- \
//!         "$PWD/target/bench-filtered" [POINTS] [QUERIES]
//!
//! The index is built once (about 4 minutes on 2 cores) and reused by later runs.

#[path = "../tests/common/clustered.rs"]
mod clustered;

use std::time::Instant;

use clustered::{centres, normalize, sample, Rng};
use xsearch_index::{Entry, IdSet, Index, IndexOptions, IndexSpec, Reader};

const LATENT: usize = 64;
const DIM: usize = 1024;
const K: usize = 10;
const THREADS: usize = 2;
const SELECTIVITIES: [f64; 4] = [0.5, 0.1, 0.01, 0.001];

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Clustered 64-d points lifted to 1024-d by one fixed random projection (as
/// `hnsw_vs_hnswlib.py` does): clusters like embeddings', in CLIP's dimension.
struct Lift(Vec<Vec<f32>>);

impl Lift {
    fn new(rng: &mut Rng) -> Lift {
        Lift(
            (0..DIM)
                .map(|_| (0..LATENT).map(|_| rng.normal()).collect())
                .collect(),
        )
    }

    fn apply(&self, x: &[f32]) -> Vec<f32> {
        normalize(
            self.0
                .iter()
                .map(|row| row.iter().zip(x).map(|(a, b)| a * b).sum())
                .collect(),
        )
    }
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().ok_or("usage: filtered_search DIR")?);
    let points: usize = args.next().map_or(Ok(100_000), |a| a.parse())?;
    let queries: usize = args.next().map_or(Ok(500), |a| a.parse())?;
    let mut rng = Rng(5);
    let centres = centres(&mut rng, 200, LATENT);
    let lift = Lift::new(&mut rng);
    let spec = IndexSpec {
        model: "filtered-bench".into(),
        dim: DIM,
    };
    let path = dir.join(format!("index-{points}"));
    if !path.exists() {
        let start = Instant::now();
        let index = Index::open_with(&path, &spec, IndexOptions::default())?;
        for first in (0..points).step_by(1_000) {
            let batch = (first..(first + 1_000).min(points))
                .map(|i| Entry {
                    key: format!("/p/{i:06}.jpg").into_bytes(),
                    file: None,
                    vector: lift.apply(&sample(&mut rng, &centres)),
                    meta: None,
                })
                .collect();
            index.images().upsert_batch(batch)?;
        }
        index.close()?;
        println!("build_s {:.1}", start.elapsed().as_secs_f64());
    }
    let mut rng = Rng(99);
    let queries: Vec<Vec<f32>> = (0..queries)
        .map(|_| lift.apply(&sample(&mut rng, &centres)))
        .collect();
    let open = |filter_scan_factor| {
        Reader::open_with(
            &path,
            IndexOptions {
                exact_threshold: 0,
                filter_scan_factor,
                ..IndexOptions::default()
            },
        )
    };
    let planned = open(IndexOptions::default().filter_scan_factor)?;
    let (walked, scanned) = (open(0)?, open(usize::MAX)?);
    let all = planned.images().ids_where(|_, _| true);
    println!("selectivity matches plan q/s recall@10 unfiltered_q/s ratio");
    for (i, &selectivity) in SELECTIVITIES.iter().enumerate() {
        let mut rng = Rng(1000 + i as u64);
        let filter: IdSet = all
            .iter()
            .filter(|_| (rng.uniform() as f64) < selectivity)
            .collect();
        for (plan, reader) in [
            ("planned", &planned),
            ("walked", &walked),
            ("scanned", &scanned),
        ] {
            let unfiltered = run(&planned, &queries, None)?.0;
            let (qps, recall) = run(reader, &queries, Some(&filter))?;
            println!(
                "{selectivity} {} {plan} {qps:.1} {recall:.4} {unfiltered:.1} {:.2}",
                filter.len(),
                qps / unfiltered
            );
        }
    }
    Ok(())
}

/// Runs every query once on `THREADS` threads: queries/s, and recall@10 against the exact
/// search with the same filter.
fn run(reader: &Reader, queries: &[Vec<f32>], filter: Option<&IdSet>) -> Result<(f64, f64)> {
    let images = reader.images();
    let start = Instant::now();
    let chunk = queries.len().div_ceil(THREADS);
    let hits: Vec<Vec<xsearch_index::Hit>> = std::thread::scope(|s| {
        let workers: Vec<_> = queries
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(|q| images.search(q, K, filter)).collect()))
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a query thread panicked"))
            .collect::<std::result::Result<Vec<Vec<_>>, _>>()
            .map(|parts| parts.into_iter().flatten().collect())
    })?;
    let qps = queries.len() as f64 / start.elapsed().as_secs_f64();
    let (mut found, mut wanted) = (0, 0);
    for (query, hits) in queries.iter().zip(&hits) {
        let truth = images.exact_search(query, K, filter)?;
        found += hits
            .iter()
            .filter(|h| truth.iter().any(|t| t.id == h.id))
            .count();
        wanted += truth.len();
    }
    Ok((qps, found as f64 / wanted as f64))
}
