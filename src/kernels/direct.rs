//! Direct convolution without an im2col copy: for small channel counts, where Winograd's
//! transforms cost more than the multiplies they save.
//!
//! With NHWC activations, the receptive fields of consecutive output pixels along a row overlap
//! in memory: for filter row `ky`, output pixel `ox` reads the `kw · in_c` contiguous floats
//! of input row `oy·stride + ky` starting at pixel `ox·stride`. So one output row is a GEMM
//! whose `A` is a set of overlapping windows into the input ([`gemm_windows`]): one K block
//! per filter row, rows `stride · in_c` floats apart. A band of output rows first copies its
//! input rows into a zero-padded scratch buffer (an L2-sized copy that stays hot for the
//! GEMMs), so the windows never need bounds logic.

use rayon::prelude::*;

use super::conv::ConvShape;
use super::gemm::{gemm_windows, Fused, PackedB};
use super::pass::{Epilogue, Geometry};
use super::scratch::with_scratch;
use super::simd::Isa;

/// Weights packed for [`gemm_windows`]: the im2col order `[kh][kw][in_c][out_c]`, one K block
/// per filter row.
pub(crate) struct Direct {
    w: PackedB,
    shape: ConvShape,
}

/// The tallest kernel [`Direct`] takes: the K blocks' starts live in a fixed array.
pub(crate) const MAX_KERNEL: usize = 16;

/// Output rows per parallel task: a band's padded input rows stay in L2.
const BAND_ROWS: usize = 4;

impl Direct {
    /// Packs `hwio` (`[kh][kw][in_c][out_c]`).
    pub fn new(hwio: &[f32], shape: ConvShape) -> Self {
        let ConvShape {
            out_c,
            in_c,
            kh,
            kw,
            ..
        } = shape;
        Self {
            w: PackedB::with_block(kh * kw * in_c, out_c, hwio, kw * in_c),
            shape,
        }
    }

    /// Runs the convolution; shapes were checked by the caller.
    pub fn forward(&self, isa: Isa, input: &[f32], g: Geometry, epi: Epilogue, out: &mut [f32]) {
        let s = self.shape;
        let row_len = g.ow * s.out_c;
        // One task per band of rows of one image, so a band never straddles two images.
        out.par_chunks_mut(g.oh * row_len)
            .enumerate()
            .flat_map(|(img, o)| {
                o.par_chunks_mut(BAND_ROWS * row_len)
                    .enumerate()
                    .map(move |(b, band)| (img, b, band))
            })
            .for_each(|(img, b, band)| self.band(isa, input, g, epi, img, b * BAND_ROWS, band));
    }

    /// Output rows `oy0..` of image `img` (as many as `out` holds).
    #[allow(clippy::too_many_arguments)]
    fn band(
        &self,
        isa: Isa,
        input: &[f32],
        g: Geometry,
        epi: Epilogue,
        img: usize,
        oy0: usize,
        out: &mut [f32],
    ) {
        let s = self.shape;
        let (c, p) = (s.in_c, s.padding);
        let row_len = g.ow * s.out_c;
        let rows = out.len() / row_len;
        // Padded input rows `iy0 - p..` cover every window of output rows `oy0..oy0 + rows`;
        // columns as many as the last output pixel's window reaches.
        let pw = (g.ow - 1) * s.stride + s.kw;
        let prow = pw * c;
        let prows = (rows - 1) * s.stride + s.kh;
        with_scratch(prows * prow, |pad| {
            for (py, dst) in pad.chunks_exact_mut(prow).enumerate() {
                // `wrapping_sub` turns rows above the image into huge values, caught below.
                let iy = (oy0 * s.stride + py).wrapping_sub(p);
                dst.fill(0.0);
                if iy < g.h {
                    // Pixels `0..w` land at padded columns `p..p + w`, cut to the padded width.
                    let cols = g.w.min(pw.saturating_sub(p));
                    dst[p * c..(p + cols) * c]
                        .copy_from_slice(&input[((img * g.h + iy) * g.w) * c..][..cols * c]);
                }
            }
            let mut starts = [0usize; MAX_KERNEL];
            let starts = &mut starts[..s.kh];
            for (r, o) in out.chunks_exact_mut(row_len).enumerate() {
                for (ky, st) in starts.iter_mut().enumerate() {
                    *st = (r * s.stride + ky) * prow;
                }
                let at = ((img * g.oh) + oy0 + r) * row_len;
                let fused = Fused {
                    bias: Some(epi.bias),
                    residual: epi.residual.map(|res| &res[at..at + row_len]),
                    relu: epi.relu,
                };
                gemm_windows(isa, g.ow, pad, s.stride * c, starts, &self.w, o, fused);
            }
        });
    }
}
