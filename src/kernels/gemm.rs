//! Our SGEMM: `C = act(A · B + bias + residual)` with `B` packed once.
//!
//! The classic register-blocked design (Goto / BLIS): `B` (`k×n`, the weights) is packed at
//! load time into K blocks of at most [`KC`] rows, each cut into [`NR`]-wide column panels
//! stored contiguously, so one `kc×NR` panel (16 KiB) stays in L1 while an `MR×NR` microkernel
//! sweeps `A` out of L2: packed per K block into `MR`-row micro-panels, or read in place when
//! `n` spans so few panels that packing would not pay for itself. The AVX2 + FMA
//! microkernel keeps a `6×16` tile of `C` in 12 ymm registers (per step of `k`: two loads of
//! `B`, six broadcasts of `A`, 12 FMAs); the AVX-512 one a `14×16` tile in 14 zmm registers.
//! The last K block adds bias and residual and applies ReLU before its store, so the finished
//! value is written straight from registers.
//!
//! Callers split `C` into row chunks across threads; [`gemm`] itself is single-threaded.

use super::scratch::with_pack_scratch;
use super::simd::Isa;

/// Columns of `C` per microkernel call: two AVX2 vectors, one AVX-512 vector.
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
        // Equal K blocks: 576 = 3 × 192 rather than 256 + 256 + 64.
        Self::with_block(k, n, b, k.div_ceil(k.div_ceil(KC).max(1)))
    }

    /// Packs row-major `b` (`k×n`) in K blocks of `kc` rows (the last may be shorter), for
    /// callers whose `A` comes in blocks of that height ([`gemm_windows`]).
    pub fn with_block(k: usize, n: usize, b: &[f32], kc: usize) -> Self {
        assert_eq!(b.len(), k * n, "packed matrix size");
        let kc = kc.max(1);
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

/// Where the microkernels read `A`.
#[derive(Clone, Copy)]
enum Source<'a> {
    /// Row-major `m×k`, contiguous.
    Dense(&'a [f32]),
    /// Packed already by [`pack_a_once`], every K block.
    Packed(&'a [f32]),
    /// Never materialised: row `r` of K block `q` is `a[starts[q] + r * lda..][..kc]`.
    Windows {
        a: &'a [f32],
        lda: usize,
        starts: &'a [usize],
    },
}

/// `c[m×n] = act(a[m×k] · b + bias + residual)`, all row-major and contiguous, on this thread.
pub(crate) fn gemm(isa: Isa, m: usize, a: &[f32], b: &PackedB, c: &mut [f32], fused: Fused) {
    assert!(a.len() >= m * b.k, "gemm operand sizes");
    run(isa, m, Source::Dense(a), b, c, fused);
}

/// `A` (`m×k`, row-major) packed for every K block of `b` at once, for several [`gemm_packed`]
/// calls with matrices packed like `b` (the column parts of one dense layer): a 77-token prompt
/// packed its `A` once per 128-column part before, 9% of the text tower's time.
pub(crate) fn pack_a_once(isa: Isa, m: usize, a: &[f32], b: &PackedB) -> Vec<f32> {
    let k = b.k;
    assert!(a.len() >= m * k, "gemm operand sizes");
    let rows = m.div_ceil(kernel_rows(isa)) * kernel_rows(isa);
    let mut packed = vec![0.0; rows * k];
    for k0 in (0..k).step_by(b.kc) {
        let kb = b.kc.min(k - k0);
        pack_block(isa, m, k, k0, kb, a, &mut packed[rows * k0..][..rows * kb]);
    }
    packed
}

/// [`gemm`] with `A` from [`pack_a_once`] (for `m` rows and a matrix packed like `b`).
pub(crate) fn gemm_packed(
    isa: Isa,
    m: usize,
    packed: &[f32],
    b: &PackedB,
    c: &mut [f32],
    fused: Fused,
) {
    assert_eq!(
        packed.len(),
        m.div_ceil(kernel_rows(isa)) * kernel_rows(isa) * b.k,
        "packed A size"
    );
    run(isa, m, Source::Packed(packed), b, c, fused);
}

/// Packs K block `k0..k0 + kb` of `a` (`m×k`) into `MR`-row micro-panels for `isa`'s
/// microkernel.
fn pack_block(isa: Isa, m: usize, k: usize, k0: usize, kb: usize, a: &[f32], dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if isa.is_avx512() {
            // SAFETY: `is_avx512` is only true when `Isa::detect` saw AVX-512F on this CPU;
            // `pack_a` checks its slices.
            return unsafe { avx512::pack_a(m, k, k0, kb, a, dst) };
        }
        if isa.is_avx2_fma() {
            return pack_a::<{ avx2::MR }>(m, k, k0, kb, a, dst);
        }
    }
    pack_a::<PORTABLE_MR>(m, k, k0, kb, a, dst)
}

/// Like [`gemm`] with `A` read as overlapping windows of one buffer instead of a matrix: row
/// `r`'s part of K block `q` (the `q`-th block of the height `b` was packed with) is
/// `a[starts[q] + r * lda..]`, one block long. With `lda` one pixel's channels and `starts` the
/// rows of a padded image, this is a direct convolution over an output row, no im2col copy.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_windows(
    isa: Isa,
    m: usize,
    a: &[f32],
    lda: usize,
    starts: &[usize],
    b: &PackedB,
    c: &mut [f32],
    fused: Fused,
) {
    assert_eq!(starts.len(), b.k.div_ceil(b.kc), "gemm window blocks");
    let needed = |q: usize| starts[q] + (m.max(1) - 1) * lda + b.kc.min(b.k - q * b.kc);
    assert!(
        (0..starts.len()).all(|q| a.len() >= needed(q)),
        "gemm window operand size"
    );
    run(isa, m, Source::Windows { a, lda, starts }, b, c, fused);
}

/// Dispatches to the best microkernel `isa` allows.
fn run(isa: Isa, m: usize, a: Source, b: &PackedB, c: &mut [f32], fused: Fused) {
    let n = b.n;
    assert!(c.len() >= m * n, "gemm operand sizes");
    assert!(fused.bias.is_none_or(|v| v.len() >= n), "gemm bias size");
    assert!(
        fused.residual.is_none_or(|v| v.len() >= m * n),
        "gemm residual size"
    );
    if m == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        if isa.is_avx512() {
            // SAFETY: `is_avx512` is only true when `Isa::detect` saw AVX-512F on this CPU;
            // the kernel checks the tile's bounds itself.
            let micro = Micro {
                packed: |t: &Tile<{ avx512::MR }>, c: &mut [f32]| unsafe {
                    avx512::kernel::<true>(t, c)
                },
                // SAFETY: as above.
                in_place: |t: &Tile<{ avx512::MR }>, c: &mut [f32]| unsafe {
                    avx512::kernel::<false>(t, c)
                },
            };
            return drive(isa, m, a, b, c, fused, micro);
        }
        if isa.is_avx2_fma() {
            // SAFETY: `is_avx2_fma` is only true when `Isa::detect` saw AVX2 and FMA on this
            // CPU; the kernel checks the tile's bounds itself.
            let micro = Micro {
                packed: |t: &Tile<{ avx2::MR }>, c: &mut [f32]| unsafe {
                    avx2::kernel::<true>(t, c)
                },
                // SAFETY: as above.
                in_place: |t: &Tile<{ avx2::MR }>, c: &mut [f32]| unsafe {
                    avx2::kernel::<false>(t, c)
                },
            };
            return drive(isa, m, a, b, c, fused, micro);
        }
    }
    let micro = Micro {
        packed: portable_kernel::<PORTABLE_MR, true>,
        in_place: portable_kernel::<PORTABLE_MR, false>,
    };
    drive(isa, m, a, b, c, fused, micro);
}

/// One instruction set's microkernel for [`drive`], on packed and on in-place `A`.
struct Micro<P, I> {
    packed: P,
    in_place: I,
}

/// Rows per microkernel call on `isa`: callers cut `C` into chunks of whole row panels.
pub(crate) fn kernel_rows(isa: Isa) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        if isa.is_avx512() {
            return avx512::MR;
        }
        if isa.is_avx2_fma() {
            return avx2::MR;
        }
    }
    PORTABLE_MR
}

/// Up to this many column panels, `A` is read in place: packing it costs a good part of one
/// panel's FMAs, too much when it is reused for only a few (measured on the 32- and 64-channel
/// stem and `layer1` convs).
const IN_PLACE_MAX_PANELS: usize = 4;

/// The blocked loops around one microkernel of height `MR`: per K block, packs `A` into
/// `MR`-row micro-panels (k-major, so the kernel reads it sequentially and rows at
/// power-of-two strides do not fight over L1 sets) unless `n` is narrow, then runs every
/// (column panel, row panel) pair, column panels outside so each `B` panel is reused from L1.
/// `isa` is the one whose microkernel `micro` is (it packs `A` for it).
fn drive<const MR: usize>(
    isa: Isa,
    m: usize,
    a: Source,
    b: &PackedB,
    c: &mut [f32],
    fused: Fused,
    micro: Micro<impl Fn(&Tile<MR>, &mut [f32]), impl Fn(&Tile<MR>, &mut [f32])>,
) {
    let (k, n) = (b.k, b.n);
    let row_panels = m.div_ceil(MR);
    // Windows are read in place: they overlap, so packing would copy each value several times.
    let dense = match a {
        Source::Dense(a) => Some(a).filter(|_| n.div_ceil(NR) > IN_PLACE_MAX_PANELS),
        Source::Packed(_) | Source::Windows { .. } => None,
    };
    let pack = dense.is_some() || matches!(a, Source::Packed(_));
    with_pack_scratch(
        if dense.is_some() {
            row_panels * MR * b.kc
        } else {
            0
        },
        |scratch| {
            for (q, k0) in (0..k).step_by(b.kc).enumerate() {
                let kb = b.kc.min(k - k0);
                let last = k0 + kb == k;
                let apack: &[f32] = match (a, dense) {
                    (Source::Packed(packed), _) => {
                        &packed[row_panels * MR * k0..][..row_panels * MR * kb]
                    }
                    (_, Some(a)) => {
                        let apack = &mut scratch[..row_panels * MR * kb];
                        pack_block(isa, m, k, k0, kb, a, apack);
                        apack
                    }
                    _ => &[],
                };
                // Row 0 of this K block in place, and the stride between rows.
                let (a0, lda) = match a {
                    Source::Dense(a) => (&a[k0..], k),
                    Source::Packed(_) => (&[][..], k),
                    Source::Windows { a, lda, starts } => (&a[starts[q]..], lda),
                };
                for j in 0..n.div_ceil(NR) {
                    let j0 = j * NR;
                    let panel = b.panel(k0, kb, j);
                    for ip in 0..row_panels {
                        let i = ip * MR;
                        let tile = Tile {
                            a: if pack {
                                &apack[ip * MR * kb..][..MR * kb]
                            } else {
                                &a0[i * lda..]
                            },
                            lda,
                            packed: pack,
                            b: panel,
                            kb,
                            ldc: n,
                            rows: MR.min(m - i),
                            cols: NR.min(n - j0),
                            first: k0 == 0,
                            bias: fused.bias.filter(|_| last).map(|v| &v[j0..]),
                            residual: fused.residual.filter(|_| last).map(|v| &v[i * n + j0..]),
                            relu: fused.relu && last,
                        };
                        let c = &mut c[i * n + j0..];
                        if pack {
                            (micro.packed)(&tile, c);
                        } else {
                            (micro.in_place)(&tile, c);
                        }
                    }
                }
            }
        },
    );
}

/// Copies columns `k0..k0 + kb` of `a` (`m×k`) into `MR`-row micro-panels, `MR` values per
/// step of k. Rows past `m` repeat the last row: the kernels then always run `MR` rows over
/// real data and those sums are never stored.
fn pack_a<const MR: usize>(m: usize, k: usize, k0: usize, kb: usize, a: &[f32], dst: &mut [f32]) {
    for (ip, panel) in dst.chunks_exact_mut(MR * kb).enumerate() {
        for r in 0..MR {
            let row = (ip * MR + r).min(m - 1);
            for (p, &v) in a[row * k + k0..][..kb].iter().enumerate() {
                panel[p * MR + r] = v;
            }
        }
    }
}

/// One microkernel call: rows `0..rows`, columns `0..cols` of `C`'s tile get `a · b` over one
/// K block.
struct Tile<'a, const MR: usize> {
    /// The `kb×MR` packed micro-panel of `A` if `packed`, else row 0 of the tile's rows of
    /// `A` from the K block's first column on, rows `lda` apart.
    a: &'a [f32],
    lda: usize,
    packed: bool,
    /// The `kb×NR` panel of `B`.
    b: &'a [f32],
    kb: usize,
    /// `C`'s row stride.
    ldc: usize,
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

impl<const MR: usize> Tile<'_, MR> {
    /// Panics unless every element the kernels touch is in bounds, for `C` of length `c_len`,
    /// and `a` is laid out as the `PACKED` kernel reads it.
    fn check<const PACKED: bool>(&self, c_len: usize) {
        assert_eq!(self.packed, PACKED, "gemm kernel for the other A layout");
        let c_end = (self.rows - 1) * self.ldc + self.cols;
        assert!(
            (1..=MR).contains(&self.rows)
                && (1..=NR).contains(&self.cols)
                && self.cols <= self.ldc
                && if self.packed {
                    self.a.len() >= self.kb * MR
                } else {
                    self.a.len() >= (self.rows - 1) * self.lda + self.kb
                }
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
fn store_tile<const MR: usize>(acc: &[[f32; NR]; MR], t: &Tile<MR>, c: &mut [f32]) {
    for (r, row) in acc.iter().enumerate().take(t.rows) {
        for (col, &v) in row.iter().enumerate().take(t.cols) {
            let at = r * t.ldc + col;
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

impl<const MR: usize> Tile<'_, MR> {
    /// Where `A[r][p]` sits in `a`, for `r < MR`, `p < kb`: packed, or in place with rows past
    /// the tile's last re-reading that last row (their sums are never stored), so the kernels
    /// always run `MR` rows over real data.
    #[inline(always)]
    fn a_index<const PACKED: bool>(&self, r: usize, p: usize) -> usize {
        if PACKED {
            p * MR + r
        } else {
            r.min(self.rows - 1) * self.lda + p
        }
    }
}

const PORTABLE_MR: usize = 6;

/// The same blocking in plain Rust, for CPUs without AVX2 + FMA.
fn portable_kernel<const MR: usize, const PACKED: bool>(t: &Tile<MR>, c: &mut [f32]) {
    t.check::<PACKED>(c.len());
    let mut acc = [[0.0f32; NR]; MR];
    for (p, b) in t.b.chunks_exact(NR).take(t.kb).enumerate() {
        for (r, row) in acc.iter_mut().enumerate() {
            let av = t.a[t.a_index::<PACKED>(r, p)];
            for (x, &bv) in row.iter_mut().zip(b) {
                *x += av * bv;
            }
        }
    }
    store_tile(&acc, t, c);
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{store_tile, Tile, NR};

    /// 6 rows × 2 vectors: 12 accumulators, 2 loads of `B` and 6 broadcasts per 12 FMAs.
    pub(super) const MR: usize = 6;

    /// The 6×16 AVX2 + FMA microkernel.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA. Bounds are checked here (`Tile::check`).
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn kernel<const PACKED: bool>(t: &Tile<MR>, c: &mut [f32]) {
        t.check::<PACKED>(c.len());
        let (a, b) = (t.a.as_ptr(), t.b.as_ptr());
        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
        for p in 0..t.kb {
            // SAFETY: `check` guarantees `a` holds every `a_index(r, p)` for `r < MR`,
            // `p < kb` (the kb × MR packed panel, or `(rows - 1) * lda + kb` floats in place,
            // rows clamped to `rows - 1`) and `b` `kb × NR` floats, so `p * NR .. p * NR + 16`
            // is in bounds; unaligned loads need no alignment.
            unsafe {
                let b0 = _mm256_loadu_ps(b.add(p * NR));
                let b1 = _mm256_loadu_ps(b.add(p * NR + 8));
                for (r, row) in acc.iter_mut().enumerate() {
                    let av = _mm256_broadcast_ss(&*a.add(t.a_index::<PACKED>(r, p)));
                    row[0] = _mm256_fmadd_ps(av, b0, row[0]);
                    row[1] = _mm256_fmadd_ps(av, b1, row[1]);
                }
            }
        }
        if t.rows < MR || t.cols < NR {
            // SAFETY: `[[__m256; 2]; MR]` and `[[f32; 16]; MR]` have the same size and every
            // bit pattern is a valid f32.
            let acc: [[f32; NR]; MR] = unsafe { std::mem::transmute(acc) };
            store_tile(&acc, t, c);
            return;
        }
        let cp = c.as_mut_ptr();
        let zero = _mm256_setzero_ps();
        for (r, row) in acc.iter().enumerate() {
            for (h, &v) in row.iter().enumerate() {
                let at = r * t.ldc + h * 8;
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

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{Tile, NR};

    /// 14 rows × 1 vector: 14 accumulators hide the FMA latency on two pipes, and the 32
    /// registers leave room for `B` and the broadcasts.
    pub(super) const MR: usize = 14;

    /// [`super::pack_a`] for `MR` rows, 16 columns at a time through an in-register 16×16
    /// transpose instead of one scalar store per value.
    ///
    /// # Safety
    /// The CPU must support AVX-512F. Slices are bounds-checked.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn pack_a(
        m: usize,
        k: usize,
        k0: usize,
        kb: usize,
        a: &[f32],
        dst: &mut [f32],
    ) {
        for (ip, panel) in dst.chunks_exact_mut(MR * kb).enumerate() {
            let rows: [&[f32]; MR] =
                std::array::from_fn(|r| &a[(ip * MR + r).min(m - 1) * k + k0..][..kb]);
            let mut p = 0;
            while p + 16 <= kb {
                let mut v = [_mm512_setzero_ps(); 16];
                for (x, row) in v.iter_mut().zip(&rows) {
                    let src = &row[p..p + 16];
                    // SAFETY: `src` holds 16 floats; unaligned loads need no alignment.
                    *x = unsafe { _mm512_loadu_ps(src.as_ptr()) };
                }
                let v = transpose(v);
                for (q, &x) in v.iter().enumerate() {
                    let out = &mut panel[(p + q) * MR..][..MR];
                    // SAFETY: `out` holds `MR` floats and the mask enables lanes `0..MR` only
                    // (masked-off lanes are not accessed).
                    unsafe { _mm512_mask_storeu_ps(out.as_mut_ptr(), (1 << MR) - 1, x) };
                }
                p += 16;
            }
            for p in p..kb {
                for (r, row) in rows.iter().enumerate() {
                    panel[p * MR + r] = row[p];
                }
            }
        }
    }

    /// `out[q]` lane `r` = `v[r]` lane `q`: pairs interleave 32-bit, then 64-bit elements, then
    /// two rounds of 128-bit lane shuffles.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn transpose(v: [__m512; 16]) -> [__m512; 16] {
        let pd = _mm512_castps_pd;
        let ps = _mm512_castpd_ps;
        let t: [__m512; 16] = std::array::from_fn(|i| {
            let (a, b) = (v[i / 2 * 2], v[i / 2 * 2 + 1]);
            if i % 2 == 0 {
                _mm512_unpacklo_ps(a, b)
            } else {
                _mm512_unpackhi_ps(a, b)
            }
        });
        // Within each group of four: (t0, t2) and (t1, t3) interleaved as 64-bit pairs.
        let u: [__m512; 16] = std::array::from_fn(|i| {
            let g = i / 4 * 4;
            let (a, b) = match i % 4 {
                0 | 1 => (t[g], t[g + 2]),
                _ => (t[g + 1], t[g + 3]),
            };
            if i % 2 == 0 {
                ps(_mm512_unpacklo_pd(pd(a), pd(b)))
            } else {
                ps(_mm512_unpackhi_pd(pd(a), pd(b)))
            }
        });
        let w: [__m512; 16] = std::array::from_fn(|i| {
            let g = i / 8 * 8;
            let j = i % 4;
            let (a, b) = (u[g + j], u[g + j + 4]);
            if i % 8 < 4 {
                _mm512_shuffle_f32x4::<0x88>(a, b)
            } else {
                _mm512_shuffle_f32x4::<0xdd>(a, b)
            }
        });
        std::array::from_fn(|i| {
            let (a, b) = (w[i % 8], w[i % 8 + 8]);
            if i < 8 {
                _mm512_shuffle_f32x4::<0x88>(a, b)
            } else {
                _mm512_shuffle_f32x4::<0xdd>(a, b)
            }
        })
    }

    /// The 14×16 AVX-512 microkernel; edge columns use masked loads and stores.
    ///
    /// # Safety
    /// The CPU must support AVX-512F. Bounds are checked here (`Tile::check`).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn kernel<const PACKED: bool>(t: &Tile<MR>, c: &mut [f32]) {
        t.check::<PACKED>(c.len());
        let (a, b) = (t.a.as_ptr(), t.b.as_ptr());
        let mut acc = [_mm512_setzero_ps(); MR];
        for p in 0..t.kb {
            // SAFETY: `check` guarantees `a` holds every `a_index(r, p)` for `r < MR`,
            // `p < kb` (the kb × MR packed panel, or `(rows - 1) * lda + kb` floats in place,
            // rows clamped to `rows - 1`) and `b` `kb × NR` floats, so `p * NR .. p * NR + 16`
            // is in bounds; unaligned loads need no alignment.
            unsafe {
                let bv = _mm512_loadu_ps(b.add(p * NR));
                for (r, x) in acc.iter_mut().enumerate() {
                    let av = _mm512_set1_ps(*a.add(t.a_index::<PACKED>(r, p)));
                    *x = _mm512_fmadd_ps(av, bv, *x);
                }
            }
        }
        let mask: __mmask16 = if t.cols == NR { !0 } else { (1 << t.cols) - 1 };
        let cp = c.as_mut_ptr();
        let zero = _mm512_setzero_ps();
        for (r, &v) in acc.iter().enumerate().take(t.rows) {
            let at = r * t.ldc;
            // SAFETY: `check` guarantees `c` and `residual` hold `(rows - 1) * ldc + cols`
            // floats and `bias` `cols`; `r < rows`, and the mask enables only lanes
            // `0..cols`, so every accessed element is in bounds (masked-off lanes are not
            // accessed and cannot fault).
            unsafe {
                let mut v = v;
                if !t.first {
                    v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, cp.add(at)));
                }
                if let Some(bias) = t.bias {
                    v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, bias.as_ptr()));
                }
                if let Some(res) = t.residual {
                    v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, res.as_ptr().add(at)));
                }
                if t.relu {
                    v = _mm512_max_ps(v, zero);
                }
                _mm512_mask_storeu_ps(cp.add(at), mask, v);
            }
        }
    }
}
