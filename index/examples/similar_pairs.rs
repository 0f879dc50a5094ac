//! The near-duplicate pass at scale: `build` writes an index of N synthetic 1024-d unit
//! vectors with planted near-duplicate pairs, `pass` runs `similar_pairs` on it through a
//! [`Reader`] (as `xsearch dupes` does) and says how long it took and how many planted pairs
//! it found. Peak memory comes from `/usr/bin/time -v` around `pass`.
//!
//!     cargo run -p xsearch-index --example similar_pairs -- build DIR 100000
//!     /usr/bin/time -v target/debug/examples/similar_pairs pass DIR 0.95
//!
//! (The dev profile builds xsearch-index and its dependencies at opt-level 3.)
//!
//! The data: vectors drawn around 2,000 random centres (cosine about 0.5 between two points of
//! a centre, about 0 across centres, so every point has close but distinct neighbours, as
//! photos of one place do), and every 50th point a near-duplicate of the point before it at
//! cosine 0.99 (keys end in `.dup`).

use std::time::Instant;

use xsearch_index::{Entry, Index, IndexSpec, Reader};

const DIM: usize = 1024;
const CENTRES: usize = 2_000;
const BATCH: usize = 1_000;
/// Every this many points, one is a near-duplicate of the point before it.
const DUP_EVERY: usize = 50;
const DUP_COSINE: f32 = 0.99;

/// splitmix64: reproducible numbers without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A random unit vector (uniform coordinates are near enough to a uniform direction
    /// at this dimension for the cosines above).
    fn unit(&mut self) -> Vec<f32> {
        let v: Vec<f32> = (0..DIM)
            .map(|_| (self.next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
            .collect();
        normalised(v)
    }
}

fn normalised(v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / norm).collect()
}

/// `towards` at cosine `cos` (a random direction is nearly orthogonal to it at 1024-d).
fn near(rng: &mut Rng, towards: &[f32], cos: f32) -> Vec<f32> {
    let sin = (1.0 - cos * cos).sqrt();
    let noise = rng.unit();
    normalised(
        towards
            .iter()
            .zip(noise)
            .map(|(a, n)| cos * a + sin * n)
            .collect(),
    )
}

fn build(dir: &str, n: usize) -> Result<(), Box<dyn std::error::Error>> {
    let spec = IndexSpec {
        model: "similar-pairs".into(),
        dim: DIM,
    };
    let start = Instant::now();
    let index = Index::open(dir, &spec)?;
    let mut rng = Rng(2026);
    let centres: Vec<Vec<f32>> = (0..CENTRES).map(|_| rng.unit()).collect();
    let mut previous = Vec::new();
    for first in (0..n).step_by(BATCH) {
        let mut batch = Vec::with_capacity(BATCH);
        for i in first..(first + BATCH).min(n) {
            let (key, vector) = if i % DUP_EVERY == DUP_EVERY - 1 {
                (
                    format!("{:07}.dup", i - 1),
                    near(&mut rng, &previous, DUP_COSINE),
                )
            } else {
                let centre = &centres[(rng.next() % CENTRES as u64) as usize];
                (format!("{i:07}"), near(&mut rng, centre, 0.7))
            };
            previous.clone_from(&vector);
            batch.push(Entry {
                key: key.into_bytes(),
                file: None,
                vector,
                meta: None,
            });
        }
        index.images().upsert_batch(batch)?;
    }
    index.close()?;
    println!(
        "built {n} vectors in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let usage = "usage: similar_pairs build DIR N | pass DIR MIN_SCORE";
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [verb, dir, n] if verb == "build" => build(dir, n.parse()?),
        [verb, dir, min_score] if verb == "pass" => pass(dir, min_score.parse()?),
        _ => Err(usage.into()),
    }
}

fn pass(dir: &str, min_score: f32) -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let reader = Reader::open(dir)?;
    let opened = start.elapsed().as_secs_f64();
    let images = reader.images();
    let pairs = images.similar_pairs(min_score, None)?;
    let seconds = start.elapsed().as_secs_f64() - opened;
    let key_of: std::collections::HashMap<u64, &[u8]> = images
        .iter()
        .map(|(key, record)| (record.id, key))
        .collect();
    let planted = images
        .iter()
        .filter(|(key, _)| key.ends_with(b".dup"))
        .count();
    let found = pairs
        .iter()
        .filter(|p| {
            let (a, b) = (key_of[&p.a], key_of[&p.b]);
            let (first, dup) = if a.len() < b.len() { (a, b) } else { (b, a) };
            dup.strip_suffix(b".dup") == Some(first)
        })
        .count();
    println!(
        "{} vectors: open {opened:.2} s, pass {seconds:.1} s ({:.2} ms per vector), {} pairs \
         at {min_score} or above, {found} of {planted} planted pairs (recall {:.4})",
        images.len(),
        seconds * 1e3 / images.len() as f64,
        pairs.len(),
        found as f64 / planted as f64
    );
    Ok(())
}
