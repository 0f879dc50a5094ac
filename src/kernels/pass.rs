//! What one convolution pass works on, shared by the im2col and pointwise paths (`conv.rs`)
//! and the Winograd path (`winograd.rs`), which `conv.rs` dispatches to.

/// Batch and spatial sizes of one `forward` call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geometry {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub oh: usize,
    pub ow: usize,
}

/// What the output pass adds after the convolution sum.
#[derive(Clone, Copy)]
pub(crate) struct Epilogue<'a> {
    pub bias: &'a [f32],
    /// Same layout and length as the whole output.
    pub residual: Option<&'a [f32]>,
    pub relu: bool,
}
