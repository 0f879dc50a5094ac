//! Milliseconds to read one image's metadata (`read_meta`, on bytes already read, as ingest
//! does), to read it from the file alone (`read_file_meta`, as the backfill does: a JPEG's
//! first 256 KiB), and to decode the image as ingest does (reduced to twice RN50's input), for
//! comparison.
//!
//!     cargo run --release --example meta_speed -- PHOTO.jpg [REPS]
//!
//! Prints the median of REPS (default 15) runs of each, after one warm-up.

use std::path::PathBuf;
use std::time::Instant;

use jiff::tz::TimeZone;
use xsearch::decode::{decode_bytes_scaled, read_file, read_file_meta, read_meta, DecodeLimits};

fn median_ms(reps: usize, mut run: impl FnMut()) -> f64 {
    run();
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(args.next().ok_or("usage: meta_speed PHOTO [REPS]")?);
    let reps: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(15);
    let limits = DecodeLimits::default();
    let zone = TimeZone::system();
    let bytes = read_file(&path, &limits)?;
    let meta = read_meta(&bytes, Some(&path), 0, &zone);
    let from_bytes = median_ms(reps, || {
        std::hint::black_box(read_meta(&bytes, Some(&path), 0, &zone));
    });
    let from_file = median_ms(reps, || {
        std::hint::black_box(read_file_meta(&path, &limits, 0, &zone).unwrap());
    });
    let decode = median_ms(reps, || {
        std::hint::black_box(decode_bytes_scaled(&bytes, &limits, 448).unwrap());
    });
    println!(
        "read_meta {from_bytes:.3} ms, read_file_meta {from_file:.3} ms, decode (scaled) \
         {decode:.1} ms; {meta:?}"
    );
    Ok(())
}
