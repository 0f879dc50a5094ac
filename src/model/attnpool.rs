//! The image tower's last step: open_clip's `AttentionPool2d` (`open_clip/modified_resnet.py`),
//! one multi-head attention step in which only the mean of the spatial tokens is a query.
//!
//! With a single query per image, the key and value projections of every token need not be
//! computed. For head `h`, `q_h · (W_k,h x_j + b_k,h) = (q_h W_k,h) · x_j + q_h · b_k,h`: the
//! query is mapped into token space once (`q_h W_k,h`, one row through a `d×C` matrix), the
//! scores are dot products with the tokens themselves, and `q_h · b_k,h` is the same for every
//! token, so the softmax cancels it. Likewise the softmax weights sum to one, so
//! `Σ_j p_j (W_v,h x_j + b_v,h) = W_v,h (Σ_j p_j x_j) + b_v,h`: the tokens are averaged first
//! and projected once. For RN50 (50 tokens of 2048 channels, 32 heads of 64) that is ~21 M
//! multiply-adds per image instead of ~430 M, the same function up to rounding.

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use crate::kernels::{attend, Dense, Epilogue, Isa};
use crate::model::error::Error;
use crate::model::weights::{dense, Weights};

/// Mirrors `open_clip.modified_resnet.AttentionPool2d` (see the module docs for how the key
/// and value projections are reordered around the single query).
pub struct AttentionPool2d {
    isa: Isa,
    heads: usize,
    /// `[HW + 1, C]`.
    positional_embedding: Vec<f32>,
    /// `q_proj`, its weights and bias pre-scaled by `1/√d`.
    q_proj: Dense,
    /// Per head, `k_proj`'s rows of that head as a right-hand side (`d×C`): maps the head's
    /// query into token space.
    key_heads: Vec<Dense>,
    /// Per head, `v_proj`'s rows of that head as a `C → d` linear layer with its bias.
    value_heads: Vec<Dense>,
    c_proj: Dense,
}

impl AttentionPool2d {
    /// Loads `attnpool` for a `spacial_dim`² grid of `embed_dim` channels pooled to
    /// `output_dim`, packed for `isa`.
    pub fn load(
        w: &Weights,
        spacial_dim: usize,
        embed_dim: usize,
        heads: usize,
        output_dim: usize,
        isa: Isa,
    ) -> Result<Self, Error> {
        let c = embed_dim;
        let d = c / heads;
        let scale = (d as f32).powf(-0.5);
        let q = w.pp("q_proj");
        let mut q_weight = q.get_vec(&[c, c], "weight")?;
        let mut q_bias = q.get_vec(&[c], "bias")?;
        for v in q_weight.iter_mut().chain(&mut q_bias) {
            *v *= scale;
        }
        let k = w.pp("k_proj");
        // The checkpoint holds `k_proj.bias`, but it adds the same `q_h · b_k,h` to every score
        // of a head, which the softmax cancels.
        k.get(&[c], "bias")?;
        // A head's rows of a projection are `d` consecutive rows of its weight.
        let key_heads = k.with_values(&[c, c], "weight", |weight| {
            weight
                .chunks_exact(d * c)
                .map(|rows| Dense::new(isa, d, c, rows, None))
                .collect()
        })?;
        let v = w.pp("v_proj");
        let v_bias = v.get_vec(&[c], "bias")?;
        let value_heads = v.with_values(&[c, c], "weight", |weight| {
            weight
                .chunks_exact(d * c)
                .zip(v_bias.chunks_exact(d))
                .map(|(rows, bias)| Dense::from_linear(isa, rows, c, d, Some(bias.to_vec())))
                .collect()
        })?;
        Ok(Self {
            isa,
            heads,
            positional_embedding: w.get_vec(
                &[spacial_dim * spacial_dim + 1, embed_dim],
                "positional_embedding",
            )?,
            q_proj: Dense::from_linear(isa, &q_weight, c, c, Some(q_bias)),
            key_heads,
            value_heads,
            c_proj: dense(&w.pp("c_proj"), embed_dim, output_dim, isa)?,
        })
    }

    /// `tokens`: `[N, HW, C]` spatial tokens (an NHWC grid, row-major positions) →
    /// `[N, output_dim]`.
    pub fn forward(&self, tokens: &[f32], n: usize) -> Result<Tensor, Error> {
        let c = self.q_proj.k();
        let t = self.positional_embedding.len() / c; // HW + 1
        if tokens.len() != n * (t - 1) * c {
            return Err(Error::InvalidInput(format!(
                "attention pool input has {} values, expected {n} images of {} tokens of {c}",
                tokens.len(),
                t - 1
            )));
        }
        let (heads, d) = (self.heads, c / self.heads);
        // x[i, 0] is the mean token, prepended before the positional embedding is added.
        let mut x = vec![0.0f32; n * t * c];
        for (x, tokens) in x
            .chunks_exact_mut(t * c)
            .zip(tokens.chunks_exact((t - 1) * c))
        {
            let (mean, rest) = x.split_at_mut(c);
            for token in tokens.chunks_exact(c) {
                for (m, &v) in mean.iter_mut().zip(token) {
                    *m += v;
                }
            }
            let inv = 1.0 / (t - 1) as f32;
            mean.iter_mut().for_each(|m| *m *= inv);
            rest.copy_from_slice(tokens);
            for (v, &p) in x.iter_mut().zip(&self.positional_embedding) {
                *v += p;
            }
        }
        let query: Vec<f32> = x
            .chunks_exact(t * c)
            .flat_map(|x| &x[..c])
            .copied()
            .collect();
        let mut q = vec![0.0; n * c];
        self.q_proj.forward(n, &query, &mut q, Epilogue::Store);
        // One task per head: its query in token space, the softmax-weighted token mean per
        // image, then that mean through the head's value rows.
        let per_head: Vec<Vec<f32>> = (0..heads)
            .into_par_iter()
            .map(|h| {
                let q_h: Vec<f32> = q
                    .chunks_exact(c)
                    .flat_map(|q| &q[h * d..][..d])
                    .copied()
                    .collect();
                let mut q_tokens = vec![0.0; n * c];
                self.key_heads[h].forward_here(n, &q_h, &mut q_tokens, Epilogue::Store);
                let mut mean = vec![0.0; n * c];
                let mut scores = vec![0.0; t];
                self.isa.run(|| {
                    for ((q, x), mean) in q_tokens
                        .chunks_exact(c)
                        .zip(x.chunks_exact(t * c))
                        .zip(mean.chunks_exact_mut(c))
                    {
                        let token = |j: usize| &x[j * c..(j + 1) * c];
                        attend(q, t, token, token, &mut scores, mean);
                    }
                });
                let mut out = vec![0.0; n * d];
                self.value_heads[h].forward_here(n, &mean, &mut out, Epilogue::Store);
                out
            })
            .collect();
        let mut heads_out = vec![0.0; n * c];
        for (h, out) in per_head.iter().enumerate() {
            for (dst, src) in heads_out.chunks_exact_mut(c).zip(out.chunks_exact(d)) {
                dst[h * d..(h + 1) * d].copy_from_slice(src);
            }
        }
        let out_dim = self.c_proj.n();
        let mut pooled = vec![0.0; n * out_dim];
        self.c_proj
            .forward(n, &heads_out, &mut pooled, Epilogue::Store);
        Ok(Tensor::from_vec(pooled, (n, out_dim), &Device::Cpu)?)
    }
}
