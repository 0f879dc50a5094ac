//! The convolution engine: weights packed once, NHWC in and out, bias/residual/ReLU fused.

use rayon::prelude::*;

use super::direct::{Direct, MAX_KERNEL};
use super::gemm::{gemm, kernel_rows, Fused, PackedB};
use super::pass::{Epilogue, Geometry};
use super::scratch::with_scratch;
use super::simd::Isa;
use super::winograd::{Winograd, F23, F43};
use super::KernelError;

/// How a [`Conv2d`] computes its output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// Pick by shape: Winograd F(4,3) for 3×3 stride-1 convolutions, a GEMM straight over
    /// the input for pointwise ones, [`Algorithm::Direct`] for the rest (the stride-2 stem:
    /// 1.5× the im2col GEMM, `examples/conv_table.rs`).
    Auto,
    /// A packed GEMM over the input itself (1×1, stride 1, no padding) or over an im2col copy
    /// built chunk by chunk in a per-thread scratch buffer (everything else).
    Gemm,
    /// A direct convolution: per output row, a GEMM over overlapping windows of the (padded)
    /// input, no im2col copy and no transforms. Any kernel up to 16×16, any stride.
    Direct,
    /// Winograd F(2×2, 3×3): 16 GEMMs per tile batch, 2.25× fewer multiplies than direct.
    /// Only for 3×3 kernels with stride 1.
    WinogradF2,
    /// Winograd F(4×4, 3×3): 36 GEMMs per tile batch, 4× fewer multiplies than direct.
    /// Only for 3×3 kernels with stride 1.
    WinogradF4,
}

/// The geometry of a convolution, in the caller's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    /// Output channels.
    pub out_c: usize,
    /// Input channels.
    pub in_c: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Stride, both directions.
    pub stride: usize,
    /// Zero padding, all four sides.
    pub padding: usize,
}

impl ConvShape {
    /// A `k`×`k` kernel (every convolution of a ResNet).
    pub fn square(out_c: usize, in_c: usize, k: usize, stride: usize, padding: usize) -> Self {
        Self {
            out_c,
            in_c,
            kh: k,
            kw: k,
            stride,
            padding,
        }
    }

    /// Output height and width for an `h`×`w` input, or `None` when the kernel does not fit.
    pub fn output_size(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        let ph = h + 2 * self.padding;
        let pw = w + 2 * self.padding;
        if ph < self.kh || pw < self.kw {
            return None;
        }
        Some((
            (ph - self.kh) / self.stride + 1,
            (pw - self.kw) / self.stride + 1,
        ))
    }

    /// Multiply-adds ×2 for a batch of `n` `h`×`w` inputs.
    pub fn flops(&self, n: usize, h: usize, w: usize) -> f64 {
        let (oh, ow) = self.output_size(h, w).unwrap_or((0, 0));
        2.0 * (n * oh * ow * self.out_c * self.in_c * self.kh * self.kw) as f64
    }

    fn is_pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == 1 && self.padding == 0
    }

    fn is_3x3_s1(&self) -> bool {
        self.kh == 3 && self.kw == 3 && self.stride == 1
    }
}

/// The packed form of the weights for the chosen algorithm.
enum Packed {
    /// `[kh][kw][in_c][out_c]` (the GEMM right-hand side, rows in im2col order), packed.
    Gemm(PackedB),
    F2(Winograd<4, 2>),
    F4(Winograd<6, 4>),
    Direct(Direct),
}

/// A 2-D convolution over NHWC f32 tensors with a fused `act(conv(x) + bias + residual)` output.
///
/// Weights are packed once in [`Conv2d::new`]; [`Conv2d::forward`] allocates nothing once the
/// per-thread scratch buffers have grown to the largest layer, and runs on the global rayon
/// pool (so it follows `RAYON_NUM_THREADS`).
pub struct Conv2d {
    shape: ConvShape,
    bias: Vec<f32>,
    packed: Packed,
    isa: Isa,
}

impl Conv2d {
    /// Packs `weight_oihw` (`[out_c][in_c][kh][kw]`, BatchNorm already folded) and `bias`
    /// (`[out_c]`) with [`Algorithm::Auto`].
    pub fn new(weight_oihw: &[f32], bias: &[f32], shape: ConvShape) -> Result<Self, KernelError> {
        Self::with_algorithm(weight_oihw, bias, shape, Algorithm::Auto)
    }

    /// Like [`Conv2d::new`], with an explicit algorithm (benchmarks and tests compare them).
    pub fn with_algorithm(
        weight_oihw: &[f32],
        bias: &[f32],
        shape: ConvShape,
        algorithm: Algorithm,
    ) -> Result<Self, KernelError> {
        let ConvShape {
            out_c,
            in_c,
            kh,
            kw,
            stride,
            ..
        } = shape;
        if out_c == 0 || in_c == 0 || kh == 0 || kw == 0 || stride == 0 {
            return Err(KernelError::Geometry(format!(
                "conv shape {shape:?} has a zero dimension; every size and the stride must be at least 1"
            )));
        }
        check_len("conv weight", out_c * in_c * kh * kw, weight_oihw.len())?;
        check_len("conv bias", out_c, bias.len())?;
        let algorithm = match algorithm {
            Algorithm::Auto if shape.is_3x3_s1() => Algorithm::WinogradF4,
            Algorithm::Auto if shape.is_pointwise() || kh > MAX_KERNEL => Algorithm::Gemm,
            Algorithm::Auto => Algorithm::Direct,
            Algorithm::WinogradF2 | Algorithm::WinogradF4 if !shape.is_3x3_s1() => {
                return Err(KernelError::Geometry(format!(
                    "{algorithm:?} needs a 3x3 kernel with stride 1, got {kh}x{kw} stride {stride}; use Algorithm::Gemm"
                )))
            }
            Algorithm::Direct if kh > MAX_KERNEL => {
                return Err(KernelError::Geometry(format!(
                    "Direct takes kernels up to {MAX_KERNEL} rows, got {kh}; use Algorithm::Gemm"
                )))
            }
            other => other,
        };
        let packed = match algorithm {
            Algorithm::WinogradF2 => Packed::F2(Winograd::new::<F23>(
                weight_oihw,
                out_c,
                in_c,
                shape.padding,
            )),
            Algorithm::WinogradF4 => Packed::F4(Winograd::new::<F43>(
                weight_oihw,
                out_c,
                in_c,
                shape.padding,
            )),
            Algorithm::Direct => Packed::Direct(Direct::new(&pack_hwio(weight_oihw, shape), shape)),
            _ => Packed::Gemm(PackedB::new(
                kh * kw * in_c,
                out_c,
                &pack_hwio(weight_oihw, shape),
            )),
        };
        Ok(Self {
            shape,
            bias: bias.to_vec(),
            packed,
            isa: Isa::detect(),
        })
    }

    /// Selects the instruction set for the hand-written parts (tests force [`Isa::portable`]).
    pub fn with_isa(mut self, isa: Isa) -> Self {
        self.isa = isa;
        self
    }

    /// The convolution's geometry.
    pub fn shape(&self) -> ConvShape {
        self.shape
    }

    /// Computes `out = act(conv(input) + bias + residual)`.
    ///
    /// `input` is NHWC `[n, h, w, in_c]`, contiguous; `out` and `residual` are NHWC
    /// `[n, oh, ow, out_c]` (see [`ConvShape::output_size`]); `relu` selects `act`.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        input: &[f32],
        n: usize,
        h: usize,
        w: usize,
        residual: Option<&[f32]>,
        relu: bool,
        out: &mut [f32],
    ) -> Result<(), KernelError> {
        let s = self.shape;
        let (oh, ow) = s.output_size(h, w).ok_or_else(|| {
            KernelError::Geometry(format!(
                "a {}x{} kernel with padding {} does not fit a {h}x{w} input; the input is too small for this layer",
                s.kh, s.kw, s.padding
            ))
        })?;
        check_len("conv input", n * h * w * s.in_c, input.len())?;
        check_len("conv output", n * oh * ow * s.out_c, out.len())?;
        if let Some(r) = residual {
            check_len("conv residual", out.len(), r.len())?;
        }
        if out.is_empty() {
            return Ok(());
        }
        let geo = Geometry { n, h, w, oh, ow };
        let epi = Epilogue {
            bias: &self.bias,
            residual,
            relu,
        };
        match &self.packed {
            Packed::Gemm(wp) => self.forward_gemm(wp, input, geo, epi, out),
            Packed::F2(wino) => wino.forward::<F23>(self.isa, input, geo, epi, out),
            Packed::F4(wino) => wino.forward::<F43>(self.isa, input, geo, epi, out),
            Packed::Direct(direct) => direct.forward(self.isa, input, geo, epi, out),
        }
        Ok(())
    }

    /// im2col (or the input itself for pointwise convs) times the packed weights, in row chunks
    /// sized to stay in L2, bias, residual and ReLU applied in the GEMM's last store.
    fn forward_gemm(
        &self,
        wp: &PackedB,
        input: &[f32],
        geo: Geometry,
        epi: Epilogue,
        out: &mut [f32],
    ) {
        let s = self.shape;
        let k = wp.k();
        let rows_total = geo.n * geo.oh * geo.ow;
        // Whole microkernel rows per chunk, so only the last chunk has an edge tile.
        let isa = self.isa;
        let rows = chunk_rows(rows_total, k + s.out_c).next_multiple_of(kernel_rows(isa));
        out.par_chunks_mut(rows * s.out_c)
            .enumerate()
            .for_each(|(ci, out_chunk)| {
                let r0 = ci * rows;
                let m = out_chunk.len() / s.out_c;
                let fused = Fused {
                    bias: Some(epi.bias),
                    residual: epi.residual.map(|r| &r[r0 * s.out_c..(r0 + m) * s.out_c]),
                    relu: epi.relu,
                };
                if s.is_pointwise() {
                    gemm(isa, m, &input[r0 * k..(r0 + m) * k], wp, out_chunk, fused);
                } else {
                    with_scratch(m * k, |col| {
                        im2col(input, s, geo, r0, col);
                        gemm(isa, m, col, wp, out_chunk, fused);
                    });
                }
            });
    }
}

fn check_len(what: &'static str, expected: usize, got: usize) -> Result<(), KernelError> {
    if expected == got {
        Ok(())
    } else {
        Err(KernelError::Length {
            what,
            expected,
            got,
        })
    }
}

/// Rows per parallel chunk: enough to keep the GEMM efficient, few enough that a chunk's
/// operands (`rows × row_floats`) stay in L2 and both cores get several chunks.
fn chunk_rows(rows_total: usize, row_floats: usize) -> usize {
    const L2_FLOATS: usize = 96 * 1024;
    let by_cache = (L2_FLOATS / row_floats.max(1)).clamp(48, 512);
    let by_threads = rows_total
        .div_ceil(4 * rayon::current_num_threads())
        .max(16);
    by_cache.min(by_threads).min(rows_total).max(1)
}

/// OIHW → `[kh][kw][in_c][out_c]`, the im2col row order.
fn pack_hwio(w: &[f32], s: ConvShape) -> Vec<f32> {
    let mut p = vec![0.0; w.len()];
    for o in 0..s.out_c {
        for i in 0..s.in_c {
            for y in 0..s.kh {
                for x in 0..s.kw {
                    p[((y * s.kw + x) * s.in_c + i) * s.out_c + o] =
                        w[((o * s.in_c + i) * s.kh + y) * s.kw + x];
                }
            }
        }
    }
    p
}

/// Fills `col` (`rows × kh·kw·in_c`) with the receptive fields of output rows `r0..`, zeros
/// where the window hangs over the padding.
fn im2col(input: &[f32], s: ConvShape, g: Geometry, r0: usize, col: &mut [f32]) {
    let c = s.in_c;
    let k = s.kh * s.kw * c;
    for (i, dst) in col.chunks_exact_mut(k).enumerate() {
        let r = r0 + i;
        let img = r / (g.oh * g.ow);
        let oy = (r / g.ow) % g.oh;
        let ox = r % g.ow;
        for ky in 0..s.kh {
            let iy = (oy * s.stride + ky).wrapping_sub(s.padding);
            for kx in 0..s.kw {
                let ix = (ox * s.stride + kx).wrapping_sub(s.padding);
                let d = &mut dst[(ky * s.kw + kx) * c..][..c];
                // `wrapping_sub` turns positions left of/above the image into huge values.
                if iy < g.h && ix < g.w {
                    d.copy_from_slice(&input[((img * g.h + iy) * g.w + ix) * c..][..c]);
                } else {
                    d.fill(0.0);
                }
            }
        }
    }
}
