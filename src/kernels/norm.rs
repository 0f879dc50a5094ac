//! `nn.LayerNorm` over the rows of a row-major matrix, one pass per row.

use rayon::prelude::*;

use super::simd::Isa;
use super::vecmath::{sum, sum_sq_dev};

/// A LayerNorm's affine parameters (`weight`, `bias`, both `[width]`) and epsilon.
pub(crate) struct LayerNorm {
    weight: Vec<f32>,
    bias: Vec<f32>,
    eps: f32,
}

/// Rows per parallel task: a row of the text tower is 2 KiB, so smaller tasks would cost more
/// in scheduling than they save.
const ROWS_PER_TASK: usize = 16;

impl LayerNorm {
    /// `weight` and `bias` must have the same length, the normalised width.
    pub fn new(weight: Vec<f32>, bias: Vec<f32>, eps: f32) -> Self {
        assert_eq!(weight.len(), bias.len(), "layer norm parameter sizes");
        Self { weight, bias, eps }
    }

    /// Normalised width.
    pub fn width(&self) -> usize {
        self.weight.len()
    }

    /// `out[r] = (x[r] - mean) / sqrt(var + eps) · weight + bias` for every row of `x`, with the
    /// biased variance (as PyTorch), computed from the mean in a second pass for accuracy.
    pub fn forward(&self, isa: Isa, x: &[f32], out: &mut [f32]) {
        let width = self.width();
        assert!(
            x.len() == out.len() && x.len().is_multiple_of(width),
            "layer norm operand sizes"
        );
        out.par_chunks_mut(ROWS_PER_TASK * width)
            .zip(x.par_chunks(ROWS_PER_TASK * width))
            .for_each(|(out, x)| {
                isa.run(|| {
                    for (o, x) in out.chunks_exact_mut(width).zip(x.chunks_exact(width)) {
                        self.row(x, o);
                    }
                })
            });
    }

    #[inline(always)]
    fn row(&self, x: &[f32], out: &mut [f32]) {
        let n = x.len() as f32;
        let mean = sum(x) / n;
        let inv = 1.0 / (sum_sq_dev(x, mean) / n + self.eps).sqrt();
        for (((o, &v), &g), &b) in out.iter_mut().zip(x).zip(&self.weight).zip(&self.bias) {
            *o = (v - mean) * inv * g + b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_each_row_then_applies_the_affine_parameters() {
        // Row 0: 1..=4, mean 2.5, variance 1.25; row 1: constant, variance 0.
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 5.0, 5.0, 5.0];
        let ln = LayerNorm::new(vec![1.0, 2.0, 1.0, 1.0], vec![0.0, 0.0, 0.0, 0.5], 1e-5);
        for isa in [Isa::detect(), Isa::portable()] {
            let mut out = [0.0; 8];
            ln.forward(isa, &x, &mut out);
            let inv = 1.0 / (1.25f32 + 1e-5).sqrt();
            let want = [-1.5 * inv, -0.5 * inv * 2.0, 0.5 * inv, 1.5 * inv + 0.5];
            for (g, w) in out[..4].iter().zip(want) {
                assert!((g - w).abs() < 1e-6, "{g} vs {w}");
            }
            assert_eq!(out[4..], [0.0, 0.0, 0.0, 0.5]);
        }
    }
}
