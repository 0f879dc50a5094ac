//! Average pooling over NHWC tensors.

use rayon::prelude::*;

use super::KernelError;

/// `AvgPool2d(k)` with kernel = stride = `k`, no padding, floor mode, as ModifiedResNet uses it
/// (`nn.AvgPool2d(stride)` in open_clip's `Bottleneck` and stem).
///
/// `input` is NHWC `[n, h, w, c]`; `out` is NHWC `[n, h / k, w / k, c]`.
#[allow(clippy::too_many_arguments)]
pub fn avg_pool2d_nhwc(
    input: &[f32],
    n: usize,
    h: usize,
    w: usize,
    c: usize,
    k: usize,
    out: &mut [f32],
) -> Result<(), KernelError> {
    if k == 0 || h < k || w < k {
        return Err(KernelError::Geometry(format!(
            "avg pool of size {k} does not fit a {h}x{w} input; the pool size must be between 1 and the input size"
        )));
    }
    let (oh, ow) = (h / k, w / k);
    if input.len() != n * h * w * c {
        return Err(KernelError::Length {
            what: "avg pool input",
            expected: n * h * w * c,
            got: input.len(),
        });
    }
    if out.len() != n * oh * ow * c {
        return Err(KernelError::Length {
            what: "avg pool output",
            expected: n * oh * ow * c,
            got: out.len(),
        });
    }
    if out.is_empty() {
        return Ok(());
    }
    let scale = 1.0 / (k * k) as f32;
    out.par_chunks_mut(ow * c).enumerate().for_each(|(r, row)| {
        let (img, oy) = (r / oh, r % oh);
        row.fill(0.0);
        for iy in oy * k..oy * k + k {
            let src = &input[(img * h + iy) * w * c..][..w * c];
            for (ox, dst) in row.chunks_exact_mut(c).enumerate() {
                for px in src[ox * k * c..][..k * c].chunks_exact(c) {
                    for (d, &s) in dst.iter_mut().zip(px) {
                        *d += s;
                    }
                }
            }
        }
        for d in row.iter_mut() {
            *d *= scale;
        }
    });
    Ok(())
}
