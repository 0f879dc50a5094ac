//! Fully connected layers (`y = x·B + bias`, then an epilogue) on our SGEMM, for the
//! transformer parts of CLIP: the text tower and the image tower's attention pool.
//!
//! The weights are packed once at load, in column parts of [`PART`] columns, each its own
//! [`PackedB`]. A forward pass runs one task per (row chunk, column part), so both cores share
//! the work even for a 5-token prompt, where the row panels alone would give one core all of
//! it, and each core streams only its share of the weights (a text prompt's pass is bound by
//! reading them: 151 MB for RN50's text tower). A task's GEMM writes a small tile that stays
//! in L1, and the epilogue (residual add, QuickGELU, GELU) runs on it while storing it into its
//! place in the output.

use std::marker::PhantomData;

use rayon::prelude::*;

use super::gemm::{gemm_packed, kernel_rows, pack_a_once, Fused, PackedB};
use super::scratch::with_scratch;
use super::simd::Isa;
use super::vecmath::exp;

/// Columns per packed part: 8 microkernel panels, enough that the GEMM packs `A` (below 5
/// panels it reads `A` in place, at power-of-two strides), few enough that a 512-wide output
/// still splits into 4 tasks.
const PART: usize = 128;

/// Row panels per task when `m` is large (a batch of prompts): keeps a task's packed `A`
/// (`rows × 256` floats per K block) in L2.
const PANELS_PER_TASK: usize = 8;

/// What happens to `x·B + bias` on its way into the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Epilogue {
    /// `out = y`.
    Store,
    /// `out += y`: the residual add of a pre-LN transformer block, in place on the stream.
    Add,
    /// `out = y·sigmoid(1.702·y)` (open_clip's `QuickGELU`).
    QuickGelu,
    /// `out = y·Φ(y)`, the exact (erf) GELU of `nn.GELU`.
    Gelu,
}

/// A dense layer: `B` (`k×n`, right-multiplied) packed for [`gemm`] in column parts, and an
/// optional bias.
pub(crate) struct Dense {
    isa: Isa,
    k: usize,
    n: usize,
    parts: Vec<PackedB>,
    bias: Option<Vec<f32>>,
}

impl Dense {
    /// From `b` (`k×n`, row-major), the layout of a right-multiplied projection such as
    /// `text_projection`.
    pub fn new(isa: Isa, k: usize, n: usize, b: &[f32], bias: Option<Vec<f32>>) -> Self {
        assert_eq!(b.len(), k * n, "dense weight size");
        Self::build(isa, k, n, bias, |c0, w, dst| {
            for (row, dst) in dst.chunks_exact_mut(w).enumerate() {
                dst.copy_from_slice(&b[row * n + c0..][..w]);
            }
        })
    }

    /// From an `nn.Linear` weight (`out×in`, so `B` is its transpose: `k = in`, `n = out`).
    pub fn from_linear(
        isa: Isa,
        weight: &[f32],
        in_dim: usize,
        out_dim: usize,
        bias: Option<Vec<f32>>,
    ) -> Self {
        assert_eq!(weight.len(), in_dim * out_dim, "linear weight size");
        Self::build(isa, in_dim, out_dim, bias, |c0, w, dst| {
            for (col, src) in weight[c0 * in_dim..][..w * in_dim]
                .chunks_exact(in_dim)
                .enumerate()
            {
                for (row, &v) in src.iter().enumerate() {
                    dst[row * w + col] = v;
                }
            }
        })
    }

    /// Packs every part (in parallel: a text tower has 48 of these matrices); `fill(c0, w,
    /// dst)` writes columns `c0..c0 + w` of `B` into `dst` (`k×w`, row-major).
    fn build(
        isa: Isa,
        k: usize,
        n: usize,
        bias: Option<Vec<f32>>,
        fill: impl Fn(usize, usize, &mut [f32]) + Sync,
    ) -> Self {
        assert!(
            bias.as_ref().is_none_or(|b| b.len() == n),
            "dense bias size"
        );
        let parts = (0..n.div_ceil(PART))
            .into_par_iter()
            .map(|p| {
                let (c0, w) = (p * PART, PART.min(n - p * PART));
                // Scratch rather than a fresh vector per part: fresh pages are zeroed by the
                // kernel on first touch, which showed in the text tower's load time.
                with_scratch(k * w, |cols| {
                    fill(c0, w, cols);
                    PackedB::new(k, w, cols)
                })
            })
            .collect();
        Self {
            isa,
            k,
            n,
            parts,
            bias,
        }
    }

    /// Input width.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Output width.
    pub fn n(&self) -> usize {
        self.n
    }

    /// `out` (`m×n`) gets `x` (`m×k`) through the layer and `epilogue`, on all threads.
    pub fn forward(&self, m: usize, x: &[f32], out: &mut [f32], epilogue: Epilogue) {
        self.run(m, x, out, epilogue, true);
    }

    /// [`Dense::forward`] on the calling thread only, for callers that already split their
    /// work across threads (the attention pool runs one head per task).
    pub fn forward_here(&self, m: usize, x: &[f32], out: &mut [f32], epilogue: Epilogue) {
        self.run(m, x, out, epilogue, false);
    }

    /// Each row chunk's `A` packed once, then one task per (row chunk, column part): the GEMM
    /// into a scratch tile, then the epilogue on the way into the output.
    fn run(&self, m: usize, x: &[f32], out: &mut [f32], epilogue: Epilogue, parallel: bool) {
        assert!(
            x.len() == m * self.k && out.len() == m * self.n,
            "dense operand sizes: x {} for {m}×{}, out {} for {m}×{}",
            x.len(),
            self.k,
            out.len(),
            self.n
        );
        let chunk = (PANELS_PER_TASK * kernel_rows(self.isa)).min(m.max(1));
        let parts = self.parts.len();
        let n = self.n;
        let shared = SharedOut::new(out);
        let chunks = m.div_ceil(chunk);
        let pack = |c: usize| {
            let (r0, rows) = (c * chunk, chunk.min(m - c * chunk));
            let a = &x[r0 * self.k..(r0 + rows) * self.k];
            pack_a_once(self.isa, rows, a, &self.parts[0])
        };
        let packed: Vec<Vec<f32>> = if parallel && chunks > 1 {
            (0..chunks).into_par_iter().map(pack).collect()
        } else {
            (0..chunks).map(pack).collect()
        };
        let task = |t: usize| {
            let (r0, p) = (t / parts * chunk, t % parts);
            let rows = chunk.min(m - r0);
            let (c0, w) = (p * PART, PART.min(n - p * PART));
            with_scratch(rows * w, |tile| {
                let fused = Fused {
                    bias: self.bias.as_ref().map(|b| &b[c0..c0 + w]),
                    ..Fused::default()
                };
                gemm_packed(
                    self.isa,
                    rows,
                    &packed[r0 / chunk],
                    &self.parts[p],
                    tile,
                    fused,
                );
                self.isa.run(|| {
                    for (i, y) in tile.chunks_exact(w).enumerate() {
                        // SAFETY: task t alone writes rows r0..r0 + rows of part p's columns,
                        // and holds one row's slice at a time.
                        let dst = unsafe { shared.slice((r0 + i) * n + c0, w) };
                        apply(epilogue, y, dst);
                    }
                });
            });
        };
        let tasks = chunks * parts;
        if parallel {
            (0..tasks).into_par_iter().for_each(task);
        } else {
            (0..tasks).for_each(task);
        }
    }
}

/// `out = epilogue(y)` element-wise (`out += y` for [`Epilogue::Add`]).
#[inline(always)]
fn apply(epilogue: Epilogue, y: &[f32], out: &mut [f32]) {
    match epilogue {
        Epilogue::Store => out.copy_from_slice(y),
        Epilogue::Add => {
            for (o, &v) in out.iter_mut().zip(y) {
                *o += v;
            }
        }
        // x·sigmoid(1.702x) = x / (1 + e^(-1.702x)); `exp` clamps, so a very negative x gives
        // x / (1 + 1.6e38), i.e. -0, as the exact form does in f32.
        Epilogue::QuickGelu => {
            for (o, &v) in out.iter_mut().zip(y) {
                *o = v / (1.0 + exp(-1.702 * v));
            }
        }
        Epilogue::Gelu => {
            for (o, &v) in out.iter_mut().zip(y) {
                *o = 0.5
                    * v
                    * (1.0 + candle_core::cpu::erf::erf_f32(v * std::f32::consts::FRAC_1_SQRT_2));
            }
        }
    }
}

/// An output matrix shared by tasks that each write their own disjoint blocks of it.
struct SharedOut<'a> {
    ptr: *mut f32,
    len: usize,
    _out: PhantomData<&'a mut [f32]>,
}

// SAFETY: `SharedOut` hands out slices only through the unsafe `slice`, whose callers
// guarantee that concurrent slices never overlap; f32 is Send.
unsafe impl Send for SharedOut<'_> {}
// SAFETY: as above.
unsafe impl Sync for SharedOut<'_> {}

impl<'a> SharedOut<'a> {
    fn new(out: &'a mut [f32]) -> Self {
        Self {
            ptr: out.as_mut_ptr(),
            len: out.len(),
            _out: PhantomData,
        }
    }

    /// `out[start..start + len]`.
    ///
    /// # Safety
    /// No other slice obtained from this `SharedOut` that overlaps this one may be alive while
    /// this one is.
    unsafe fn slice(&self, start: usize, len: usize) -> &'a mut [f32] {
        assert!(start + len <= self.len, "shared output slice out of bounds");
        // SAFETY: in bounds (checked above) of a buffer mutably borrowed for 'a; exclusivity is
        // the caller's promise.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `x·W^T + bias` the slow way, `w` in `nn.Linear` layout.
    fn reference(m: usize, x: &[f32], w: &[f32], k: usize, n: usize, bias: &[f32]) -> Vec<f32> {
        let mut y = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                let s: f64 = (0..k)
                    .map(|p| x[i * k + p] as f64 * w[j * k + p] as f64)
                    .sum();
                y[i * n + j] = (s + bias[j] as f64) as f32;
            }
        }
        y
    }

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.5 - 1.0)
            .collect()
    }

    #[test]
    fn matches_the_definition_across_parts_row_chunks_and_epilogues() {
        // n = 300: two full parts and a 44-wide one; m = 131: several row chunks on AVX2 (48
        // rows each) and AVX-512 (112).
        let (m, k, n) = (131, 70, 300);
        let (x, w, bias) = (values(m * k, 1), values(n * k, 2), values(n, 3));
        let want = reference(m, &x, &w, k, n, &bias);
        for isa in [
            Isa::detect(),
            Isa::detect().without_avx512(),
            Isa::portable(),
        ] {
            let dense = Dense::from_linear(isa, &w, k, n, Some(bias.clone()));
            let mut wt = vec![0.0; k * n];
            for j in 0..n {
                for p in 0..k {
                    wt[p * n + j] = w[j * k + p];
                }
            }
            let same = Dense::new(isa, k, n, &wt, Some(bias.clone()));
            for layer in [&dense, &same] {
                let mut out = vec![0.0; m * n];
                layer.forward(m, &x, &mut out, Epilogue::Store);
                for (g, w) in out.iter().zip(&want) {
                    assert!((g - w).abs() < 1e-4, "{isa:?}: {g} vs {w}");
                }
                let mut acc = vec![1.0; m * n];
                layer.forward_here(m, &x, &mut acc, Epilogue::Add);
                assert!((acc[n + 5] - (want[n + 5] + 1.0)).abs() < 1e-4);
                let mut act = vec![0.0; m * n];
                layer.forward(m, &x, &mut act, Epilogue::QuickGelu);
                for (g, &y) in act.iter().zip(&want) {
                    let q = y / (1.0 + (-1.702 * y).exp());
                    assert!((g - q).abs() < 1e-4, "{g} vs {q}");
                }
            }
        }
    }

    #[test]
    fn gelu_is_the_erf_form() {
        let dense = Dense::new(Isa::detect(), 1, 3, &[1.0, -1.0, 0.0], None);
        let mut out = [0.0; 3];
        dense.forward(1, &[2.0], &mut out, Epilogue::Gelu);
        // 2·Φ(2) and -2·Φ(-2).
        assert!((out[0] - 1.954_5).abs() < 1e-5, "{}", out[0]);
        assert!((out[1] + 0.045_500_26).abs() < 1e-5, "{}", out[1]);
        assert_eq!(out[2], 0.0);
    }
}
