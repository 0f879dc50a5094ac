//! Fused scaled-dot-product attention: per query and head one pass of scores, softmax and the
//! weighted sum of values, with no score matrix or mask tensor materialised. The causal mask is
//! the loop bound (keys up to the query's own position).

use rayon::prelude::*;

use super::scratch::with_scratch;
use super::simd::Isa;
use super::vecmath::{axpy, dot, exp_in_place, sum};

/// Query rows per parallel task. The causal rows grow in cost with their position, so tasks are
/// kept small for the two threads to balance.
const ROWS_PER_TASK: usize = 4;

/// `out = Σⱼ softmax(q·keyⱼ)ⱼ · valueⱼ` over `j < count`, `scores` (at least `count` floats) as
/// scratch. `q` carries the `1/√d` scale already.
#[inline(always)]
pub(crate) fn attend<'a>(
    q: &[f32],
    count: usize,
    key: impl Fn(usize) -> &'a [f32],
    value: impl Fn(usize) -> &'a [f32],
    scores: &mut [f32],
    out: &mut [f32],
) {
    let scores = &mut scores[..count];
    let mut max = f32::NEG_INFINITY;
    for (j, s) in scores.iter_mut().enumerate() {
        *s = dot(q, key(j));
        max = max.max(*s);
    }
    for s in scores.iter_mut() {
        *s -= max;
    }
    exp_in_place(scores);
    out.fill(0.0);
    for (j, &p) in scores.iter().enumerate() {
        axpy(out, p, value(j));
    }
    // Normalising the sum instead of the weights: `width` divisions' worth of multiplies
    // instead of `count`, and the same value.
    let inv = 1.0 / sum(scores);
    for o in out.iter_mut() {
        *o *= inv;
    }
}

/// Causal multi-head self-attention of sequences padded to `len` positions.
///
/// `qkv` holds one row per position, `[q | k | v]`, each `width` wide with the heads side by
/// side (`nn.MultiheadAttention`'s packed projection) and `q` already scaled by `1/√d`; row `r`
/// belongs to sequence `r / len`. `out` gets one `width`-wide row per entry of `queries` (row
/// indices into `qkv`), each attending to its sequence's positions up to its own.
pub(crate) fn causal_self_attention(
    isa: Isa,
    qkv: &[f32],
    len: usize,
    heads: usize,
    queries: &[usize],
    out: &mut [f32],
) {
    let width = out.len() / queries.len().max(1);
    let d = width / heads.max(1);
    assert!(
        heads * d == width
            && out.len() == queries.len() * width
            && qkv.len().is_multiple_of(3 * width)
            && queries.iter().all(|&r| r < qkv.len() / (3 * width)),
        "attention operand sizes"
    );
    let row = |r: usize| &qkv[r * 3 * width..][..3 * width];
    out.par_chunks_mut(ROWS_PER_TASK * width)
        .zip(queries.par_chunks(ROWS_PER_TASK))
        .for_each(|(out, queries)| {
            with_scratch(len, |scores| {
                isa.run(|| {
                    for (out, &r) in out.chunks_exact_mut(width).zip(queries) {
                        let start = r - r % len;
                        for (h, out) in out.chunks_exact_mut(d).enumerate() {
                            let q = &row(r)[h * d..][..d];
                            attend(
                                q,
                                r - start + 1,
                                |j| &row(start + j)[width + h * d..][..d],
                                |j| &row(start + j)[2 * width + h * d..][..d],
                                scores,
                                out,
                            );
                        }
                    }
                })
            })
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Softmax attention the slow way, in f64, with an explicit mask.
    fn reference(qkv: &[f32], len: usize, width: usize, heads: usize, r: usize) -> Vec<f32> {
        let d = width / heads;
        let start = r - r % len;
        let mut out = vec![0.0; width];
        for h in 0..heads {
            let at = |row: usize, part: usize, e: usize| {
                qkv[row * 3 * width + part * width + h * d + e] as f64
            };
            let scores: Vec<f64> = (start..start + len)
                .map(|j| {
                    if j > r {
                        f64::NEG_INFINITY
                    } else {
                        (0..d).map(|e| at(r, 0, e) * at(j, 1, e)).sum()
                    }
                })
                .collect();
            let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
            let total: f64 = weights.iter().sum();
            for e in 0..d {
                let v: f64 = (0..len).map(|j| weights[j] * at(start + j, 2, e)).sum();
                out[h * d + e] = (v / total) as f32;
            }
        }
        out
    }

    #[test]
    fn matches_masked_softmax_attention_for_every_and_for_chosen_queries() {
        // Two sequences of 9 positions, width 24 in 2 heads of 12 (not a multiple of 8).
        let (len, width, heads) = (9, 24, 2);
        let qkv: Vec<f32> = (0..2 * len * 3 * width)
            .map(|i| ((i * 7919) % 211) as f32 / 70.0 - 1.5)
            .collect();
        for isa in [Isa::detect(), Isa::portable()] {
            let all: Vec<usize> = (0..2 * len).collect();
            let mut out = vec![0.0; all.len() * width];
            causal_self_attention(isa, &qkv, len, heads, &all, &mut out);
            for &r in &all {
                let want = reference(&qkv, len, width, heads, r);
                for (g, w) in out[r * width..][..width].iter().zip(&want) {
                    assert!((g - w).abs() < 1e-5, "row {r}: {g} vs {w}");
                }
            }
            // Position 0 sees only itself: its output is its own value row.
            assert_eq!(out[..width], qkv[2 * width..3 * width]);
            let chosen = [13, 4];
            let mut some = vec![0.0; 2 * width];
            causal_self_attention(isa, &qkv, len, heads, &chosen, &mut some);
            assert_eq!(some[..width], out[13 * width..14 * width]);
            assert_eq!(some[width..], out[4 * width..5 * width]);
        }
    }
}
