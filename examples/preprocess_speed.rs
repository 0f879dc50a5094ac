//! Milliseconds to make one JPEG ready for the image tower (decode, orient, resize, centre crop,
//! normalise), our way: reduced-DCT decoding ([`decode_file_scaled`]) and the full-size path
//! ([`decode_file`]) for comparison. Used by `benches/preprocess_bench.py`, which times Pillow
//! with `draft()` plus open_clip's transform on the same file in the same run.
//!
//!     cargo run --release --example preprocess_speed -- PHOTO.jpg [REPS] [SIZE]
//!
//! Prints one line per path: `scaled <median ms> <decoded WxH>`, `full ...`, and `decode ...`
//! (the scaled path's decoding alone, no preprocessing), medians of REPS (default 15) runs
//! after one warm-up, with the pool's thread count (`RAYON_NUM_THREADS`). The file is read
//! from disk on every run, as ingest does. `XSEARCH_TURBOJPEG=0` times the scaled paths
//! without libjpeg-turbo.

use std::path::{Path, PathBuf};
use std::time::Instant;

use xsearch::decode::{decode_file, decode_file_scaled, DecodeLimits};
use xsearch::model::preprocess::{min_source_side, Preprocessor};

/// open_clip's `OPENAI_DATASET_MEAN` / `OPENAI_DATASET_STD`, RN50's `preprocess_cfg`.
const MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
const STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(
        args.next()
            .ok_or("usage: preprocess_speed PHOTO.jpg [REPS] [SIZE]")?,
    );
    let reps: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(15);
    let size: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(224);
    let preprocessor = Preprocessor::new(size, MEAN, STD);
    let limits = DecodeLimits::default();
    let min_side = min_source_side(size);
    let threads = rayon::current_num_threads();

    for name in ["scaled", "full", "decode"] {
        let decode = |p: &Path| match name {
            "full" => decode_file(p, &limits),
            _ => decode_file_scaled(p, &limits, min_side),
        };
        let image = decode(&path)?;
        let dims = format!("{}x{}", image.width(), image.height());
        std::hint::black_box(preprocessor.pixels(&image));
        let mut times = Vec::with_capacity(reps);
        for _ in 0..reps {
            let start = Instant::now();
            let image = decode(&path)?;
            if name != "decode" {
                std::hint::black_box(preprocessor.pixels(&image));
            }
            std::hint::black_box(image);
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "{name} {:.2} {dims} (median ms of {reps}, decoded size, {threads} threads)",
            times[reps / 2]
        );
    }
    Ok(())
}
