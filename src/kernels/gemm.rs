//! Our SGEMM: `C = act(A · B + bias + residual)` with `B` packed once.
//!
//! The classic register-blocked design (Goto / BLIS): `B` (`k×n`, the weights) is packed at
//! load time into K blocks of at most [`KC`] rows, each cut into [`NR`]-wide column panels
//! stored contiguously, so one `kc×NR` panel (16 KiB) stays in L1 while an `MR×NR` microkernel
//! sweeps the rows of `A` (read in place, row-major) out of L2. The AVX2 + FMA microkernel
//! keeps the `6×16` tile of `C` in 12 ymm registers: per step of `k` it loads two vectors of
//! `B`, broadcasts six values of `A` and issues 12 FMAs. The last K block adds bias and
//! residual and applies ReLU before its store, so `C` is written once per K block and the
//! finished value is written straight from registers.
//!
//! Callers split `C` into row chunks across threads; [`gemm`] itself is single-threaded.

use super::simd::Isa;

/// Rows of `C` per microkernel call.
pub(crate) const MR: usize = 6;
/// Columns of `C` per microkernel call (two 8-lane vectors).
pub(crate) const NR: usize = 16;
/// The largest K block: a `KC×NR` panel of `B` is 16 KiB, a third of L1.
const KC: usize = 256;

/// A `k×n` right-hand side packed into `NR`-wide panels per K block, zero-padded on the right.
pub(crate) struct PackedB {
    k: usize,
    n: usize,
    /// K block height (the last block may be shorter).
    kc: usize,
    data: Vec<f32>,
    /// Index of the first 64-byte aligned float in `data`, where the panels start.
    start: usize,
}

impl PackedB {
    /// Packs row-major `b` (`k×n`).
    pub fn new(k: usize, n: usize, b: &[f32]) -> Self {
        assert_eq!(b.len(), k * n, "packed matrix size");
        // Equal K blocks: 576 = 3 × 192 rather than 256 + 256 + 64.
        let kc = k.div_ceil(k.div_ceil(KC).max(1)).max(1);
        let panels = n.div_ceil(NR);
        let len = k * panels * NR;
        // 16 spare floats let the panels start on a cache line whatever malloc returned.
        let mut data = vec![0.0f32; len + 16];
        let start = data.as_ptr().align_offset(64).min(16);
        let mut packed = Self {
            k,
            n,
            kc,
            data: Vec::new(),
            start,
        };
        for k0 in (0..k).step_by(kc) {
            let kb = kc.min(k - k0);
            for j in 0..panels {
                let cols = NR.min(n - j * NR);
                let at = start + packed.panel_offset(k0, kb, j);
                for (kk, dst) in data[at..at + kb * NR].chunks_exact_mut(NR).enumerate() {
                    dst[..cols].copy_from_slice(&b[(k0 + kk) * n + j * NR..][..cols]);
                }
            }
        }
        packed.data = data;
        packed
    }

    /// Rows of the packed matrix (the GEMM's `k`).
    pub fn k(&self) -> usize {
        self.k
    }

    fn panel_offset(&self, k0: usize, kb: usize, j: usize) -> usize {
        k0 * self.n.div_ceil(NR) * NR + j * kb * NR
    }

    /// The `kb×NR` panel of column block `j` in the K block starting at row `k0`.
    fn panel(&self, k0: usize, kb: usize, j: usize) -> &[f32] {
        &self.data[self.start + self.panel_offset(k0, kb, j)..][..kb * NR]
    }
}

/// What the last K block adds before the store.
#[derive(Clone, Copy, Default)]
pub(crate) struct Fused<'a> {
    /// `[n]`, added to every row.
    pub bias: Option<&'a [f32]>,
    /// Same layout as `C` (`m×n`).
    pub residual: Option<&'a [f32]>,
    pub relu: bool,
}

/// `c[m×n] = act(a[m×k] · b + bias + residual)`, all row-major and contiguous, on this thread.
pub(crate) fn gemm(isa: Isa, m: usize, a: &[f32], b: &PackedB, c: &mut [f32], fused: Fused) {
    let (k, n) = (b.k, b.n);
    assert!(a.len() >= m * k && c.len() >= m * n, "gemm operand sizes");
    assert!(fused.bias.is_none_or(|v| v.len() >= n), "gemm bias size");
    assert!(
        fused.residual.is_none_or(|v| v.len() >= m * n),
        "gemm residual size"
    );
    for k0 in (0..k).step_by(b.kc) {
        let kb = b.kc.min(k - k0);
        let last = k0 + kb == k;
        for j in 0..n.div_ceil(NR) {
            let j0 = j * NR;
            let panel = b.panel(k0, kb, j);
            for i in (0..m).step_by(MR) {
                let tile = Tile {
                    a: &a[i * k + k0..],
                    lda: k,
                    b: panel,
                    kb,
                    rows: MR.min(m - i),
                    cols: NR.min(n - j0),
                    first: k0 == 0,
                    bias: fused.bias.filter(|_| last).map(|v| &v[j0..]),
                    residual: fused.residual.filter(|_| last).map(|v| &v[i * n + j0..]),
                    relu: fused.relu && last,
                };
                let c = &mut c[i * n + j0..];
                #[cfg(target_arch = "x86_64")]
                if isa.is_avx2_fma() {
                    // SAFETY: `is_avx2_fma` is only true when `Isa::detect` saw AVX2 and FMA on
                    // this CPU; the kernel checks the tile's bounds itself.
                    unsafe { avx2::kernel(&tile, c, n) };
                    continue;
                }
                let _ = isa;
                portable_kernel(&tile, c, n);
            }
        }
    }
}

/// One microkernel call: rows `0..rows` of `C`'s tile get `a · b` over one K block.
struct Tile<'a> {
    /// Row 0 of the tile, starting at the K block's first column; row `r` at `r * lda`.
    a: &'a [f32],
    lda: usize,
    /// The `kb×NR` panel.
    b: &'a [f32],
    kb: usize,
    rows: usize,
    cols: usize,
    /// Whether this is the first K block (`C` holds nothing yet) or later (accumulate).
    first: bool,
    /// From column `j0` on; only for the last K block, as are `residual` and `relu`.
    bias: Option<&'a [f32]>,
    /// From the tile's origin, with `C`'s stride.
    residual: Option<&'a [f32]>,
    relu: bool,
}

impl Tile<'_> {
    /// Panics unless every element the kernels touch is in bounds, for `C` of stride `ldc`.
    fn check(&self, c_len: usize, ldc: usize) {
        let c_end = (self.rows - 1) * ldc + self.cols;
        assert!(
            (1..=MR).contains(&self.rows)
                && (1..=NR).contains(&self.cols)
                && self.a.len() >= (self.rows - 1) * self.lda + self.kb
                && self.b.len() >= self.kb * NR
                && c_len >= c_end
                && self.bias.is_none_or(|v| v.len() >= self.cols)
                && self.residual.is_none_or(|v| v.len() >= c_end),
            "gemm tile out of bounds"
        );
    }
}

/// Adds the accumulated tile to `C` (unless first), applies the fused epilogue, stores the
/// valid `rows×cols` part. Used by the portable kernel and for the AVX2 kernel's edge tiles.
fn store_tile(acc: &[[f32; NR]; MR], t: &Tile, c: &mut [f32], ldc: usize) {
    for (r, row) in acc.iter().enumerate().take(t.rows) {
        for (col, &v) in row.iter().enumerate().take(t.cols) {
            let at = r * ldc + col;
            let mut v = if t.first { v } else { v + c[at] };
            if let Some(bias) = t.bias {
                v += bias[col];
            }
            if let Some(res) = t.residual {
                v += res[at];
            }
            c[at] = if t.relu { v.max(0.0) } else { v };
        }
    }
}

/// The same blocking in plain Rust, for CPUs without AVX2 + FMA.
fn portable_kernel(t: &Tile, c: &mut [f32], ldc: usize) {
    t.check(c.len(), ldc);
    let mut acc = [[0.0f32; NR]; MR];
    for p in 0..t.kb {
        let b = &t.b[p * NR..][..NR];
        for (r, row) in acc.iter_mut().enumerate().take(t.rows) {
            let a = t.a[r * t.lda + p];
            for (x, &bv) in row.iter_mut().zip(b) {
                *x += a * bv;
            }
        }
    }
    store_tile(&acc, t, c, ldc);
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{store_tile, Tile, MR, NR};

    /// The 6×16 AVX2 + FMA microkernel.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA. Bounds are checked here (`Tile::check`).
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn kernel(t: &Tile, c: &mut [f32], ldc: usize) {
        t.check(c.len(), ldc);
        // Rows past the tile's last re-read that last row, so the loop is always 6 rows wide
        // and reads only memory of `a`; their sums are never stored.
        let a: [*const f32; MR] =
            std::array::from_fn(|r| t.a[r.min(t.rows - 1) * t.lda..].as_ptr());
        let b = t.b.as_ptr();
        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
        for p in 0..t.kb {
            // SAFETY: `check` guarantees `b` holds `kb × NR` floats and each row of `a` at
            // least `kb` from its pointer, so offsets `p * NR .. p * NR + 16` and `p` with
            // `p < kb` are in bounds; unaligned loads need no alignment.
            unsafe {
                let b0 = _mm256_loadu_ps(b.add(p * NR));
                let b1 = _mm256_loadu_ps(b.add(p * NR + 8));
                for (row, &ar) in acc.iter_mut().zip(&a) {
                    let av = _mm256_broadcast_ss(&*ar.add(p));
                    row[0] = _mm256_fmadd_ps(av, b0, row[0]);
                    row[1] = _mm256_fmadd_ps(av, b1, row[1]);
                }
            }
        }
        if t.rows < MR || t.cols < NR {
            // SAFETY: `[[__m256; 2]; 6]` and `[[f32; 16]; 6]` have the same size and every bit
            // pattern is a valid f32.
            let acc: [[f32; NR]; MR] = unsafe { std::mem::transmute(acc) };
            store_tile(&acc, t, c, ldc);
            return;
        }
        let cp = c.as_mut_ptr();
        let zero = _mm256_setzero_ps();
        for (r, row) in acc.iter().enumerate() {
            for (h, &v) in row.iter().enumerate() {
                let at = r * ldc + h * 8;
                // SAFETY: a full tile: `check` guarantees `c` and `residual` hold
                // `(MR - 1) * ldc + NR` floats and `bias` `NR`, so `at .. at + 8` (with
                // `at <= (MR - 1) * ldc + 8`) and `h * 8 .. h * 8 + 8` are in bounds.
                unsafe {
                    let mut v = v;
                    if !t.first {
                        v = _mm256_add_ps(v, _mm256_loadu_ps(cp.add(at)));
                    }
                    if let Some(bias) = t.bias {
                        v = _mm256_add_ps(v, _mm256_loadu_ps(bias.as_ptr().add(h * 8)));
                    }
                    if let Some(res) = t.residual {
                        v = _mm256_add_ps(v, _mm256_loadu_ps(res.as_ptr().add(at)));
                    }
                    if t.relu {
                        v = _mm256_max_ps(v, zero);
                    }
                    _mm256_storeu_ps(cp.add(at), v);
                }
            }
        }
    }
}
