//! Milliseconds to decode one image file at full size, our way ([`decode_file`]: HEIC/AVIF
//! through the system's libheif, JPEG XL through jxl-oxide, the rest through `image`). Used by
//! `benches/heif_bench.py`, which times pillow-heif on the same file in the same run.
//!
//!     cargo run --release --example decode_speed -- PHOTO.heic [REPS]
//!
//! Prints `<median ms> <decoded WxH>`: the median of REPS (default 15) runs after one warm-up.
//! The file is read from disk on every run, as ingest does.

use std::path::PathBuf;
use std::time::Instant;

use xsearch::decode::{decode_file, DecodeLimits};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(args.next().ok_or("usage: decode_speed PHOTO [REPS]")?);
    let reps: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(15);
    let limits = DecodeLimits::default();
    let image = decode_file(&path, &limits)?;
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let start = Instant::now();
        std::hint::black_box(decode_file(&path, &limits)?);
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{:.1} {}x{}",
        times[times.len() / 2],
        image.width(),
        image.height()
    );
    Ok(())
}
