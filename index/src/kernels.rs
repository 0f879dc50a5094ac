//! Distance kernels: the dot products every search scores with (f32·f32, f32·f16 for the
//! segment walk, f32 against stored little-endian bytes), with the widest SIMD the CPU has,
//! and the clamped distance the graphs are built on.

/// Dot product, with the widest SIMD the CPU has (detected at run time: release builds target
/// baseline x86-64, where the portable loop gets only SSE2).
///
/// The paths sum in different orders, so their results differ in the last bits; one process
/// always takes the same path, so rankings are self-consistent.
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot of vectors of different lengths");
    dot_on(DotIsa::best(), a, b)
}

/// [`dot`] on a given instruction set (tests run every supported one).
fn dot_on(isa: DotIsa, a: &[f32], b: &[f32]) -> f32 {
    match isa {
        // SAFETY (both): `DotIsa::best` and the tests only pick an instruction set this CPU
        // supports; `b` holds `a.len()` floats (asserted by the callers).
        #[cfg(target_arch = "x86_64")]
        DotIsa::Avx512 => unsafe { dot_avx512(a, b.as_ptr()) },
        #[cfg(target_arch = "x86_64")]
        DotIsa::Avx2Fma => unsafe { dot_avx2_fma(a, b.as_ptr()) },
        DotIsa::Portable => dot_portable(a, b),
    }
}

/// The instruction sets the dot product has a kernel for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DotIsa {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl DotIsa {
    fn best() -> DotIsa {
        static BEST: std::sync::OnceLock<DotIsa> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| {
            DotIsa::supported()
                .into_iter()
                .last()
                .unwrap_or(DotIsa::Portable)
        })
    }

    /// Every instruction set this CPU runs, narrowest first.
    fn supported() -> Vec<DotIsa> {
        #[allow(unused_mut)]
        let mut isas = vec![DotIsa::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            // F16C (half-precision conversion) came with the same CPUs as AVX2; `dot_f16`
            // needs it.
            if is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c")
            {
                isas.push(DotIsa::Avx2Fma);
            }
            if is_x86_feature_detected!("avx512f") {
                isas.push(DotIsa::Avx512);
            }
        }
        isas
    }
}

/// Eight independent accumulators, so the compiler can vectorise without reassociating.
fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Four 8-lane FMA chains (32 floats per step) hide the FMA latency. `b` is read unaligned,
/// so it may point into a byte buffer (the store's little-endian vectors).
///
/// # Safety
/// The CPU must support AVX2 and FMA, and `b` must be valid for reading `a.len()` f32s.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2_fma(a: &[f32], b: *const f32) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len();
    let pa = a.as_ptr();
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    // SAFETY (all loads): `i + 32 <= n` and `i + 8 <= n` keep every 8-float unaligned load
    // inside `a` and inside the `n` floats the caller vouches for at `b`.
    while i + 32 <= n {
        for (j, acc) in acc.iter_mut().enumerate() {
            let x = _mm256_loadu_ps(pa.add(i + 8 * j));
            let y = _mm256_loadu_ps(b.add(i + 8 * j));
            *acc = _mm256_fmadd_ps(x, y, *acc);
        }
        i += 32;
    }
    while i + 8 <= n {
        acc[0] = _mm256_fmadd_ps(
            _mm256_loadu_ps(pa.add(i)),
            _mm256_loadu_ps(b.add(i)),
            acc[0],
        );
        i += 8;
    }
    let mut total = sum_lanes_256(acc);
    while i < n {
        total += *pa.add(i) * b.add(i).read_unaligned();
        i += 1;
    }
    total
}

/// Four 16-lane FMA chains (64 floats per step); `b` is read unaligned, as in
/// [`dot_avx2_fma`].
///
/// # Safety
/// The CPU must support AVX-512F, and `b` must be valid for reading `a.len()` f32s.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dot_avx512(a: &[f32], b: *const f32) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len();
    let pa = a.as_ptr();
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    // SAFETY (all loads): `i + 64 <= n` and `i + 16 <= n` keep every 16-float unaligned load
    // inside `a` and inside the `n` floats the caller vouches for at `b`.
    while i + 64 <= n {
        for (j, acc) in acc.iter_mut().enumerate() {
            let x = _mm512_loadu_ps(pa.add(i + 16 * j));
            let y = _mm512_loadu_ps(b.add(i + 16 * j));
            *acc = _mm512_fmadd_ps(x, y, *acc);
        }
        i += 64;
    }
    while i + 16 <= n {
        acc[0] = _mm512_fmadd_ps(
            _mm512_loadu_ps(pa.add(i)),
            _mm512_loadu_ps(b.add(i)),
            acc[0],
        );
        i += 16;
    }
    let mut total = sum_lanes_512(acc);
    while i < n {
        total += *pa.add(i) * b.add(i).read_unaligned();
        i += 1;
    }
    total
}

/// Dot product of `a` with `b` stored as IEEE half floats (their bits), each widened to f32;
/// the kernels mirror [`dot`]'s.
pub(crate) fn dot_f16(a: &[f32], b: &[u16]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot of vectors of different lengths");
    dot_f16_on(DotIsa::best(), a, b)
}

fn dot_f16_on(isa: DotIsa, a: &[f32], b: &[u16]) -> f32 {
    match isa {
        // SAFETY (both): as in `dot_on`; `b` holds `a.len()` halves.
        #[cfg(target_arch = "x86_64")]
        DotIsa::Avx512 => unsafe { dot_f16_avx512(a, b.as_ptr()) },
        #[cfg(target_arch = "x86_64")]
        DotIsa::Avx2Fma => unsafe { dot_f16_avx2(a, b.as_ptr()) },
        DotIsa::Portable => a
            .iter()
            .zip(b)
            .map(|(x, &h)| x * half::f16::from_bits(h).to_f32())
            .sum(),
    }
}

/// # Safety
/// The CPU must support AVX-512F, and `b` must be valid for reading `a.len()` u16s.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dot_f16_avx512(a: &[f32], b: *const u16) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len();
    let pa = a.as_ptr();
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    // SAFETY (all loads): `i + 64 <= n` keeps every 16-value unaligned load inside `a` and
    // inside the `n` halves the caller vouches for at `b`; the rest is read one by one.
    while i + 64 <= n {
        for (j, acc) in acc.iter_mut().enumerate() {
            let x = _mm512_loadu_ps(pa.add(i + 16 * j));
            let y = _mm512_cvtph_ps(_mm256_loadu_si256(b.add(i + 16 * j).cast()));
            *acc = _mm512_fmadd_ps(x, y, *acc);
        }
        i += 64;
    }
    let mut total = sum_lanes_512(acc);
    while i < n {
        total += *pa.add(i) * half::f16::from_bits(b.add(i).read_unaligned()).to_f32();
        i += 1;
    }
    total
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C, and `b` must be valid for reading `a.len()` u16s.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_f16_avx2(a: &[f32], b: *const u16) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len();
    let pa = a.as_ptr();
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    // SAFETY (all loads): `i + 32 <= n` keeps every 8-value unaligned load inside `a` and
    // inside the `n` halves the caller vouches for at `b`; the rest is read one by one.
    while i + 32 <= n {
        for (j, acc) in acc.iter_mut().enumerate() {
            let x = _mm256_loadu_ps(pa.add(i + 8 * j));
            let y = _mm256_cvtph_ps(_mm_loadu_si128(b.add(i + 8 * j).cast()));
            *acc = _mm256_fmadd_ps(x, y, *acc);
        }
        i += 32;
    }
    let mut total = sum_lanes_256(acc);
    while i < n {
        total += *pa.add(i) * half::f16::from_bits(b.add(i).read_unaligned()).to_f32();
        i += 1;
    }
    total
}

/// The sum of every lane of four accumulators, for the AVX2 kernels.
///
/// # Safety
/// The CPU must support AVX.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
#[inline]
unsafe fn sum_lanes_256(acc: [std::arch::x86_64::__m256; 4]) -> f32 {
    use std::arch::x86_64::*;
    let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let half = _mm_add_ps(_mm256_castps256_ps128(sum), _mm256_extractf128_ps(sum, 1));
    let quad = _mm_add_ps(half, _mm_movehl_ps(half, half));
    _mm_cvtss_f32(_mm_add_ss(quad, _mm_shuffle_ps(quad, quad, 1)))
}

/// The sum of every lane of four accumulators, for the AVX-512 kernels.
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn sum_lanes_512(acc: [std::arch::x86_64::__m512; 4]) -> f32 {
    use std::arch::x86_64::*;
    _mm512_reduce_add_ps(_mm512_add_ps(
        _mm512_add_ps(acc[0], acc[1]),
        _mm512_add_ps(acc[2], acc[3]),
    ))
}

/// `1 - a·b`, clamped at 0: the distance of every graph (see
/// [`ClampedDot`](crate::ClampedDot)).
pub(crate) fn clamped_distance(a: &[f32], b: &[f32]) -> f32 {
    // `f32::max` also maps a NaN to 0, so a degenerate vector cannot break the heap order.
    (1.0 - dot(a, b)).max(0.0)
}

/// Dot product of `query` with a vector stored as little-endian f32 bytes.
pub(crate) fn dot_le(query: &[f32], bytes: &[u8]) -> f32 {
    assert_eq!(
        bytes.len(),
        query.len() * 4,
        "stored vector of the wrong length"
    );
    dot_le_on(DotIsa::best(), query, bytes)
}

fn dot_le_on(isa: DotIsa, query: &[f32], bytes: &[u8]) -> f32 {
    match isa {
        // SAFETY (both): a supported instruction set (see `dot_on`); x86-64 is little-endian,
        // so the bytes are `query.len()` native f32s, which the kernels read unaligned.
        #[cfg(target_arch = "x86_64")]
        DotIsa::Avx512 => return unsafe { dot_avx512(query, bytes.as_ptr().cast()) },
        #[cfg(target_arch = "x86_64")]
        DotIsa::Avx2Fma => return unsafe { dot_avx2_fma(query, bytes.as_ptr().cast()) },
        DotIsa::Portable => {}
    }
    let mut v = [0.0f32; 64];
    let mut total = 0.0;
    for (q, b) in query.chunks(64).zip(bytes.chunks(256)) {
        for (dst, src) in v.iter_mut().zip(b.chunks_exact(4)) {
            *dst = f32::from_le_bytes([src[0], src[1], src[2], src[3]]);
        }
        total += dot_portable(q, &v[..q.len()]);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_naive_sum_on_every_path_and_length() {
        let isas = DotIsa::supported();
        assert!(isas.contains(&DotIsa::best()));
        // Lengths around the 8-, 16-, 32- and 64-float steps and their tails.
        for n in [
            0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 37, 63, 64, 65, 1024, 1029,
        ] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let naive: f64 = a.iter().zip(&b).map(|(&x, &y)| x as f64 * y as f64).sum();
            let close = |got: f32| (got as f64 - naive).abs() <= 1e-5 * (1.0 + naive.abs());
            let bytes: Vec<u8> = b.iter().flat_map(|x| x.to_le_bytes()).collect();
            // An odd offset makes the byte view unaligned for f32.
            let shifted = [&[0u8][..], &bytes].concat();
            for &isa in &isas {
                assert!(close(dot_on(isa, &a, &b)), "{isa:?} n={n}");
                assert!(
                    close(dot_le_on(isa, &a, &bytes)),
                    "{isa:?} n={n}: from bytes"
                );
                assert_eq!(
                    dot_le_on(isa, &a, &shifted[1..]),
                    dot_le_on(isa, &a, &bytes),
                    "{isa:?} n={n}: unaligned"
                );
                // Against the same sum over the halves themselves, so only the kernel's
                // arithmetic is tested, not the rounding to half precision.
                let halves: Vec<u16> = b
                    .iter()
                    .map(|&x| half::f16::from_f32(x).to_bits())
                    .collect();
                let naive_half: f64 = a
                    .iter()
                    .zip(&halves)
                    .map(|(&x, &h)| x as f64 * half::f16::from_bits(h).to_f64())
                    .sum();
                let got = dot_f16_on(isa, &a, &halves) as f64;
                assert!(
                    (got - naive_half).abs() <= 1e-5 * (1.0 + naive_half.abs()),
                    "{isa:?} n={n}: halves"
                );
            }
        }
    }
}
