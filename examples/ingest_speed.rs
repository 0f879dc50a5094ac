//! Ingest end to end vs the image tower alone, on the same count of real-size JPEGs (issue 4),
//! with full-size CLIP RN50 (the deterministic weights of `tests/common`, no download).
//!
//!     /work/venv/bin/python benches/make_photos.py target/ingest-bench/photos 64
//!     RAYON_NUM_THREADS=2 cargo run --release --example ingest_speed -- \
//!         target/ingest-bench [REPS] [TOWER BATCHES] [INGEST BATCHES]
//!     e.g. ... -- target/ingest-bench 3 1,2,4,8,16,32 2,4,8
//!
//! WORK_DIR holds `photos/` (the JPEGs to ingest: 4000x3000, 2.9 MB each from
//! `make_photos.py`) and receives the model (`rn50/`, 408 MB, written unless present) and the
//! temporary indexes.
//!
//! - **tower, batch B**: the images, decoded and preprocessed once beforehand, embedded B at a
//!   time (`Clip::embed_pixels`): the model alone.
//! - **ingest, batch B**: `Engine::ingest` over the photo folder into a fresh index with
//!   `batch_size` B: walk, read, hash, decode (reduced DCT), preprocess, embed, commit (the
//!   engine is opened and its image tower loaded before the clock starts).
//!
//! Each round runs, per batch size (in an order rotated every round), the tower and then, for
//! the ingest batch sizes, ingest right after it (before it on odd rounds): the ratio of each
//! such pair is measured under the same machine load. The table gives medians over rounds of
//! images/s (wall clock), of CPU milliseconds per image (this process, all threads: robust to
//! other processes' load), and of the paired ratios. Threads: the rayon pool
//! (`RAYON_NUM_THREADS`), which decoding, preprocessing and the model share.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::time::Instant;

use xsearch::model::ModelFiles;
use xsearch::{Clip, Engine, EngineOptions, IngestOptions, OpenMode};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn list(arg: Option<String>, default: &[usize]) -> Result<Vec<usize>> {
    match arg {
        None => Ok(default.to_vec()),
        Some(a) => Ok(a
            .split(',')
            .map(str::parse)
            .collect::<std::result::Result<_, _>>()?),
    }
}

/// CPU seconds this process has used (user + system, all threads), from `/proc/self/stat`.
fn cpu_seconds() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command name (which may hold spaces, so split after its `)`): utime and
    // stime are fields 14 and 15 of the line, in clock ticks of 1/100 s on Linux.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .ok_or("unexpected /proc/self/stat")?
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok(ticks as f64 / 100.0)
}

/// One timed run: images/s on the wall clock and CPU milliseconds per image.
struct Sample {
    rate: f64,
    cpu_ms: f64,
}

fn timed(count: usize, run: impl FnOnce() -> Result<()>) -> Result<Sample> {
    let (start, cpu) = (Instant::now(), cpu_seconds()?);
    run()?;
    let (wall, cpu) = (start.elapsed().as_secs_f64(), cpu_seconds()? - cpu);
    Ok(Sample {
        rate: count as f64 / wall,
        cpu_ms: cpu * 1e3 / count as f64,
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let work = PathBuf::from(args.next().unwrap_or_else(|| "target/ingest-bench".into()));
    let reps: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(3);
    let tower_batches = list(args.next(), &[1, 2, 4, 8, 16, 32])?;
    let ingest_batches = list(args.next(), &[2, 4, 8])?;
    if let Some(b) = ingest_batches.iter().find(|b| !tower_batches.contains(b)) {
        return Err(format!("ingest batch {b} is not among the tower batches").into());
    }

    let model = work.join("rn50");
    if !model.join("open_clip_model.safetensors").exists() {
        std::fs::create_dir_all(&model)?;
        common::write_rn50_scheme_model(&model);
    }
    let photos = work.join("photos");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&photos)
        .map_err(|e| {
            format!(
                "{}: {e} (make it with benches/make_photos.py)",
                photos.display()
            )
        })?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    paths.sort();
    let count = paths.len();
    let bytes: u64 = paths
        .iter()
        .map(|p| p.metadata().map(|m| m.len()))
        .sum::<std::io::Result<u64>>()?;
    let clip = Clip::from_files(ModelFiles::from_dir(&model)?);
    // The tower's input: every photo decoded and preprocessed once, as ingest would.
    let pixels: Vec<f32> = paths
        .iter()
        .map(|p| clip.preprocess(&clip.decode(p)?))
        .collect::<std::result::Result<Vec<_>, xsearch::Error>>()?
        .concat();
    let pixel_len = clip.pixel_len()?;
    println!(
        "{count} photos ({:.1} MB on average), {} threads",
        bytes as f64 / count as f64 / 1e6,
        rayon::current_num_threads()
    );
    // Warm-up: the first batches pay for page faults and lazily built kernel state.
    clip.embed_pixels(pixels[..pixel_len].to_vec())?;

    let tower = |batch: usize| {
        timed(count, || {
            for chunk in pixels.chunks(batch * pixel_len) {
                std::hint::black_box(clip.embed_pixels(chunk.to_vec())?);
            }
            Ok(())
        })
    };
    let ingest_run = |batch: usize| {
        let dir = tempfile::tempdir_in(&work)?;
        let options = EngineOptions::new(model.to_string_lossy())
            .index(dir.path())
            .mode(OpenMode::Create)
            .ingest(IngestOptions::default().batch_size(batch));
        let engine = Engine::open(&options, None)?;
        // Load the image tower before the clock starts, as the tower runs have it loaded.
        engine.embed_files(&paths[..1])?;
        timed(count, || {
            let summary = engine.ingest(std::slice::from_ref(&photos), &())?;
            match summary.added {
                added if added == count => Ok(()),
                added => Err(format!("ingest added {added} of {count} photos").into()),
            }
        })
    };

    let mut towers: Vec<Vec<Sample>> = tower_batches.iter().map(|_| Vec::new()).collect();
    let mut ingests: Vec<Vec<Sample>> = tower_batches.iter().map(|_| Vec::new()).collect();
    for rep in 0..reps {
        for i in 0..tower_batches.len() {
            let b = (i + rep) % tower_batches.len();
            let batch = tower_batches[b];
            if !ingest_batches.contains(&batch) {
                towers[b].push(tower(batch)?);
            } else if rep % 2 == 0 {
                towers[b].push(tower(batch)?);
                ingests[b].push(ingest_run(batch)?);
            } else {
                ingests[b].push(ingest_run(batch)?);
                towers[b].push(tower(batch)?);
            }
        }
    }

    let rate = |s: &[Sample]| median(s.iter().map(|s| s.rate).collect());
    let cpu = |s: &[Sample]| median(s.iter().map(|s| s.cpu_ms).collect());
    let best = towers.iter().map(|s| rate(s)).fold(0.0, f64::max);
    println!("median of {reps} rounds; ratios are ingest / tower, paired within each round");
    for (b, batch) in tower_batches.iter().enumerate() {
        let t = &towers[b];
        println!(
            "tower  batch {batch:>2}: {:6.2} images/s, {:6.1} CPU ms/image",
            rate(t),
            cpu(t)
        );
        let i = &ingests[b];
        if i.is_empty() {
            continue;
        }
        let paired = median(i.iter().zip(t).map(|(i, t)| i.rate / t.rate).collect());
        println!(
            "ingest batch {batch:>2}: {:6.2} images/s, {:6.1} CPU ms/image; \
             {paired:.2}x tower (paired), {:.2}x best tower median, CPU {:.2}x",
            rate(i),
            cpu(i),
            rate(i) / best,
            cpu(t) / cpu(i)
        );
    }
    Ok(())
}
