//! Element-wise and reduction helpers over 8-lane blocks for the transformer kernels
//! (`dense.rs`, `norm.rs`, `attention.rs`): dot products, scaled adds and a vectorisable `exp`.
//!
//! Everything is `#[inline(always)]` plain Rust over `[f32; 8]`, so that a caller running inside
//! [`super::Isa::run`] gets it compiled to 256-bit AVX2 code; elsewhere LLVM emits SSE. Sums
//! keep eight partial accumulators: a single scalar accumulator would stop LLVM from vectorising
//! (float addition is not associative).

/// Lanes per block.
const LANES: usize = 8;

/// `Σ a[i]·b[i]` over the common length.
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let len = a.len().min(b.len());
    let (a, b) = (&a[..len], &b[..len]);
    let mut acc = [0.0f32; LANES];
    let (ab, bb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ar, br) = (ab.remainder(), bb.remainder());
    for (x, y) in ab.zip(bb) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    let tail: f32 = ar.iter().zip(br).map(|(x, y)| x * y).sum();
    hsum(acc) + tail
}

/// `Σ x[i]`.
#[inline(always)]
pub(crate) fn sum(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let blocks = x.chunks_exact(LANES);
    let tail: f32 = blocks.remainder().iter().sum();
    for v in blocks {
        for l in 0..LANES {
            acc[l] += v[l];
        }
    }
    hsum(acc) + tail
}

/// `Σ (x[i] - c)²`.
#[inline(always)]
pub(crate) fn sum_sq_dev(x: &[f32], c: f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let blocks = x.chunks_exact(LANES);
    let tail: f32 = blocks.remainder().iter().map(|v| (v - c) * (v - c)).sum();
    for v in blocks {
        for l in 0..LANES {
            let d = v[l] - c;
            acc[l] += d * d;
        }
    }
    hsum(acc) + tail
}

/// `y[i] += a·x[i]`.
#[inline(always)]
pub(crate) fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// Pairwise sum of the lanes (the order does not depend on the data).
#[inline(always)]
fn hsum(acc: [f32; LANES]) -> f32 {
    let h: [f32; 4] = std::array::from_fn(|i| acc[i] + acc[i + 4]);
    (h[0] + h[2]) + (h[1] + h[3])
}

/// `x[i] = exp(x[i])` for the whole slice, vectorised.
#[inline(always)]
pub(crate) fn exp_in_place(x: &mut [f32]) {
    for v in x {
        *v = exp(*v);
    }
}

/// `exp(x)` to about 1 ulp on `[-87.3, 88]` (clamped outside; NaN is not expected), written
/// with only adds, multiplies and integer bit operations so that a loop over it vectorises
/// (`f32::exp` is a libm call per element, and the text tower's QuickGELU alone needs two
/// million per 77-token prompt).
///
/// Cephes' `expf`: `x = n·ln 2 + r` with `|r| ≤ ln 2 / 2`, a degree-7 polynomial for `e^r`, and
/// `2^n` built in the exponent bits. `n` is rounded with the 1.5·2²³ trick, which leaves it in
/// the low mantissa bits of the sum, so no float-to-int conversion is needed.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.3, 88.0);
    let t = x * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    // The low 22 bits of `t` hold `n` (|n| <= 127) in two's complement.
    let n_bits = t.to_bits().wrapping_sub(ROUND.to_bits());
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e_r = p * r * r + r + 1.0;
    let scale = f32::from_bits(n_bits.wrapping_add(127) << 23);
    e_r * scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulps_of_libm() {
        let mut worst = 0.0f64;
        for i in -87_000..88_000 {
            let x = i as f32 * 1e-3 + 0.000_37;
            let want = (x as f64).exp();
            let got = exp(x) as f64;
            worst = worst.max(((got - want) / want).abs());
        }
        // 2 ulps of f32 are 2.4e-7 relative.
        assert!(worst < 2.4e-7, "worst relative error {worst}");
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(-1000.0) < 1e-37 && exp(-1000.0) >= 0.0);
        assert!(exp(1000.0) > 1e38 && exp(1000.0).is_finite());
    }

    #[test]
    fn exp_in_place_covers_blocks_and_tail() {
        let mut x: Vec<f32> = (0..19).map(|i| i as f32 * 0.25 - 2.0).collect();
        let want: Vec<f32> = x.iter().map(|v| v.exp()).collect();
        exp_in_place(&mut x);
        for (g, w) in x.iter().zip(&want) {
            assert!((g - w).abs() <= 2.4e-7 * w, "{g} vs {w}");
        }
    }

    #[test]
    fn reductions_match_their_definitions() {
        let a: Vec<f32> = (0..21).map(|i| i as f32 - 7.0).collect();
        let b: Vec<f32> = (0..21).map(|i| (i % 5) as f32 * 0.5).collect();
        let want: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert_eq!(dot(&a, &b), want);
        assert_eq!(sum(&a), 21.0 * 3.0);
        // mean 3: Σ (i - 10)² over i in 0..21 = 770.
        assert_eq!(sum_sq_dev(&a, 3.0), 770.0);
        let mut y = vec![1.0f32; 21];
        axpy(&mut y, 2.0, &b);
        assert_eq!(y[3], 1.0 + 2.0 * 1.5);
    }
}
