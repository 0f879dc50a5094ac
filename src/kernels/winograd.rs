//! Winograd minimal filtering for 3×3 stride-1 convolutions over NHWC tensors.
//!
//! Follows Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (2015): each
//! `A×A` input tile `d` becomes `V = Bᵀ d B`, each filter `g` becomes `U = G g Gᵀ`, the `A²`
//! tile positions are independent channel-mixing GEMMs `M[p] = V[p] · U[p]`, and
//! `Y = Aᵀ M A` gives an `M×M` output tile. Tiles are processed in batches sized for L2; the
//! inverse transform applies bias, residual and ReLU before anything is written.

use rayon::prelude::*;

use super::gemm::{gemm, kernel_rows, Fused, PackedB};
use super::pass::{Epilogue, Geometry};
use super::scratch::with_scratch;
use super::simd::{Isa, V};

/// One Winograd variant: `A`-point input tiles, `M`-point output tiles, 3-tap filters.
pub(crate) trait Tile<const A: usize, const M: usize> {
    /// The filter transform `G` (`A×3`).
    const G: [[f64; 3]; A];
    /// `Bᵀ d` along one axis.
    fn input_1d<const L: usize>(d: [V<L>; A]) -> [V<L>; A];
    /// `Aᵀ m` along one axis.
    fn output_1d<const L: usize>(m: [V<L>; A]) -> [V<L>; M];
}

/// F(2×2, 3×3), interpolation points 0, ±1.
pub(crate) struct F23;

impl Tile<4, 2> for F23 {
    const G: [[f64; 3]; 4] = [
        [1.0, 0.0, 0.0],
        [0.5, 0.5, 0.5],
        [0.5, -0.5, 0.5],
        [0.0, 0.0, 1.0],
    ];

    #[inline(always)]
    fn input_1d<const L: usize>([d0, d1, d2, d3]: [V<L>; 4]) -> [V<L>; 4] {
        [d0 - d2, d1 + d2, d2 - d1, d1 - d3]
    }

    #[inline(always)]
    fn output_1d<const L: usize>([m0, m1, m2, m3]: [V<L>; 4]) -> [V<L>; 2] {
        [m0 + m1 + m2, m1 - m2 - m3]
    }
}

/// F(4×4, 3×3), interpolation points 0, ±1, ±2.
pub(crate) struct F43;

impl Tile<6, 4> for F43 {
    const G: [[f64; 3]; 6] = [
        [1.0 / 4.0, 0.0, 0.0],
        [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
        [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
        [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
        [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
        [0.0, 0.0, 1.0],
    ];

    #[inline(always)]
    fn input_1d<const L: usize>([d0, d1, d2, d3, d4, d5]: [V<L>; 6]) -> [V<L>; 6] {
        let a = d4 - d2 * 4.0;
        let b = d3 - d1 * 4.0;
        let c = d4 - d2;
        let e = (d3 - d1) * 2.0;
        [
            d0 * 4.0 - d2 * 5.0 + d4,
            a + b,
            a - b,
            c + e,
            c - e,
            d1 * 4.0 - d3 * 5.0 + d5,
        ]
    }

    #[inline(always)]
    fn output_1d<const L: usize>([m0, m1, m2, m3, m4, m5]: [V<L>; 6]) -> [V<L>; 4] {
        let s12 = m1 + m2;
        let d12 = m1 - m2;
        let s34 = m3 + m4;
        let d34 = m3 - m4;
        [
            m0 + s12 + s34,
            d12 + d34 * 2.0,
            s12 + s34 * 4.0,
            d12 + d34 * 8.0 + m5,
        ]
    }
}

/// Transformed filters `U`: per tile position, the packed `in_c×out_c` GEMM right-hand side.
pub(crate) struct Winograd<const A: usize, const M: usize> {
    u: Vec<PackedB>,
    out_c: usize,
    in_c: usize,
    padding: usize,
}

impl<const A: usize, const M: usize> Winograd<A, M> {
    /// Transforms OIHW 3×3 filters (`U = G g Gᵀ`, computed in f64 so the packing adds no
    /// rounding of its own).
    pub fn new<T: Tile<A, M>>(w_oihw: &[f32], out_c: usize, in_c: usize, padding: usize) -> Self {
        let mut u = vec![0.0; A * A * in_c * out_c];
        for o in 0..out_c {
            for i in 0..in_c {
                let g = &w_oihw[(o * in_c + i) * 9..][..9];
                // gt = G g (A×3), then U = gt Gᵀ (A×A).
                let gt: [[f64; 3]; A] = std::array::from_fn(|y| {
                    std::array::from_fn(|j| {
                        (0..3).map(|k| T::G[y][k] * f64::from(g[k * 3 + j])).sum()
                    })
                });
                for y in 0..A {
                    for x in 0..A {
                        let v: f64 = (0..3).map(|j| gt[y][j] * T::G[x][j]).sum();
                        u[((y * A + x) * in_c + i) * out_c + o] = v as f32;
                    }
                }
            }
        }
        Self {
            u: u.chunks_exact(in_c * out_c)
                .map(|up| PackedB::new(in_c, out_c, up))
                .collect(),
            out_c,
            in_c,
            padding,
        }
    }

    /// Runs the convolution; shapes were checked by the caller.
    pub fn forward<T: Tile<A, M>>(
        &self,
        isa: Isa,
        input: &[f32],
        g: Geometry,
        epi: Epilogue,
        out: &mut [f32],
    ) {
        let tiles_y = g.oh.div_ceil(M);
        let tiles_x = g.ow.div_ceil(M);
        let rows_total = g.n * tiles_y;
        let rows = self.rows_per_batch(isa, rows_total, tiles_x);
        // Batches are runs of whole tile rows, counted across images (late layers have few
        // tiles per image), so each batch's output is one contiguous slice.
        let row_start = |r: usize| (r / tiles_y * g.oh + (r % tiles_y) * M) * g.ow * self.out_c;
        let mut batches = Vec::with_capacity(rows_total.div_ceil(rows));
        let mut rest = out;
        for r0 in (0..rows_total).step_by(rows) {
            let r1 = (r0 + rows).min(rows_total);
            let (head, tail) = rest.split_at_mut(row_start(r1) - row_start(r0));
            batches.push(Batch {
                r0,
                r1,
                tiles: (r1 - r0) * tiles_x,
                out: head,
            });
            rest = tail;
        }
        if self.in_c * self.out_c < BY_POSITION_MIN_CHANNELS2 {
            batches.into_par_iter().for_each(|b| {
                let (ci, co) = (self.in_c, self.out_c);
                with_scratch(A * A * b.tiles * (ci + co), |buf| {
                    let (v, m) = buf.split_at_mut(A * A * b.tiles * ci);
                    self.transform_in::<T>(isa, input, g, b.r0, b.r1, v);
                    for (p, up) in self.u.iter().enumerate() {
                        let (vp, mp) = (p * b.tiles * ci, p * b.tiles * co);
                        let (vp, mp) = (&v[vp..][..b.tiles * ci], &mut m[mp..][..b.tiles * co]);
                        gemm(isa, b.tiles, vp, up, mp, Fused::default());
                    }
                    self.transform_out::<T>(isa, g, epi, b.r0, b.r1, m, b.out);
                });
            });
        } else {
            let per_tile = A * A * (self.in_c + self.out_c);
            let mut batches = batches.into_iter().peekable();
            while batches.peek().is_some() {
                // Groups of batches whose `V` and `M` fit the cap, at least one batch each.
                let mut group = Vec::new();
                let mut tiles = 0;
                while let Some(b) = batches.next_if(|b| {
                    group.is_empty() || (tiles + b.tiles) * per_tile <= BY_POSITION_MAX_FLOATS
                }) {
                    tiles += b.tiles;
                    group.push(b);
                }
                self.by_position::<T>(isa, input, g, epi, tiles, group);
            }
        }
    }

    /// All of `batches` at once, in three parallel phases: the input transforms batch by
    /// batch, then the GEMMs position by position (each thread streams a filter matrix `U[p]`
    /// from memory once and keeps it in L2 across every batch's tiles), then the output
    /// transforms. With 256-512 channels `U` is 9-36 MB, and multiplying it batch by batch
    /// read all of it again for every batch of a few dozen tiles.
    #[allow(clippy::too_many_arguments)]
    fn by_position<T: Tile<A, M>>(
        &self,
        isa: Isa,
        input: &[f32],
        g: Geometry,
        epi: Epilogue,
        tiles: usize,
        batches: Vec<Batch>,
    ) {
        let (ci, co) = (self.in_c, self.out_c);
        with_scratch(A * A * tiles * (ci + co), |buf| {
            let (v, m) = buf.split_at_mut(A * A * tiles * ci);
            // Each batch's `V` (and `M`) is one contiguous `[p][t][c]` region, in batch order.
            let mut vs = Vec::with_capacity(batches.len());
            let mut rest = &mut v[..];
            for b in &batches {
                let (head, tail) = rest.split_at_mut(A * A * b.tiles * ci);
                vs.push(head);
                rest = tail;
            }
            vs.par_iter_mut()
                .zip(&batches)
                .for_each(|(v, b)| self.transform_in::<T>(isa, input, g, b.r0, b.r1, v));
            let mut by_p: Vec<Vec<&mut [f32]>> = (0..A * A).map(|_| Vec::new()).collect();
            let mut rest = &mut m[..];
            for b in &batches {
                let (head, tail) = rest.split_at_mut(A * A * b.tiles * co);
                for (p, mp) in head.chunks_exact_mut(b.tiles * co).enumerate() {
                    by_p[p].push(mp);
                }
                rest = tail;
            }
            by_p.into_par_iter().enumerate().for_each(|(p, ms)| {
                for ((mp, v), b) in ms.into_iter().zip(&vs).zip(&batches) {
                    let vp = &v[p * b.tiles * ci..][..b.tiles * ci];
                    gemm(isa, b.tiles, vp, &self.u[p], mp, Fused::default());
                }
            });
            let mut rest = &m[..];
            let mut ms = Vec::with_capacity(batches.len());
            for b in &batches {
                let (head, tail) = rest.split_at(A * A * b.tiles * co);
                ms.push(head);
                rest = tail;
            }
            batches
                .into_par_iter()
                .zip(ms)
                .for_each(|(b, m)| self.transform_out::<T>(isa, g, epi, b.r0, b.r1, m, b.out));
        });
    }

    /// Tile rows per GEMM batch: enough tiles for efficient GEMMs, few enough for several
    /// batches per thread and for `V` and `M` to stay near L2, and where possible a whole
    /// number of the microkernel's row panels (14 tiles with AVX-512, 6 with AVX2), since a
    /// GEMM of 16 rows costs as much as one of 28.
    fn rows_per_batch(&self, isa: Isa, rows_total: usize, tiles_x: usize) -> usize {
        const CACHE_FLOATS: usize = 256 * 1024;
        let by_cache = CACHE_FLOATS / (A * A * (self.in_c + self.out_c));
        let by_threads = (rows_total * tiles_x).div_ceil(2 * rayon::current_num_threads());
        let target = by_cache.clamp(24, 128).min(by_threads).max(1);
        let mr = kernel_rows(isa);
        // Tile rows per whole number of row panels.
        let step = mr / gcd(mr, tiles_x);
        let rows = (target / tiles_x).max(1);
        let aligned = if rows < step {
            step
        } else {
            rows / step * step
        };
        aligned.min(rows_total)
    }

    /// `V` for the tiles of tile rows `r0..r1` (counted across images: row `r` is tile row
    /// `r % tiles_y` of image `r / tiles_y`), on vectors as wide as the CPU's registers.
    fn transform_in<T: Tile<A, M>>(
        &self,
        isa: Isa,
        input: &[f32],
        g: Geometry,
        r0: usize,
        r1: usize,
        v: &mut [f32],
    ) {
        let tiles = (r1 - r0) * g.ow.div_ceil(M);
        // Written out per width: the loop must be inlined into `Isa::run`'s feature-enabled
        // copy for the transforms to compile to 256- or 512-bit code.
        if isa.lanes() == 16 {
            isa.run(|| {
                for t in 0..tiles {
                    let (img, y0, x0) = tile_pos::<M>(g, r0, t);
                    self.input_tile::<T, 16>(input, g, img, y0, x0, t, tiles, v);
                }
            });
        } else {
            isa.run(|| {
                for t in 0..tiles {
                    let (img, y0, x0) = tile_pos::<M>(g, r0, t);
                    self.input_tile::<T, 8>(input, g, img, y0, x0, t, tiles, v);
                }
            });
        }
    }

    /// `Y = Aᵀ M A` plus the epilogue for the tiles of tile rows `r0..r1` into `out`, which
    /// starts at row `r0`'s first output pixel.
    #[allow(clippy::too_many_arguments)]
    fn transform_out<T: Tile<A, M>>(
        &self,
        isa: Isa,
        g: Geometry,
        epi: Epilogue,
        r0: usize,
        r1: usize,
        m: &[f32],
        out: &mut [f32],
    ) {
        let tiles_y = g.oh.div_ceil(M);
        let tiles = (r1 - r0) * g.ow.div_ceil(M);
        let out_base = (r0 / tiles_y * g.oh + r0 % tiles_y * M) * g.ow * self.out_c;
        if isa.lanes() == 16 {
            isa.run(|| {
                for t in 0..tiles {
                    let (img, y0, x0) = tile_pos::<M>(g, r0, t);
                    self.output_tile::<T, 16>(g, epi, img, y0, x0, t, tiles, m, out_base, out);
                }
            });
        } else {
            isa.run(|| {
                for t in 0..tiles {
                    let (img, y0, x0) = tile_pos::<M>(g, r0, t);
                    self.output_tile::<T, 8>(g, epi, img, y0, x0, t, tiles, m, out_base, out);
                }
            });
        }
    }

    /// `V[p][t][..] = (Bᵀ d B)[p]` for the tile whose output corner is (`y0`, `x0`).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn input_tile<T: Tile<A, M>, const L: usize>(
        &self,
        input: &[f32],
        g: Geometry,
        img: usize,
        y0: usize,
        x0: usize,
        t: usize,
        tiles: usize,
        v: &mut [f32],
    ) {
        let c = self.in_c;
        for cb in (0..c).step_by(L) {
            let len = (c - cb).min(L);
            let mut d = [[V::<L>::default(); A]; A];
            for (y, row) in d.iter_mut().enumerate() {
                // `wrapping_sub` turns rows above the image into huge values, caught below.
                let iy = (y0 + y).wrapping_sub(self.padding);
                if iy >= g.h {
                    continue;
                }
                for (x, e) in row.iter_mut().enumerate() {
                    let ix = (x0 + x).wrapping_sub(self.padding);
                    if ix < g.w {
                        *e = V::<L>::load(input, ((img * g.h + iy) * g.w + ix) * c + cb, len);
                    }
                }
            }
            for x in 0..A {
                let col = T::input_1d(std::array::from_fn(|y| d[y][x]));
                for (row, e) in d.iter_mut().zip(col) {
                    row[x] = e;
                }
            }
            for (y, row) in d.iter().enumerate() {
                for (x, e) in T::input_1d(*row).into_iter().enumerate() {
                    e.store(v, ((y * A + x) * tiles + t) * c + cb, len);
                }
            }
        }
    }

    /// `Y = Aᵀ M A` for tile `t`, plus bias, residual and ReLU, stored where it lies inside
    /// the output (the right and bottom tiles may hang over the edge).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn output_tile<T: Tile<A, M>, const L: usize>(
        &self,
        g: Geometry,
        epi: Epilogue,
        img: usize,
        y0: usize,
        x0: usize,
        t: usize,
        tiles: usize,
        m: &[f32],
        out_base: usize,
        out: &mut [f32],
    ) {
        let co = self.out_c;
        let rows = (g.oh - y0).min(M);
        let cols = (g.ow - x0).min(M);
        for ob in (0..co).step_by(L) {
            let len = (co - ob).min(L);
            let s: [[V<L>; A]; A] = std::array::from_fn(|y| {
                std::array::from_fn(|x| V::<L>::load(m, ((y * A + x) * tiles + t) * co + ob, len))
            });
            let mut half = [[V::<L>::default(); A]; M];
            for x in 0..A {
                let col = T::output_1d(std::array::from_fn(|y| s[y][x]));
                for (row, e) in half.iter_mut().zip(col) {
                    row[x] = e;
                }
            }
            let bias = V::<L>::load(epi.bias, ob, len);
            for (dy, row) in half.iter().take(rows).enumerate() {
                let y = T::output_1d(*row);
                for (dx, &e) in y.iter().take(cols).enumerate() {
                    let at = ((img * g.oh + y0 + dy) * g.ow + x0 + dx) * co + ob;
                    let mut e = e + bias;
                    if let Some(res) = epi.residual {
                        e = e + V::<L>::load(res, at, len);
                    }
                    if epi.relu {
                        e = e.relu();
                    }
                    e.store(out, at - out_base, len);
                }
            }
        }
    }
}

/// Below this `in_c · out_c` (256 × 256), batches run one after another, each all the way
/// through: its `V` and `M` stay in L2 and re-reading `U` per batch costs less than the
/// round trip through memory that [`Winograd::by_position`] makes them take.
const BY_POSITION_MIN_CHANNELS2: usize = 256 * 256;

/// The most floats of `V` and `M` one [`Winograd::by_position`] group holds (64 MiB).
const BY_POSITION_MAX_FLOATS: usize = 16 << 20;

/// A run of whole tile rows `r0..r1` and its slice of the output.
struct Batch<'a> {
    r0: usize,
    r1: usize,
    tiles: usize,
    out: &'a mut [f32],
}

/// Image, output row and output column of tile `t` of the batch starting at tile row `r0`.
#[inline(always)]
fn tile_pos<const M: usize>(g: Geometry, r0: usize, t: usize) -> (usize, usize, usize) {
    let (tiles_y, tiles_x) = (g.oh.div_ceil(M), g.ow.div_ceil(M));
    let r = r0 + t / tiles_x;
    (r / tiles_y, r % tiles_y * M, (t % tiles_x) * M)
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}
