//! Helpers shared by the model tests: deterministic "random" checkpoints
//! (`/work/briefs/rn50_random.md` scheme, mirrored by the Python fixture script) and cosine.

#![allow(dead_code)] // each test binary uses a different subset

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

pub mod jpeg_paths;
pub mod skip;

/// splitmix64 with wrapping arithmetic.
pub fn splitmix64(x: u64) -> u64 {
    let x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Uniform value in [-1, 1) for key index `k`, element `i`.
pub fn u(k: u64, i: u64) -> f64 {
    (splitmix64((k << 40) ^ i) >> 40) as f64 / (1u64 << 24) as f64 * 2.0 - 1.0
}

/// The values of key number `k` named `name` with `shape`, per the shared scheme.
pub fn scheme_values(k: u64, name: &str, shape: &[usize]) -> Vec<f32> {
    let numel: usize = shape.iter().product();
    let value: Box<dyn Fn(f64) -> f64> = if name == "logit_scale" {
        Box::new(|_| (1.0f64 / 0.07).ln())
    } else if name.ends_with("running_var") {
        Box::new(|u| 1.0 + 0.25 * u)
    } else if name.ends_with("running_mean") {
        Box::new(|u| 0.1 * u)
    } else if name.ends_with(".bias") || name.ends_with("_bias") {
        Box::new(|u| 0.02 * u)
    } else if shape.len() == 1 && name.ends_with(".weight") {
        Box::new(|u| 1.0 + 0.1 * u)
    } else {
        let fan_in = if shape.len() >= 2 {
            numel / shape[0]
        } else {
            shape[0]
        };
        let scale = (3.0 / fan_in as f64).sqrt();
        Box::new(move |u| u * scale)
    };
    (0..numel as u64).map(|i| value(u(k, i)) as f32).collect()
}

/// Writes `dir/open_clip_model.safetensors` with every key of `keys` (sorted by key; k = index)
/// filled per the scheme; `num_batches_tracked` stays an I64 zero, as in the hub file.
pub fn write_scheme_checkpoint(dir: &Path, keys: &[(String, Vec<usize>)]) {
    let mut tensors = HashMap::new();
    for (k, (name, shape)) in keys.iter().enumerate() {
        let tensor = if name.ends_with("num_batches_tracked") {
            Tensor::new(0i64, &Device::Cpu).unwrap()
        } else {
            let values = scheme_values(k as u64, name, shape);
            Tensor::from_vec(values, shape.as_slice(), &Device::Cpu).unwrap()
        };
        tensors.insert(name.clone(), tensor);
    }
    candle_core::safetensors::save(&tensors, dir.join("open_clip_model.safetensors")).unwrap();
}

/// `keys.json` as (key, shape) pairs, sorted by key.
pub fn rn50_keys() -> Vec<(String, Vec<usize>)> {
    read_json(&fixture("rn50/keys.json"))
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| {
            let shape = pair[1]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize);
            (pair[0].as_str().unwrap().to_string(), shape.collect())
        })
        .collect()
}

/// Writes the full-size RN50 model (`fixtures/parity/rn50` config, scheme weights: 408 MB)
/// into `dir`, ready for `ModelFiles::from_dir`.
pub fn write_rn50_scheme_model(dir: &Path) {
    let config = fixture("rn50/open_clip_config.json");
    std::fs::copy(&config, dir.join("open_clip_config.json"))
        .unwrap_or_else(|e| panic!("{}: {e}", config.display()));
    write_scheme_checkpoint(dir, &rn50_keys());
}

/// The image input of the scheme: element i = 1.5 * u(100000, i).
pub fn scheme_pixels(n: usize, size: usize) -> Tensor {
    let values: Vec<f32> = (0..(n * 3 * size * size) as u64)
        .map(|i| (1.5 * u(100_000, i)) as f32)
        .collect();
    Tensor::from_vec(values, (n, 3, size, size), &Device::Cpu).unwrap()
}

/// Cosine similarity of two vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "vector lengths differ");
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// `fixtures/parity/<rel>` in this repository.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/parity")
        .join(rel)
}

/// Reads a JSON fixture.
pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// A JSON array of numbers as f32.
pub fn f32s(value: &serde_json::Value) -> Vec<f32> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect()
}

/// A JSON array of numbers as u32 token ids.
pub fn u32s(value: &serde_json::Value) -> Vec<u32> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect()
}

/// CLIP RN50's convolutions, derived from its open_clip config (`fixtures/parity/rn50`), for
/// the kernel benchmarks.
pub fn rn50_convs() -> Vec<xsearch::model::resnet::TowerConv> {
    let config = xsearch::model::OpenClipConfig::from_file(&fixture("rn50/open_clip_config.json"))
        .expect("the RN50 config");
    xsearch::model::resnet::tower_convs(&config.model_cfg).expect("RN50 is a supported tower")
}

/// The clock the speed examples time with, in seconds from an arbitrary origin: wall-clock
/// time, or with `XSEARCH_BENCH_CLOCK=cpu` this process's CPU time (all threads), which
/// other processes on a loaded machine distort far less. CPU-time rates are per core; use them
/// with `RAYON_NUM_THREADS=1`, since idle rayon workers spin for a while before they sleep.
pub fn bench_now() -> f64 {
    static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    if std::env::var("XSEARCH_BENCH_CLOCK").as_deref() == Ok("cpu") {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant libc knows.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
        assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID)");
        ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
    } else {
        ORIGIN
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_secs_f64()
    }
}
