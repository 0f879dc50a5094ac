//! Images/s of the image tower (`ImageEncoder::embed`) on full-size CLIP RN50 with the
//! deterministic weights of `tests/common` (no download needed).
//!
//!     cargo run --release --example tower_speed -- [REPS] [BATCH]...
//!
//! Writes the 408 MB scheme checkpoint to a temp dir first. Prints the best of REPS timed
//! runs per batch size, after one warm-up run. Compare numbers from one run, not across runs.
//! `XSEARCH_BENCH_CLOCK=cpu` times by process CPU time (see `tests/common`'s `bench_now`) and
//! `XSEARCH_SIMD=avx2` runs the AVX2 kernels on an AVX-512 CPU.

#[path = "../tests/common/mod.rs"]
mod common;

use xsearch::model::{ImageEncoder, ModelFiles};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let reps: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(3);
    let mut batches: Vec<usize> = args.map(|a| a.parse()).collect::<Result<_, _>>()?;
    if batches.is_empty() {
        batches = vec![1, 8, 32];
    }

    let dir = tempfile::tempdir()?;
    std::fs::copy(
        common::fixture("rn50/open_clip_config.json"),
        dir.path().join("open_clip_config.json"),
    )?;
    let keys: Vec<(String, Vec<usize>)> = common::read_json(&common::fixture("rn50/keys.json"))
        .as_array()
        .ok_or("keys.json is not an array")?
        .iter()
        .map(|pair| {
            let shape = pair[1].as_array().into_iter().flatten();
            let shape = shape.map(|d| d.as_u64().unwrap_or(0) as usize).collect();
            (pair[0].as_str().unwrap_or_default().to_string(), shape)
        })
        .collect();
    common::write_scheme_checkpoint(dir.path(), &keys);
    let encoder = ImageEncoder::load(&ModelFiles::from_dir(dir.path())?)?;
    let threads = rayon::current_num_threads();

    for batch in batches {
        let pixels = common::scheme_pixels(batch, encoder.image_size());
        encoder.embed(&pixels)?;
        let mut best = f64::INFINITY;
        for _ in 0..reps {
            let start = common::bench_now();
            encoder.embed(&pixels)?;
            best = best.min(common::bench_now() - start);
        }
        println!(
            "batch {batch:>3}: {:>7.1} ms/batch, {:>6.2} images/s (best of {reps}, {threads} threads)",
            best * 1e3,
            batch as f64 / best
        );
    }
    Ok(())
}
