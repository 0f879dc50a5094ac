//! Latency of the text tower (`TextEncoder::embed_tokens`) on full-size CLIP RN50 with the
//! deterministic weights of `tests/common` (no download needed), and its load time.
//!
//!     cargo run --release --example text_speed -- [REPS]
//!
//! Writes the 408 MB scheme checkpoint to a temp dir first. Prints the median and best of REPS
//! timed runs per prompt after one warm-up run: the 5- and 77-token prompts of
//! `benches/reference_bench.py`, and a batch of eight 77-token prompts. Compare numbers from
//! one run, not across runs.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use xsearch::model::tokenizer::Tokenizer;
use xsearch::model::{ModelFiles, TextEncoder};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let reps: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(20)
        .max(1);
    let dir = tempfile::tempdir()?;
    common::write_rn50_scheme_model(dir.path());
    let files = ModelFiles::from_dir(dir.path())?;
    let start = Instant::now();
    let encoder = TextEncoder::load(&files)?;
    println!("load: {:.1} ms", start.elapsed().as_secs_f64() * 1e3);

    let tokenizer = Tokenizer::new();
    let ctx = encoder.context_length();
    let short = tokenizer.tokenize("sunset over sea", ctx);
    let long = tokenizer.tokenize(&["a very long caption about the sea"; 20].join(" "), ctx);
    let threads = rayon::current_num_threads();
    for (name, batch) in [
        ("5 tokens", vec![short]),
        ("77 tokens", vec![long.clone()]),
        ("8 x 77 tokens", vec![long; 8]),
    ] {
        encoder.embed_tokens(&batch)?;
        let mut times: Vec<f64> = (0..reps)
            .map(|_| {
                let start = Instant::now();
                encoder
                    .embed_tokens(&batch)
                    .map(|_| start.elapsed().as_secs_f64())
            })
            .collect::<Result<_, _>>()?;
        times.sort_by(f64::total_cmp);
        println!(
            "{name:>14}: median {:>7.2} ms, best {:>7.2} ms ({reps} runs, {threads} threads)",
            times[reps / 2] * 1e3,
            times[0] * 1e3
        );
    }
    Ok(())
}
