//! Every kernel path against naive f64 references, on random shapes.

use proptest::prelude::*;

use super::*;

/// Deterministic values in [-1, 1) from a seed (xorshift64*), so proptest shrinks shapes and
/// seeds instead of megabytes of floats.
fn random(seed: u64, len: usize) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            let bits = s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
            bits as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// Naive NCHW-free reference over NHWC: returns each output with the sum of the absolute
/// values of its terms, the scale its rounding error is measured against.
#[allow(clippy::too_many_arguments)]
fn reference(
    w: &[f32],
    bias: &[f32],
    s: ConvShape,
    x: &[f32],
    n: usize,
    h: usize,
    wd: usize,
    residual: Option<&[f32]>,
    relu: bool,
) -> Vec<(f64, f64)> {
    let (oh, ow) = s.output_size(h, wd).expect("test shapes fit");
    let mut out = Vec::with_capacity(n * oh * ow * s.out_c);
    for img in 0..n {
        for oy in 0..oh {
            for ox in 0..ow {
                for o in 0..s.out_c {
                    let at = out.len();
                    let mut acc = f64::from(bias[o]);
                    let mut mag = acc.abs();
                    if let Some(r) = residual {
                        acc += f64::from(r[at]);
                        mag += f64::from(r[at]).abs();
                    }
                    for i in 0..s.in_c {
                        for ky in 0..s.kh {
                            for kx in 0..s.kw {
                                let iy = (oy * s.stride + ky) as isize - s.padding as isize;
                                let ix = (ox * s.stride + kx) as isize - s.padding as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                    continue;
                                }
                                let xv =
                                    x[((img * h + iy as usize) * wd + ix as usize) * s.in_c + i];
                                let wv = w[((o * s.in_c + i) * s.kh + ky) * s.kw + kx];
                                let t = f64::from(xv) * f64::from(wv);
                                acc += t;
                                mag += t.abs();
                            }
                        }
                    }
                    out.push((if relu { acc.max(0.0) } else { acc }, mag));
                }
            }
        }
    }
    out
}

#[derive(Clone, Copy, Debug)]
struct Case {
    shape: ConvShape,
    n: usize,
    h: usize,
    w: usize,
    residual: bool,
    relu: bool,
    seed: u64,
}

/// Runs `case` with `algorithm` and `isa`; returns the worst |error| / magnitude.
fn worst_relative_error(case: Case, algorithm: Algorithm, isa: Isa) -> f64 {
    let s = case.shape;
    let w = random(case.seed, s.out_c * s.in_c * s.kh * s.kw);
    let bias = random(case.seed + 1, s.out_c);
    let x = random(case.seed + 2, case.n * case.h * case.w * s.in_c);
    let (oh, ow) = s.output_size(case.h, case.w).expect("test shapes fit");
    let len = case.n * oh * ow * s.out_c;
    let res = case.residual.then(|| random(case.seed + 3, len));
    let conv = Conv2d::with_algorithm(&w, &bias, s, algorithm)
        .expect("valid shape")
        .with_isa(isa);
    let mut out = vec![f32::NAN; len];
    conv.forward(
        &x,
        case.n,
        case.h,
        case.w,
        res.as_deref(),
        case.relu,
        &mut out,
    )
    .expect("valid buffers");
    let want = reference(
        &w,
        &bias,
        s,
        &x,
        case.n,
        case.h,
        case.w,
        res.as_deref(),
        case.relu,
    );
    out.iter()
        .zip(&want)
        .map(|(&got, &(v, mag))| (f64::from(got) - v).abs() / mag.max(1e-30))
        .fold(0.0, f64::max)
}

/// Every instruction set this CPU can run: the best, AVX2 + FMA alone, and the portable path.
fn isa_strategy() -> impl Strategy<Value = Isa> {
    prop_oneof![
        Just(Isa::detect()),
        Just(Isa::detect().without_avx512()),
        Just(Isa::portable())
    ]
}

fn case_strategy(
    kernel: impl Strategy<Value = usize>,
    stride: impl Strategy<Value = usize>,
) -> impl Strategy<Value = Case> {
    (
        (1usize..20, 1usize..20, kernel, stride, 0usize..2),
        (1usize..3, 3usize..14, 3usize..14),
        (any::<bool>(), any::<bool>(), any::<u64>()),
    )
        .prop_map(
            |((out_c, in_c, k, stride, padding), (n, h, w), (residual, relu, seed))| Case {
                shape: ConvShape::square(out_c, in_c, k, stride, padding),
                n,
                h,
                w,
                residual,
                relu,
                seed,
            },
        )
}

// f32 accumulation of at most 9·19 products: a few ulps of the magnitude.
const GEMM_TOLERANCE: f64 = 1e-6;
// The transforms' extra additions and the fractional entries of G cost a little more; F(4,3)
// multiplies by up to 8 on the way out. Measured worst cases over 3 x 64 random shapes: GEMM
// 1.9e-7, F(2,3) 2.5e-7, F(4,3) 6.4e-6 (1.3e-6 at 64 channels).
const F2_TOLERANCE: f64 = 2e-6;
const F4_TOLERANCE: f64 = 2e-5;
// Any shape, down to one input channel on a 4x4 image: a corner output of a padded tile sums
// only 4 products, while F(4,3)'s transforms round on all 36 inputs of its tile, so its error
// relative to those 4 products' magnitudes is larger. Found by the property test (saved in
// proptest-regressions/kernels/tests.txt): 4.6e-5 with 1 channel, 18 filters, 4x4. The tower's
// 3x3 convolutions have 32 channels or more; RN50's width keeps the 2e-5 bound below.
const F4_TOLERANCE_ANY_SHAPE: f64 = 1e-4;

/// The rounding-error bound of a sum of `terms` f32 values, relative to the sum of their
/// magnitudes (Higham's γ_n with the unit roundoff 2⁻²⁴).
fn sum_error_bound(terms: usize) -> f64 {
    let nu = terms as f64 * f64::from(f32::EPSILON) / 2.0;
    nu / (1.0 - nu)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The packed GEMM on its own, against a triple loop: odd sizes, widths on both sides of
    /// the in-place / packed `A` switch (4 panels of 16), and depths past one K block (256) so
    /// the accumulation across blocks runs too.
    #[test]
    fn packed_gemm_matches_triple_loop(
        (m, n, k) in (
            1usize..32,
            prop_oneof![1usize..40, 60usize..90],
            prop_oneof![1usize..20, 250usize..600],
        ),
        (with_bias, with_residual, relu) in (any::<bool>(), any::<bool>(), any::<bool>()),
        seed in any::<u64>(),
        isa in isa_strategy(),
    ) {
        let a = random(seed, m * k);
        let b = random(seed + 1, k * n);
        let bias = random(seed + 2, n);
        let res = random(seed + 3, m * n);
        let mut c = vec![f32::NAN; m * n];
        let fused = gemm::Fused {
            bias: with_bias.then_some(&bias[..]),
            residual: with_residual.then_some(&res[..]),
            relu,
        };
        gemm::gemm(isa, m, &a, &gemm::PackedB::new(k, n, &b), &mut c, fused);
        let tolerance = sum_error_bound(k + 2);
        for i in 0..m {
            for j in 0..n {
                let terms = (0..k).map(|p| f64::from(a[i * k + p]) * f64::from(b[p * n + j]));
                let extra = [
                    with_bias.then(|| f64::from(bias[j])),
                    with_residual.then(|| f64::from(res[i * n + j])),
                ];
                let terms: Vec<f64> = terms.chain(extra.into_iter().flatten()).collect();
                let sum: f64 = terms.iter().sum();
                let want = if relu { sum.max(0.0) } else { sum };
                let mag: f64 = terms.iter().map(|t| t.abs()).sum();
                let got = f64::from(c[i * n + j]);
                prop_assert!(
                    (got - want).abs() <= tolerance * mag,
                    "c[{i}][{j}] = {got}, want {want} (magnitude {mag})"
                );
            }
        }
    }

    #[test]
    fn gemm_matches_reference(case in case_strategy(1usize..4, 1usize..3), isa in isa_strategy()) {
        let err = worst_relative_error(case, Algorithm::Gemm, isa);
        prop_assert!(err <= GEMM_TOLERANCE, "relative error {err:e}");
    }

    #[test]
    fn direct_matches_reference(case in case_strategy(1usize..4, 1usize..3), isa in isa_strategy()) {
        let err = worst_relative_error(case, Algorithm::Direct, isa);
        prop_assert!(err <= GEMM_TOLERANCE, "relative error {err:e}");
    }

    #[test]
    fn winograd_f2_matches_reference(case in case_strategy(Just(3), Just(1)), isa in isa_strategy()) {
        let err = worst_relative_error(case, Algorithm::WinogradF2, isa);
        prop_assert!(err <= F2_TOLERANCE, "relative error {err:e}");
    }

    #[test]
    fn winograd_f4_matches_reference(case in case_strategy(Just(3), Just(1)), isa in isa_strategy()) {
        let err = worst_relative_error(case, Algorithm::WinogradF4, isa);
        prop_assert!(err <= F4_TOLERANCE_ANY_SHAPE, "relative error {err:e}");
    }

    #[test]
    fn avg_pool_matches_reference(
        (n, h, w, c, k) in (1usize..3, 1usize..12, 1usize..12, 1usize..20, 1usize..4),
        seed in any::<u64>(),
    ) {
        prop_assume!(h >= k && w >= k);
        let x = random(seed, n * h * w * c);
        let (oh, ow) = (h / k, w / k);
        let mut out = vec![f32::NAN; n * oh * ow * c];
        avg_pool2d_nhwc(&x, n, h, w, c, k, &mut out).expect("valid buffers");
        for img in 0..n {
            for oy in 0..oh {
                for ox in 0..ow {
                    for ch in 0..c {
                        let mut sum = 0.0f64;
                        for y in oy * k..oy * k + k {
                            for xx in ox * k..ox * k + k {
                                sum += f64::from(x[((img * h + y) * w + xx) * c + ch]);
                            }
                        }
                        let want = sum / (k * k) as f64;
                        let got = f64::from(out[((img * oh + oy) * ow + ox) * c + ch]);
                        prop_assert!((got - want).abs() <= 1e-6, "{got} vs {want}");
                    }
                }
            }
        }
    }
}

/// The error the 3×3 paths make at RN50's widths (64 channels in, the sum of 576 products),
/// on a 56×56-like tile grid with edges.
#[test]
fn winograd_error_at_rn50_width() {
    let case = Case {
        shape: ConvShape::square(64, 64, 3, 1, 1),
        n: 1,
        h: 14,
        w: 15,
        residual: true,
        relu: false,
        seed: 7,
    };
    for (algorithm, tolerance) in [
        (Algorithm::Gemm, GEMM_TOLERANCE),
        (Algorithm::Direct, GEMM_TOLERANCE),
        (Algorithm::WinogradF2, F2_TOLERANCE),
        (Algorithm::WinogradF4, F4_TOLERANCE),
    ] {
        let err = worst_relative_error(case, algorithm, Isa::detect());
        assert!(err <= tolerance, "{algorithm:?}: relative error {err:e}");
    }
}

/// At 256 channels and more the Winograd paths multiply position by position across batches
/// (`Winograd::by_position`); this shape gives several batches of tile rows that cross images,
/// on every instruction set.
#[test]
fn winograd_by_position_matches_reference() {
    let case = Case {
        shape: ConvShape::square(320, 256, 3, 1, 1),
        n: 2,
        h: 16,
        w: 7,
        residual: true,
        relu: true,
        seed: 11,
    };
    for isa in [
        Isa::detect(),
        Isa::detect().without_avx512(),
        Isa::portable(),
    ] {
        for (algorithm, tolerance) in [
            (Algorithm::WinogradF2, F2_TOLERANCE),
            (Algorithm::WinogradF4, F4_TOLERANCE),
        ] {
            let err = worst_relative_error(case, algorithm, isa);
            assert!(
                err <= tolerance,
                "{algorithm:?} {isa:?}: relative error {err:e}"
            );
        }
    }
}

#[test]
fn auto_picks_winograd_for_3x3_stride_1_only() {
    let conv3 = ConvShape::square(4, 4, 3, 1, 1);
    let w = vec![0.0; 4 * 4 * 9];
    assert!(matches!(Conv2d::new(&w, &[0.0; 4], conv3).map(|c| c.shape()), Ok(s) if s == conv3));
    let strided = ConvShape { stride: 2, ..conv3 };
    let err = Conv2d::with_algorithm(&w, &[0.0; 4], strided, Algorithm::WinogradF4)
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some("WinogradF4 needs a 3x3 kernel with stride 1, got 3x3 stride 2; use Algorithm::Gemm")
    );
}

#[test]
fn wrong_lengths_are_named() {
    let s = ConvShape::square(2, 3, 1, 1, 0);
    let err = Conv2d::new(&[0.0; 5], &[0.0; 2], s)
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some("conv weight has 5 values, expected 6; check the tensor's shape against the layer")
    );
    let conv = Conv2d::new(&[0.0; 6], &[0.0; 2], s).expect("valid shape");
    let mut out = vec![0.0; 2 * 2 * 2];
    let err = conv
        .forward(&[0.0; 11], 1, 2, 2, None, false, &mut out)
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some("conv input has 11 values, expected 12; check the tensor's shape against the layer")
    );
}
