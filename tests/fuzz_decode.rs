//! Mutation fuzzing of the decoders: valid seeds in every supported format and colour mode
//! (`fixtures/fuzz/seeds/`, written by `fixtures/fuzz/make_seeds.py`), mutated thousands of
//! times with a fixed seed. No panic may escape, and every file is accounted for: decoded
//! within the limits, or refused with a typed error. Files that ever crashed a decoder are kept
//! in `fixtures/fuzz/crashers/` and must never crash it again.
//!
//! `XSEARCH_FUZZ_MUTANTS=N` sets the mutants per seed (default 10,000) for a longer hunt,
//! `XSEARCH_FUZZ_SEED=N` the random seed, and `XSEARCH_FUZZ_KEEP=DIR` a folder where mutants
//! that crashed a decoder are written (to keep as fixtures under `crashers/`).
//!
//! The reduced-scale JPEG path runs through libjpeg-turbo where the system has it, and
//! through jpeg-decoder in a second run of these tests (`common/jpeg_paths.rs`).

mod common;

use std::path::{Path, PathBuf};
use std::sync::Once;

use xsearch::decode::{
    decode_bytes, decode_bytes_scaled, decode_file, panic_is_contained, read_meta, DecodeError,
    DecodeLimits,
};
use xsearch::{Engine, EngineOptions, IngestEvent, OpenMode};

const FUZZ: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/fuzz");
const SHAPES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/models/shapes-tiny");

/// Contained panics are reported as errors; the default hook would print each one first.
fn quiet_contained_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !panic_is_contained() {
                default(info);
            }
        }));
    });
}

/// Tight limits: a mutated header may claim any size, and the test must stay quick.
fn limits() -> DecodeLimits {
    DecodeLimits {
        max_pixels: 1 << 20,
        max_alloc: 64 << 20,
        ..DecodeLimits::default()
    }
}

fn files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(Path::new(FUZZ).join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

/// splitmix64: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One to three mutations of `seed`, `other` lending spans to splice in.
fn mutate(seed: &[u8], other: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..1 + rng.below(3) {
        if data.is_empty() {
            break;
        }
        let at = rng.below(data.len());
        let span = 1 + rng.below(64.min(data.len() - at));
        match rng.below(7) {
            // Bit flips.
            0 => {
                for _ in 0..1 + rng.below(8) {
                    let i = rng.below(data.len());
                    data[i] ^= 1 << rng.below(8);
                }
            }
            // Truncation.
            1 => data.truncate(at),
            // A size or length field rewritten: 2 or 4 bytes set to an extreme or random value,
            // in either byte order.
            2 => {
                let width = if rng.below(2) == 0 { 2 } else { 4 };
                let value: u32 = match rng.below(4) {
                    0 => 0,
                    1 => u32::MAX,
                    2 => 0x8000_0000 >> rng.below(32),
                    _ => rng.next() as u32,
                };
                let bytes = if rng.below(2) == 0 {
                    value.to_be_bytes()
                } else {
                    value.to_le_bytes()
                };
                for (i, b) in bytes.iter().take(width).enumerate() {
                    if let Some(d) = data.get_mut(at + i) {
                        *d = *b;
                    }
                }
            }
            // A zeroed span.
            3 => data[at..at + span].fill(0),
            // A duplicated span.
            4 => {
                let copy = data[at..at + span].to_vec();
                data.splice(at..at, copy);
            }
            // A span of another seed spliced in.
            5 => {
                let from = rng.below(other.len());
                let len = span.min(other.len() - from);
                data.splice(at..at + span, other[from..from + len].iter().copied());
            }
            // A span deleted.
            _ => {
                data.drain(at..at + span);
            }
        }
    }
    data
}

/// Checks one outcome: an image within the limits, or a typed error; counts crashes.
fn account(result: Result<image::DynamicImage, DecodeError>, limits: &DecodeLimits) -> bool {
    match result {
        Ok(image) => {
            assert!(image.width() > 0 && image.height() > 0);
            assert!(u64::from(image.width()) * u64::from(image.height()) <= limits.max_pixels);
            false
        }
        Err(DecodeError::Crashed { .. }) => true,
        Err(_) => false,
    }
}

#[test]
fn every_seed_decodes() {
    let seeds = files("seeds");
    assert!(seeds.len() >= 28, "{} seeds", seeds.len());
    for path in &seeds {
        let image = decode_file(path, &limits()).unwrap_or_else(|e| panic!("{e}"));
        let rotated = path
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("exif-rotated");
        let expected = if rotated { (16, 24) } else { (24, 16) };
        assert_eq!(image.dimensions_pair(), expected, "{}", path.display());
        // The reduced-scale path: JPEGs at half size (8 pixels kept on the short side), CMYK
        // ones at full size (neither scaled decoder converts CMYK), other formats untouched.
        let bytes = std::fs::read(path).unwrap();
        let reduced = decode_bytes_scaled(&bytes, &limits(), 8).unwrap_or_else(|e| panic!("{e}"));
        let name = path.file_name().unwrap().to_str().unwrap();
        let halved = name.ends_with(".jpg") && name != "cmyk.jpg";
        let (w, h) = expected;
        let expected = if halved { (w / 2, h / 2) } else { expected };
        assert_eq!(reduced.dimensions_pair(), expected, "{name}, reduced");
        if halved {
            // Close to the full-size image averaged 2x2 (the exact pixels differ by decoder).
            // Measured: at most 0.92 levels (libjpeg-turbo), 1.80 (jpeg-decoder).
            let full = image.to_rgb8();
            let small = reduced.to_rgb8();
            let mut total = 0.0;
            for (x, y, pixel) in small.enumerate_pixels() {
                for (c, &value) in pixel.0.iter().enumerate() {
                    let sum: u32 = [(0, 0), (1, 0), (0, 1), (1, 1)]
                        .iter()
                        .map(|(dx, dy)| u32::from(full.get_pixel(2 * x + dx, 2 * y + dy)[c]))
                        .sum();
                    total += (f64::from(sum) / 4.0 - f64::from(value)).abs();
                }
            }
            let mean_difference = total / f64::from(3 * small.width() * small.height());
            assert!(
                mean_difference < 3.0,
                "{name}: mean difference {mean_difference:.2}"
            );
        }
    }
}

#[test]
fn every_test_here_passes_on_the_pure_rust_path_too() {
    common::jpeg_paths::rerun_on_the_pure_rust_path(
        "every_test_here_passes_on_the_pure_rust_path_too",
    );
}

trait Dimensions {
    fn dimensions_pair(&self) -> (u32, u32);
}

impl Dimensions for image::DynamicImage {
    fn dimensions_pair(&self) -> (u32, u32) {
        (self.width(), self.height())
    }
}

#[test]
fn thousands_of_mutants_never_panic_and_are_all_accounted_for() {
    quiet_contained_panics();
    let limits = limits();
    let seeds: Vec<Vec<u8>> = files("seeds")
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    let per_seed = env_number("XSEARCH_FUZZ_MUTANTS", 10_000);
    let mut rng = Rng(env_number("XSEARCH_FUZZ_SEED", 12));
    let (mut decoded, mut refused, mut crashed) = (0, 0, 0);
    for (i, seed) in seeds.iter().enumerate() {
        let other = &seeds[(i + 1) % seeds.len()];
        for n in 0..per_seed {
            let mutant = mutate(seed, other, &mut rng);
            // Every other mutant takes the reduced-scale path, where JPEGs meet libjpeg-turbo
            // (or jpeg-decoder, without it).
            let result = if n % 2 == 0 {
                decode_bytes(&mutant, &limits)
            } else {
                decode_bytes_scaled(&mutant, &limits, 8)
            };
            if let Err(err @ DecodeError::Crashed { .. }) = &result {
                eprintln!("crashed: {err}");
                if let Ok(dir) = std::env::var("XSEARCH_FUZZ_KEEP") {
                    let name = format!("{}-{n}", i);
                    std::fs::write(Path::new(&dir).join(name), &mutant).unwrap();
                }
            }
            match (result.is_ok(), account(result, &limits)) {
                (true, _) => decoded += 1,
                (false, true) => crashed += 1,
                (false, false) => refused += 1,
            }
        }
    }
    let total = seeds.len() as u64 * per_seed;
    assert_eq!(decoded + refused + crashed, total);
    assert!(total >= 250_000 || per_seed < 10_000, "{total} mutants");
    eprintln!(
        "{total} mutants: {decoded} decoded, {refused} refused, {crashed} crashed (contained)"
    );
}

/// The metadata reader meets the same mutations, of files whose EXIF blocks are full
/// (`fixtures/meta/`): nothing escapes, nothing hangs, and what it returns is in range. (No
/// mutant made kamadak-exif panic in 220,000 tries, `XSEARCH_FUZZ_MUTANTS=80000`; a panic
/// would be contained all the same.)
#[test]
fn metadata_of_mutants_is_read_or_left_empty_never_out_of_range() {
    quiet_contained_panics();
    let meta_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/meta");
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&meta_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.extension().is_some_and(|e| e == "py" || e == "txt"))
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 11, "{} seeds", seeds.len());
    let per_seed = env_number("XSEARCH_FUZZ_MUTANTS", 10_000) / 4;
    let mut rng = Rng(env_number("XSEARCH_FUZZ_SEED", 12));
    let zone = jiff::tz::TimeZone::UTC;
    let (mut dated, mut total) = (0, 0);
    for (i, seed) in seeds.iter().enumerate() {
        let other = &seeds[(i + 1) % seeds.len()];
        for _ in 0..per_seed {
            let meta = read_meta(&mutate(seed, other, &mut rng), None, 0, &zone);
            let taken = meta.taken.expect("a time, from EXIF or the file");
            if taken.source == xsearch::TakenSource::Exif {
                dated += 1;
                assert!(taken.offset_minutes.is_none_or(|m| m.abs() <= 18 * 60));
            }
            if let Some((lat, lon)) = meta.gps {
                assert!(lat.abs() <= 90.0 && lon.abs() <= 180.0, "{lat} {lon}");
            }
            total += 1;
        }
    }
    eprintln!("{total} metadata mutants: {dated} still had an EXIF date");
    assert!(dated > 0 && dated < total);
}

/// The tiled TIFF with one plane per channel that `tiff` 0.11.3 asserts on (issue #12) now
/// goes to libtiff: it decodes where the system has libtiff, and is refused in words where it
/// has not. Either way no decoder panics.
fn crasher_outcome(result: Result<image::DynamicImage, DecodeError>) {
    match result {
        Ok(image) => assert_eq!((image.width(), image.height()), (24, 16)),
        Err(DecodeError::Unsupported { detail, .. }) => {
            assert!(detail.contains("needs libtiff"), "{detail}")
        }
        Err(err) => panic!("{err}"),
    }
}

#[test]
fn files_that_once_crashed_a_decoder_decode_or_are_refused_in_words() {
    quiet_contained_panics();
    let crashers = files("crashers");
    assert_eq!(crashers.len(), 4);
    for path in crashers {
        let result = decode_file(&path, &limits());
        if path.extension().is_some_and(|e| e == "tif") {
            crasher_outcome(result);
        } else {
            // Found by this fuzzer: BMPs cut short inside an OS/2 2.x header made the header
            // rewrite (src/decode/bmp.rs) slice past their end.
            let err = result.unwrap_err();
            assert!(
                matches!(
                    err,
                    DecodeError::Corrupt { .. } | DecodeError::Unsupported { .. }
                ),
                "{}: {err}",
                path.display()
            );
        }
    }
}

fn engine(dir: &Path) -> Engine {
    let options = EngineOptions::new(SHAPES)
        .index(dir.join("index"))
        .mode(OpenMode::Create);
    Engine::open(&options, None).unwrap()
}

#[test]
fn a_folder_of_mutants_is_indexed_or_listed_file_by_file_and_failures_are_not_retried() {
    quiet_contained_panics();
    let dir = tempfile::tempdir().unwrap();
    let photos = std::path::absolute(dir.path().join("photos")).unwrap();
    std::fs::create_dir_all(&photos).unwrap();
    let seeds = files("seeds");
    let mut rng = Rng(7);
    let mut written = 0;
    for (i, path) in seeds.iter().enumerate() {
        let seed = std::fs::read(path).unwrap();
        let other = std::fs::read(&seeds[(i + 1) % seeds.len()]).unwrap();
        let name = path.file_name().unwrap().to_str().unwrap();
        for n in 0..6 {
            std::fs::write(
                photos.join(format!("{n}-{name}")),
                mutate(&seed, &other, &mut rng),
            )
            .unwrap();
            written += 1;
        }
    }
    let crasher = photos.join("tiled-planar.tif");
    std::fs::copy(Path::new(FUZZ).join("crashers/tiled-planar.tif"), &crasher).unwrap();
    written += 1;
    // Modified before the run, as photos are: a failure is then known not to be retried.
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for entry in std::fs::read_dir(&photos).unwrap() {
        let file = std::fs::File::options()
            .write(true)
            .open(entry.unwrap().path())
            .unwrap();
        file.set_modified(hour_ago).unwrap();
    }

    let engine = engine(dir.path());
    let first = engine.ingest(std::slice::from_ref(&photos), &()).unwrap();
    assert_eq!(first.found, written);
    assert_eq!(first.added + first.failed, written);
    let status = engine.status().unwrap();
    // Every file is either indexed or listed.
    assert_eq!(status.images + status.failures.len(), written);
    if let Some(failure) = status.failures.iter().find(|f| f.path == crasher) {
        assert!(
            failure.reason.contains("needs libtiff"),
            "{}",
            failure.reason
        );
    }

    // The next run reads nothing again, failures included: nothing changed.
    let pending = std::sync::atomic::AtomicUsize::new(usize::MAX);
    let observer = |event: IngestEvent<'_>| {
        if let IngestEvent::Walked { pending: n, .. } = event {
            pending.store(n, std::sync::atomic::Ordering::Relaxed);
        }
    };
    let second = engine
        .ingest(std::slice::from_ref(&photos), &observer)
        .unwrap();
    assert_eq!(pending.into_inner(), 0);
    assert_eq!(
        (second.unchanged, second.failed, second.added),
        (first.added, first.failed, 0)
    );
    assert_eq!(engine.status().unwrap().failures, status.failures);
}

/// Found by this fuzzer: a GIF whose logical screen is zero pixels wide decoded
/// "successfully" (`image` 0.25.10 with `gif` 0.14.2) to an image without pixels, which the model's
/// resize then divides by.
#[test]
fn a_gif_of_zero_width_is_refused() {
    let mut bytes = std::fs::read(Path::new(FUZZ).join("seeds/palette.gif")).unwrap();
    bytes[6..8].fill(0); // the logical screen's width, u16 LE
    let err = decode_bytes(&bytes, &limits()).unwrap_err();
    assert_eq!(
        err.reason(),
        "corrupt or truncated image: the header says the image is 0x16"
    );
}
