//! Fast f32 convolution kernels for the RN50 image tower, over NHWC tensors.
//!
//! [`Conv2d`] packs BatchNorm-folded OIHW weights once and runs `act(conv(x) + bias + residual)`
//! in one output pass: 1×1 convolutions are GEMMs straight over the input, 3×3 stride-1
//! convolutions use Winograd F(4×4, 3×3) (multiplied position by position across the whole
//! call at 256+ channels, where the transformed filters outgrow L2), anything else (the
//! stride-2 stem) a direct convolution whose GEMM reads overlapping windows of the input
//! (`direct.rs`). GEMMs run on our own packed SGEMM (`gemm.rs`: weights packed once into
//! 16-wide panels, a 14×16 AVX-512 or 6×16 AVX2 + FMA microkernel with the epilogue fused into
//! its store); the Winograd transforms are written once over 8- or 16-lane vectors and
//! compiled for AVX2 + FMA or AVX-512 when the CPU has them ([`Isa`]).
//!
//! ```
//! use xsearch::kernels::{Conv2d, ConvShape};
//!
//! // 3x3, 2 -> 1 channels, padding 1: sums a 3x3 neighbourhood of both channels.
//! let shape = ConvShape { out_c: 1, in_c: 2, kh: 3, kw: 3, stride: 1, padding: 1 };
//! let conv = Conv2d::new(&[1.0; 18], &[0.5], shape)?;
//! let input = vec![1.0; 4 * 4 * 2]; // NHWC [1, 4, 4, 2]
//! let mut out = vec![0.0; 4 * 4];
//! conv.forward(&input, 1, 4, 4, None, true, &mut out)?;
//! assert_eq!(out[0], 8.5); // a corner sees 2x2 pixels x 2 channels, plus the bias
//! assert_eq!(out[5], 18.5); // an interior pixel sees 3x3 x 2
//! # Ok::<(), xsearch::kernels::KernelError>(())
//! ```

mod attention;
mod conv;
mod dense;
mod direct;
mod gemm;
mod norm;
mod pass;
mod pool;
mod scratch;
mod simd;
mod vecmath;
mod winograd;

#[cfg(test)]
mod tests;

pub(crate) use attention::{attend, causal_self_attention};
pub use conv::{Algorithm, Conv2d, ConvShape};
pub(crate) use dense::{Dense, Epilogue};
pub(crate) use norm::LayerNorm;
pub use pool::avg_pool2d_nhwc;
pub use simd::Isa;

/// Why a kernel refused its arguments.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// A buffer or weight tensor has the wrong number of values.
    #[error(
        "{what} has {got} values, expected {expected}; check the tensor's shape against the layer"
    )]
    Length {
        /// Which buffer, e.g. `conv weight`.
        what: &'static str,
        /// What the layer's shape implies.
        expected: usize,
        /// What was passed.
        got: usize,
    },
    /// The layer's geometry cannot work (zero sizes, kernel larger than the input, an
    /// algorithm that does not apply).
    #[error("{0}")]
    Geometry(String),
}
