//! open_clip's evaluation transform, reproduced pixel for pixel.
//!
//! open_clip (`open_clip/transform.py`, `image_transform` with `resize_mode="shortest"`) runs
//! `Resize(size, BICUBIC)`, `CenterCrop(size)`, `convert("RGB")`, `ToTensor`, `Normalize(mean, std)`
//! on a Pillow image. [`Preprocessor`] reproduces each step:
//!
//! - **Resize**: torchvision's `_compute_resized_output_size` sets the short side to `size` and the
//!   long side to `int(size * long / short)`; when that is already the image's size, torchvision
//!   returns the image untouched. Otherwise Pillow's `ImagingResample` runs: bicubic (Catmull-Rom,
//!   a = -0.5), support widened by the downscale factor (antialiasing), 22-bit fixed-point
//!   coefficients, two separable passes each rounding to `u8` (horizontal first, except for
//!   images much taller than wide, see `Geometry::vertical_first`). The port here is bit-exact
//!   for 8-bit images; it only computes the output pixels that survive the crop, which gives the
//!   same bytes for a fraction of the work on elongated images.
//! - **CenterCrop**: offsets `int(round((h - size) / 2.0))`, with Python's round-half-even.
//! - **ToTensor + Normalize**: `(v / 255 - mean) / std` in `f32`, channel-planar (CHW).
//!
//! Pixel formats, and where we follow or leave Pillow:
//!
//! - **Grey (`L`)**: resized as one channel and replicated to RGB, exactly as Pillow's
//!   `L -> RGB` conversion after the resize.
//! - **Alpha (`RGBA`, `LA`)**: Pillow resizes these premultiplied (`RGBa`/`La`), un-premultiplies,
//!   and `convert("RGB")` then drops the alpha. We do the same, rounding included, so that
//!   transparent images embed as they do in Python (parity over taste: a fully transparent
//!   pixel's colour is lost in both). When no resize is needed nothing is premultiplied, as in
//!   Pillow.
//! - **Palette PNG/GIF**: Pillow keeps mode `P` and resizes it with NEAREST. The `image` crate
//!   expands palettes to RGB(A) while decoding, so we resize the expanded colours with the same
//!   bicubic filter: better quality, deliberately not bit-equal with Python.
//! - **16-bit and float**: Pillow's `I;16 -> RGB` conversion clips (nearly every pixel becomes
//!   255). We scale to 8 bits with rounding (`(v + 128) / 257`, the `image` crate's conversion)
//!   before resizing, so 16-bit photos look like their 8-bit counterparts.

use std::ops::Range;

use image::{DynamicImage, RgbImage};
use rayon::prelude::*;

/// Fixed-point precision of Pillow's 8-bit resampler: 8 bits for the value, 2 spare for
/// coefficients outside [0, 1], 22 for the fraction.
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Half of one unit in the fixed-point scale: the rounding term every accumulator starts from.
const ROUNDING: i32 = 1 << (PRECISION_BITS - 1);

/// Bicubic's support at scale 1 (Pillow's `BICUBIC.support`).
const BICUBIC_SUPPORT: f64 = 2.0;

/// Multiply-adds above which a resampling pass is split over rows with rayon; below it the
/// thread hand-off costs more than it saves.
const PARALLEL_MIN_WORK: usize = 1 << 20;

/// open_clip's image preprocessing for one model: resize, centre crop, normalise.
///
/// Build it once per model; it is cheap to share between threads.
#[derive(Debug, Clone)]
pub struct Preprocessor {
    size: usize,
    /// `lut[c][v]` = `(v / 255 - mean[c]) / std[c]`, in the exact `f32` operations torch uses.
    lut: [[f32; 256]; 3],
}

impl Preprocessor {
    /// A preprocessor producing `image_size` x `image_size` crops normalised with `mean` and `std`
    /// (per RGB channel, as in open_clip's `preprocess_cfg`).
    ///
    /// # Panics
    ///
    /// If `image_size` is zero.
    pub fn new(image_size: usize, mean: [f32; 3], std: [f32; 3]) -> Self {
        assert!(image_size > 0, "preprocess image size must be positive");
        let mut lut = [[0.0f32; 256]; 3];
        for (c, table) in lut.iter_mut().enumerate() {
            for (v, slot) in table.iter_mut().enumerate() {
                // Mirrors torchvision's `to_tensor` (`div(255)`) then `normalize` (`sub_`, `div_`).
                *slot = (v as f32 / 255.0 - mean[c]) / std[c];
            }
        }
        Self {
            size: image_size,
            lut,
        }
    }

    /// The side of the square crop, in pixels.
    pub fn image_size(&self) -> usize {
        self.size
    }

    /// Number of `f32` values [`Preprocessor::pixels`] produces per image: `3 * size * size`.
    pub fn pixel_len(&self) -> usize {
        3 * self.size * self.size
    }

    /// Resize the shortest side and centre crop, as uint8 RGB (what Pillow holds before
    /// `ToTensor`).
    pub fn resize_crop(&self, img: &DynamicImage) -> RgbImage {
        let (width, height) = (img.width() as usize, img.height() as usize);
        let geometry = Geometry::new(width, height, self.size);
        let s = self.size;
        let rgb = match img {
            DynamicImage::ImageLuma8(gray) => grey_to_rgb(&geometry.apply::<1>(gray.as_raw())),
            DynamicImage::ImageLumaA8(gray_alpha) => {
                grey_to_rgb(&resize_crop_alpha::<2>(gray_alpha.as_raw(), &geometry))
            }
            DynamicImage::ImageRgb8(rgb) => geometry.apply::<3>(rgb.as_raw()),
            DynamicImage::ImageRgba8(rgba) => resize_crop_alpha::<4>(rgba.as_raw(), &geometry),
            DynamicImage::ImageLuma16(_) => {
                grey_to_rgb(&geometry.apply::<1>(img.to_luma8().as_raw()))
            }
            DynamicImage::ImageLumaA16(_) => grey_to_rgb(&resize_crop_alpha::<2>(
                img.to_luma_alpha8().as_raw(),
                &geometry,
            )),
            DynamicImage::ImageRgba16(_) | DynamicImage::ImageRgba32F(_) => {
                resize_crop_alpha::<4>(img.to_rgba8().as_raw(), &geometry)
            }
            // Rgb16, Rgb32F and any layout a later `image` adds: 8-bit RGB is the common ground.
            _ => geometry.apply::<3>(img.to_rgb8().as_raw()),
        };
        RgbImage::from_raw(s as u32, s as u32, rgb)
            .unwrap_or_else(|| unreachable!("a {s}x{s} crop holds 3*{s}*{s} bytes"))
    }

    /// [`Preprocessor::resize_crop`], then `/255`, mean/std, channel-planar (CHW); length
    /// [`Preprocessor::pixel_len`].
    pub fn pixels(&self, img: &DynamicImage) -> Vec<f32> {
        let mut out = vec![0.0; self.pixel_len()];
        self.write_pixels(img, &mut out);
        out
    }

    /// [`Preprocessor::pixels`] written into `out`, e.g. one image's slot in a batch tensor.
    ///
    /// # Panics
    ///
    /// If `out.len()` is not [`Preprocessor::pixel_len`].
    pub fn write_pixels(&self, img: &DynamicImage, out: &mut [f32]) {
        assert_eq!(out.len(), self.pixel_len(), "pixel buffer length");
        let crop = self.resize_crop(img);
        let plane = self.size * self.size;
        let (red, rest) = out.split_at_mut(plane);
        let (green, blue) = rest.split_at_mut(plane);
        for (i, px) in crop.as_raw().chunks_exact(3).enumerate() {
            red[i] = self.lut[0][usize::from(px[0])];
            green[i] = self.lut[1][usize::from(px[1])];
            blue[i] = self.lut[2][usize::from(px[2])];
        }
    }

    /// [`Preprocessor::write_pixels`] for a batch, in parallel: image `i` fills
    /// `out[i * pixel_len .. (i + 1) * pixel_len]`, the layout of an NCHW tensor.
    ///
    /// # Panics
    ///
    /// If `out.len()` is not `images.len() * pixel_len`.
    pub fn write_batch(&self, images: &[DynamicImage], out: &mut [f32]) {
        assert_eq!(
            out.len(),
            images.len() * self.pixel_len(),
            "batch buffer length"
        );
        out.par_chunks_mut(self.pixel_len())
            .zip(images)
            .for_each(|(slot, img)| self.write_pixels(img, slot));
    }
}

/// The smallest short side a source image needs for a [`Preprocessor`] of `image_size`: twice
/// the crop.
///
/// Decoders may reduce a large image (a JPEG's scaled IDCT) down to this size. At two source
/// pixels or more per output pixel the antialiased bicubic resize still averages over real
/// detail, so the crop stays close to the one from full size (see the measured bound in
/// `tests/preprocess_decode.rs`), as with Pillow's `draft()`.
pub fn min_source_side(image_size: usize) -> u32 {
    u32::try_from(2 * image_size).unwrap_or(u32::MAX)
}

/// Where the resized image lands and which part of it the crop keeps.
struct Geometry {
    in_w: usize,
    in_h: usize,
    out_w: usize,
    out_h: usize,
    left: usize,
    top: usize,
    size: usize,
}

impl Geometry {
    // Mirrors torchvision's `_compute_resized_output_size` (single `size`, no `max_size`) and
    // `center_crop` (no padding is ever needed: both resized sides are at least `size`).
    fn new(in_w: usize, in_h: usize, size: usize) -> Self {
        let (short, long) = if in_w <= in_h {
            (in_w, in_h)
        } else {
            (in_h, in_w)
        };
        // `int(size * long / short)`: Python's true division of two integers, both exact in f64.
        let new_long = ((size * long) as f64 / short as f64) as usize;
        let (out_w, out_h) = if in_w <= in_h {
            (size, new_long)
        } else {
            (new_long, size)
        };
        let offset = |full: usize| ((full - size) as f64 / 2.0).round_ties_even() as usize;
        Self {
            in_w,
            in_h,
            out_w,
            out_h,
            left: offset(out_w),
            top: offset(out_h),
            size,
        }
    }

    fn resizes(&self) -> bool {
        (self.out_w, self.out_h) != (self.in_w, self.in_h)
    }

    /// Resize (if needed) and crop an interleaved `C`-channel 8-bit image.
    fn apply<const C: usize>(&self, src: &[u8]) -> Vec<u8> {
        if self.resizes() {
            self.resample::<C>(src)
        } else {
            self.crop::<C>(src)
        }
    }

    fn crop<const C: usize>(&self, src: &[u8]) -> Vec<u8> {
        let row = self.in_w * C;
        let mut out = Vec::with_capacity(self.size * self.size * C);
        for y in self.top..self.top + self.size {
            let start = y * row + self.left * C;
            out.extend_from_slice(&src[start..start + self.size * C]);
        }
        out
    }

    /// Whether Pillow runs the vertical pass first. Pillow 13 picks the order per resize; its
    /// source was not available here, so the rule was measured against Pillow 13.0.0 (thousands
    /// of random sizes, both orders told apart by their rounding): vertical first exactly when
    /// the height shrinks and by more than twice what the width shrinks. For a shortest-side
    /// resize that means portraits taller than about 2:1.
    fn vertical_first(&self) -> bool {
        let shrink_h = self.in_h as i64 - self.out_h as i64;
        let shrink_w = self.in_w as i64 - self.out_w as i64;
        shrink_h > 0 && shrink_h > 2 * shrink_w
    }

    // Mirrors Pillow's `ImagingResampleInner` with box (0, 0, w, h), restricted to the output
    // window the crop keeps. Pillow skips a pass whose size does not change; at scale 1 the
    // bicubic weights are exactly [0, 1, 0, 0], so running it anyway gives the same bytes.
    fn resample<const C: usize>(&self, src: &[u8]) -> Vec<u8> {
        let s = self.size;
        let horizontal = Coeffs::new(self.in_w, self.out_w, self.left, s);
        let vertical = Coeffs::new(self.in_h, self.out_h, self.top, s);
        let stride = self.in_w * C;
        if self.vertical_first() {
            // Only the source columns some kept output column reads go through the first pass.
            let columns = horizontal.first * C..horizontal.end * C;
            let tmp = vertical.vertical(src, stride, 0, columns.clone());
            horizontal.horizontal::<C>(&tmp, columns.len(), horizontal.first)
        } else {
            // Only the source rows some kept output row reads go through the first pass.
            let rows = &src[vertical.first * stride..vertical.end * stride];
            let tmp = horizontal.horizontal::<C>(rows, stride, 0);
            vertical.vertical(&tmp, s * C, vertical.first, 0..s * C)
        }
    }
}

/// Fixed-point bicubic weights along one axis, for a window of consecutive output indices.
struct Coeffs {
    /// Weights per output index (padded with zeros to `ksize`).
    ksize: usize,
    /// `(first input index, number of inputs)` per output index of the window.
    bounds: Vec<(usize, usize)>,
    weights: Vec<i32>,
    /// The lowest input index any output of the window reads.
    first: usize,
    /// One past the highest input index any output of the window reads.
    end: usize,
}

impl Coeffs {
    // Mirrors Pillow's `precompute_coeffs` (box from 0 to `in_size`, BICUBIC) followed by
    // `normalize_coeffs_8bpc`, for the outputs `start..start + count` of `out_size`.
    fn new(in_size: usize, out_size: usize, start: usize, count: usize) -> Self {
        let scale = in_size as f64 / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = BICUBIC_SUPPORT * filterscale;
        let ksize = support.ceil() as usize * 2 + 1;
        let inverse = 1.0 / filterscale;
        let mut bounds = Vec::with_capacity(count);
        let mut weights = vec![0i32; count * ksize];
        let mut real = vec![0.0f64; ksize];
        for (xx, k) in (start..start + count).zip(weights.chunks_exact_mut(ksize)) {
            let center = (xx as f64 + 0.5) * scale;
            // C's `(int)` truncates toward zero, as `as` does; negatives clamp to 0 either way.
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let n = xmax - xmin;
            let mut total = 0.0;
            for (x, w) in real[..n].iter_mut().enumerate() {
                *w = bicubic(((x + xmin) as f64 - center + 0.5) * inverse);
                total += *w;
            }
            for (fixed, &w) in k.iter_mut().zip(&real[..n]) {
                let w = if total != 0.0 { w / total } else { w };
                let scaled = w * f64::from(1u32 << PRECISION_BITS);
                *fixed = if w < 0.0 {
                    (-0.5 + scaled) as i32
                } else {
                    (0.5 + scaled) as i32
                };
            }
            bounds.push((xmin, n));
        }
        let first = bounds.first().map_or(0, |b| b.0);
        let end = bounds.last().map_or(0, |b| b.0 + b.1);
        Self {
            ksize,
            bounds,
            weights,
            first,
            end,
        }
    }

    fn kernel(&self, i: usize) -> (usize, &[i32]) {
        let (min, n) = self.bounds[i];
        (min, &self.weights[i * self.ksize..i * self.ksize + n])
    }

    // Mirrors Pillow's `ImagingResampleHorizontal_8bpc`: resample every row of `rows` (rows of
    // `stride` bytes whose first pixel is input index `offset`), `C` interleaved channels.
    fn horizontal<const C: usize>(&self, rows: &[u8], stride: usize, offset: usize) -> Vec<u8> {
        let out_stride = self.bounds.len() * C;
        let mut out = vec![0u8; rows.len() / stride * out_stride];
        let pass = |(out, input): (&mut [u8], &[u8])| {
            for (i, px) in out.chunks_exact_mut(C).enumerate() {
                let (min, k) = self.kernel(i);
                let from = (min - offset) * C;
                let mut acc = [ROUNDING; C];
                for (p, &w) in input[from..from + k.len() * C].chunks_exact(C).zip(k) {
                    for c in 0..C {
                        acc[c] += i32::from(p[c]) * w;
                    }
                }
                for c in 0..C {
                    px[c] = clip8(acc[c]);
                }
            }
        };
        if out.len() * self.ksize >= PARALLEL_MIN_WORK {
            out.par_chunks_mut(out_stride)
                .zip(rows.par_chunks(stride))
                .for_each(pass);
        } else {
            out.chunks_mut(out_stride)
                .zip(rows.chunks(stride))
                .for_each(pass);
        }
        out
    }

    // Mirrors Pillow's `ImagingResampleVertical_8bpc`: `rows` holds rows of `stride` bytes, the
    // first being input index `first_row`; only the bytes `columns` of each row are resampled.
    // A whole output row accumulates at once, so the inner loop runs over contiguous bytes.
    fn vertical(
        &self,
        rows: &[u8],
        stride: usize,
        first_row: usize,
        columns: Range<usize>,
    ) -> Vec<u8> {
        let width = columns.len();
        let mut out = vec![0u8; self.bounds.len() * width];
        let pass = |acc: &mut Vec<i32>, (yy, out_row): (usize, &mut [u8])| {
            let (min, k) = self.kernel(yy);
            acc.fill(ROUNDING);
            for (j, &w) in k.iter().enumerate() {
                let start = (min + j - first_row) * stride + columns.start;
                for (a, &v) in acc.iter_mut().zip(&rows[start..start + width]) {
                    *a += i32::from(v) * w;
                }
            }
            for (o, &a) in out_row.iter_mut().zip(acc.iter()) {
                *o = clip8(a);
            }
        };
        if out.len() * self.ksize >= PARALLEL_MIN_WORK {
            out.par_chunks_mut(width)
                .enumerate()
                .for_each_init(|| vec![0i32; width], pass);
        } else {
            let mut acc = vec![0i32; width];
            out.chunks_mut(width)
                .enumerate()
                .for_each(|item| pass(&mut acc, item));
        }
        out
    }
}

// Mirrors Pillow's `bicubic_filter` (a = -0.5).
fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

// Mirrors Pillow's `clip8`: drop the fraction (arithmetic shift) and saturate to 0..=255.
//
// The accumulator cannot overflow: weights of one output sum to 1 << 22 and their absolute sum
// stays below twice that for bicubic, so |acc| < 255 * 2^23 < 2^31.
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resize and crop an image whose last channel is alpha, the way Pillow does: premultiply,
/// resample, un-premultiply; then drop alpha. Returns the colour channels only (`C - 1` each).
fn resize_crop_alpha<const C: usize>(src: &[u8], geometry: &Geometry) -> Vec<u8> {
    let cropped = if geometry.resizes() {
        let mut premultiplied = src.to_vec();
        for px in premultiplied.chunks_exact_mut(C) {
            // Mirrors Pillow's `rgbA2rgba` / `lA2la`.
            let alpha = u32::from(px[C - 1]);
            for v in &mut px[..C - 1] {
                *v = muldiv255(u32::from(*v), alpha);
            }
        }
        let mut resized = geometry.resample::<C>(&premultiplied);
        for px in resized.chunks_exact_mut(C) {
            // Mirrors Pillow's `rgba2rgbA` / `la2lA`.
            let alpha = u32::from(px[C - 1]);
            if alpha != 0 && alpha != 255 {
                for v in &mut px[..C - 1] {
                    *v = (255 * u32::from(*v) / alpha).min(255) as u8;
                }
            }
        }
        resized
    } else {
        geometry.crop::<C>(src)
    };
    cropped
        .chunks_exact(C)
        .flat_map(|px| px[..C - 1].iter().copied())
        .collect()
}

// Mirrors Pillow's `MULDIV255`: (a * b + 127) / 255 without a division.
fn muldiv255(a: u32, b: u32) -> u8 {
    let t = a * b + 128;
    (((t >> 8) + t) >> 8) as u8
}

/// Mirrors Pillow's `l2rgb`: replicate the grey level.
fn grey_to_rgb(gray: &[u8]) -> Vec<u8> {
    gray.iter().flat_map(|&v| [v, v, v]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_matches_torchvision() {
        // int(224 * 640 / 480) = 298, left = round(37.0) = 37
        let g = Geometry::new(640, 480, 224);
        assert_eq!((g.out_w, g.out_h, g.left, g.top), (298, 224, 37, 0));
        // (225 - 224) / 2 = 0.5 rounds half-even to 0; (227 - 224) / 2 = 1.5 rounds to 2
        assert_eq!(Geometry::new(225, 224, 224).left, 0);
        assert_eq!(Geometry::new(227, 224, 224).left, 2);
        // int(224 * 2000 / 300) = int(1493.33) = 1493
        let g = Geometry::new(300, 2000, 224);
        assert_eq!((g.out_w, g.out_h, g.top), (224, 1493, 634));
        assert!(!Geometry::new(224, 301, 224).resizes());
    }

    #[test]
    fn scale_one_weights_are_identity() {
        let c = Coeffs::new(7, 7, 0, 7);
        for i in 0..7 {
            let (min, k) = c.kernel(i);
            for (j, &w) in k.iter().enumerate() {
                let expected = if min + j == i { 1 << PRECISION_BITS } else { 0 };
                assert_eq!(w, expected, "output {i}, input {}", min + j);
            }
        }
    }

    #[test]
    fn muldiv255_is_rounded_product() {
        for a in 0..=255u32 {
            for b in 0..=255u32 {
                let exact = (f64::from(a * b) / 255.0).round() as u8;
                assert_eq!(muldiv255(a, b), exact, "{a} * {b} / 255");
            }
        }
    }
}
