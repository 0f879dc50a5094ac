//! Per-layer GFLOP/s of `xsearch::kernels` on every RN50 convolution, next to candle's stock
//! `conv2d` in the same run, and the image tower's predicted images/s from the conv time alone.
//!
//!     cargo run --release --example conv_table -- [BATCH] [REPS] [--no-candle]
//!
//! GFLOP/s count direct-convolution work (2·MACs), whatever the algorithm does, so Winograd
//! numbers are "effective" rates. `%peak` divides by this CPU's FMA peak, measured at the start
//! by a tight loop of independent FMAs on every rayon thread at once (AVX-512 where the kernels
//! use it, else AVX2; `XSEARCH_SIMD=avx2` measures and runs the AVX2 path). Run it on a quiet
//! machine, or compare columns, not runs; on a loaded one, `XSEARCH_BENCH_CLOCK=cpu` with
//! `RAYON_NUM_THREADS=1` times by CPU time (rates and peak then per core).

#[path = "../tests/common/mod.rs"]
mod common;

use candle_core::{Device, Tensor};
use xsearch::kernels::{Algorithm, Conv2d, ConvShape, Isa};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (flags, positional): (Vec<String>, Vec<String>) =
        std::env::args().skip(1).partition(|a| a.starts_with("--"));
    // candle's conv2d is the slowest column by far; the other columns do not need it.
    let with_candle = !flags.iter().any(|f| f == "--no-candle");
    let mut args = positional.into_iter();
    let batch: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(8);
    let reps: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(3);
    let threads = rayon::current_num_threads();
    let peak = fma_peak_gflops(Isa::detect());
    println!(
        "batch {batch}, best of {reps}, {threads} threads, {} clock, measured FMA peak {peak:.1} GFLOP/s ({:?})",
        std::env::var("XSEARCH_BENCH_CLOCK").unwrap_or_else(|_| "wall".into()),
        Isa::detect()
    );
    println!(
        "{:<12} {:>14} {:>4} {:>3} {:>9} {:>7} {:>6} {:>7} {:>7} {:>7} {:>7} {:>7}",
        "layer",
        "conv",
        "in",
        "x",
        "ms/batch",
        "GFLOP/s",
        "%peak",
        "candle",
        "gemm",
        "direct",
        "wino2",
        "wino4"
    );
    let (mut ours_s, mut candle_s) = (0.0, 0.0);
    for tc in common::rn50_convs() {
        let s = tc.shape;
        let flop = s.flops(batch, tc.size, tc.size);
        let time = |algorithm| time_ours(s, tc.size, batch, reps, algorithm);
        let auto = time(Algorithm::Auto)?;
        let candle = if with_candle {
            time_candle(s, tc.size, batch, reps)?
        } else {
            f64::NAN
        };
        let gflops = |t: f64| flop / t / 1e9;
        let alternatives = if s.kh == 3 && s.stride == 1 {
            format!(
                "{:>7.1} {:>7.1} {:>7.1} {:>7.1}",
                gflops(time(Algorithm::Gemm)?),
                gflops(time(Algorithm::Direct)?),
                gflops(time(Algorithm::WinogradF2)?),
                gflops(time(Algorithm::WinogradF4)?)
            )
        } else if s.kh > 1 {
            format!(
                "{:>7.1} {:>7.1}",
                gflops(time(Algorithm::Gemm)?),
                gflops(time(Algorithm::Direct)?)
            )
        } else {
            String::new()
        };
        println!(
            "{:<12} {:>14} {:>4} {:>3} {:>9.2} {:>7.1} {:>5.0}% {:>7.1} {alternatives}",
            tc.name,
            format!("{}->{} {}x{}/{}", s.in_c, s.out_c, s.kh, s.kw, s.stride),
            tc.size,
            tc.count,
            auto * 1e3,
            gflops(auto),
            100.0 * gflops(auto) / peak,
            gflops(candle),
        );
        ours_s += auto * tc.count as f64;
        candle_s += candle * tc.count as f64;
    }
    println!(
        "all convs: ours {:.1} images/s, candle {:.1} images/s ({:.2}x)",
        batch as f64 / ours_s,
        batch as f64 / candle_s,
        candle_s / ours_s
    );
    Ok(())
}

fn random(len: usize, seed: u32) -> Vec<f32> {
    (0..len as u32)
        .map(|i| ((i.wrapping_mul(2_654_435_761) ^ seed) % 2001) as f32 / 1000.0 - 1.0)
        .collect()
}

fn best_of(
    reps: usize,
    mut f: impl FnMut() -> Result<(), Box<dyn std::error::Error>>,
) -> Result<f64, Box<dyn std::error::Error>> {
    f()?; // warm-up: grows scratch buffers, faults pages in
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let t = common::bench_now();
        f()?;
        best = best.min(common::bench_now() - t);
    }
    Ok(best)
}

fn time_ours(
    s: ConvShape,
    size: usize,
    n: usize,
    reps: usize,
    algorithm: Algorithm,
) -> Result<f64, Box<dyn std::error::Error>> {
    let conv = Conv2d::with_algorithm(
        &random(s.out_c * s.in_c * s.kh * s.kw, 1),
        &random(s.out_c, 2),
        s,
        algorithm,
    )?;
    let (oh, ow) = s.output_size(size, size).ok_or("shape does not fit")?;
    let x = random(n * size * size * s.in_c, 3);
    let mut out = vec![0.0; n * oh * ow * s.out_c];
    best_of(reps, || {
        Ok(conv.forward(&x, n, size, size, None, true, &mut out)?)
    })
}

fn time_candle(
    s: ConvShape,
    size: usize,
    n: usize,
    reps: usize,
) -> Result<f64, Box<dyn std::error::Error>> {
    let dev = Device::Cpu;
    let x = Tensor::from_vec(
        random(n * size * size * s.in_c, 3),
        (n, s.in_c, size, size),
        &dev,
    )?;
    let w = Tensor::from_vec(
        random(s.out_c * s.in_c * s.kh * s.kw, 1),
        (s.out_c, s.in_c, s.kh, s.kw),
        &dev,
    )?;
    best_of(reps, || {
        x.conv2d(&w, s.padding, s.stride, 1, 1)?;
        Ok(())
    })
}

/// Independent FMA chains per thread: enough to cover the FMA latency on two ports.
const CHAINS: usize = 16;

/// GFLOP/s of a tight loop of independent FMAs on every rayon thread at once (best of 5), the
/// vector width the kernels use on `isa`: what no kernel can beat on this machine now.
fn fma_peak_gflops(isa: Isa) -> f64 {
    const ITERS: usize = 20_000_000;
    let lanes = if isa.is_avx512() { 16 } else { 8 };
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t = common::bench_now();
        let sums = rayon::broadcast(|_| fma_chains(isa, ITERS));
        best = best.min(common::bench_now() - t);
        // Keeps the loops from being optimised away.
        assert!(sums.iter().all(|s| s.is_finite()));
    }
    let flop = 2.0 * (ITERS * CHAINS * lanes * rayon::current_num_threads()) as f64;
    flop / best / 1e9
}

fn fma_chains(isa: Isa, iters: usize) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if isa.is_avx512() {
            // SAFETY: `is_avx512` means `Isa::detect` saw AVX-512F on this CPU.
            return unsafe { fma_avx512(iters) };
        }
        if isa.is_avx2_fma() {
            // SAFETY: `is_avx2_fma` means `Isa::detect` saw AVX2 and FMA on this CPU.
            return unsafe { fma_avx2(iters) };
        }
    }
    let _ = (isa, iters);
    f32::NAN
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn fma_avx512(iters: usize) -> f32 {
    use std::arch::x86_64::*;
    let (m, a) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
    let mut acc = [_mm512_set1_ps(1.0); CHAINS];
    for _ in 0..iters {
        for x in acc.iter_mut() {
            *x = _mm512_fmadd_ps(*x, m, a);
        }
    }
    acc.iter().map(|&x| _mm512_reduce_add_ps(x)).sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn fma_avx2(iters: usize) -> f32 {
    use std::arch::x86_64::*;
    let (m, a) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
    let mut acc = [_mm256_set1_ps(1.0); CHAINS];
    for _ in 0..iters {
        for x in acc.iter_mut() {
            *x = _mm256_fmadd_ps(*x, m, a);
        }
    }
    let mut lanes = [0.0f32; 8];
    acc.iter()
        .map(|&x| {
            // SAFETY: `lanes` holds 8 floats.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), x) };
            lanes.iter().sum::<f32>()
        })
        .sum()
}
