//! CLIP's text tower: open_clip's `TextTransformer` with OpenAI's layout (`open_clip/transformer.py`,
//! `CLIP.encode_text` in `open_clip/model.py`).

use candle_core::{Device, IndexOp, Tensor};
use candle_nn::{Linear, Module};

use crate::model::config::ModelConfig;
use crate::model::error::Error;
use crate::model::weights::{linear, Weights};

/// `nn.LayerNorm` epsilon.
const LN_EPS: f32 = 1e-5;

/// A `nn.LayerNorm` with weight and bias.
struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
}

impl LayerNorm {
    fn load(w: &Weights, dim: usize) -> Result<Self, Error> {
        Ok(Self {
            weight: w.get(&[dim], "weight")?,
            bias: w.get(&[dim], "bias")?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor, Error> {
        Ok(candle_nn::ops::layer_norm(
            x,
            &self.weight,
            &self.bias,
            LN_EPS,
        )?)
    }
}

/// Mirrors `nn.MultiheadAttention` as used by open_clip's `ResidualAttentionBlock` (packed
/// `in_proj_weight` whose rows are Q, K, V; `out_proj`).
struct SelfAttention {
    in_proj: Linear,
    out_proj: Linear,
    heads: usize,
}

impl SelfAttention {
    fn load(w: &Weights, width: usize, heads: usize) -> Result<Self, Error> {
        Ok(Self {
            in_proj: Linear::new(
                w.get(&[3 * width, width], "in_proj_weight")?,
                Some(w.get(&[3 * width], "in_proj_bias")?),
            ),
            out_proj: linear(&w.pp("out_proj"), width, width)?,
            heads,
        })
    }

    /// `x`: `[N, L, W]`; `mask`: `[L, L]` additive.
    fn forward(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor, Error> {
        let (n, l, width) = x.dims3()?;
        let head_dim = width / self.heads;
        let qkv = self.in_proj.forward(x)?; // [N, L, 3W]
        let split = |i: usize| -> candle_core::Result<Tensor> {
            qkv.narrow(2, i * width, width)?
                .reshape((n, l, self.heads, head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = (split(0)? * (head_dim as f64).powf(-0.5))?;
        let (k, v) = (split(1)?, split(2)?);
        let scores = q.matmul(&k.t()?)?.broadcast_add(mask)?;
        let attn = candle_nn::ops::softmax_last_dim(&scores)?;
        let out = attn
            .matmul(&v)? // [N, H, L, d]
            .transpose(1, 2)?
            .reshape((n, l, width))?;
        Ok(self.out_proj.forward(&out)?)
    }
}

/// Mirrors open_clip's `ResidualAttentionBlock` (pre-LN attention, then pre-LN MLP).
struct ResidualBlock {
    ln_1: LayerNorm,
    attn: SelfAttention,
    ln_2: LayerNorm,
    c_fc: Linear,
    c_proj: Linear,
    quick_gelu: bool,
}

impl ResidualBlock {
    fn load(w: &Weights, config: &ModelConfig) -> Result<Self, Error> {
        let t = &config.text_cfg;
        let hidden = config.mlp_width();
        let mlp = w.pp("mlp");
        Ok(Self {
            ln_1: LayerNorm::load(&w.pp("ln_1"), t.width)?,
            attn: SelfAttention::load(&w.pp("attn"), t.width, t.heads)?,
            ln_2: LayerNorm::load(&w.pp("ln_2"), t.width)?,
            c_fc: linear(&mlp.pp("c_fc"), t.width, hidden)?,
            c_proj: linear(&mlp.pp("c_proj"), hidden, t.width)?,
            quick_gelu: config.quick_gelu,
        })
    }

    fn forward(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor, Error> {
        let x = (x + self.attn.forward(&self.ln_1.forward(x)?, mask)?)?;
        let h = self.c_fc.forward(&self.ln_2.forward(&x)?)?;
        // open_clip's QuickGELU: x * sigmoid(1.702 x); nn.GELU is the exact (erf) form.
        let h = if self.quick_gelu {
            (&h * candle_nn::ops::sigmoid(&(&h * 1.702)?)?)?
        } else {
            h.gelu_erf()?
        };
        Ok((x + self.c_proj.forward(&h)?)?)
    }
}

/// Mirrors `open_clip.CLIP.encode_text` (without the final normalisation).
pub struct TextTower {
    token_embedding: Tensor,
    positional_embedding: Tensor,
    blocks: Vec<ResidualBlock>,
    ln_final: LayerNorm,
    /// `[width, embed_dim]`, right-multiplied.
    text_projection: Tensor,
    /// `[context, context]` additive causal mask; each batch uses its top-left corner.
    causal_mask: Tensor,
}

impl TextTower {
    /// Loads the tower from the checkpoint root (`token_embedding`, `transformer.resblocks.*`,
    /// `ln_final`, ...), sized by `config`.
    pub fn load(w: Weights, config: &ModelConfig) -> Result<Self, Error> {
        config.validate()?;
        let t = &config.text_cfg;
        let resblocks = w.pp("transformer").pp("resblocks");
        let blocks = (0..t.layers)
            .map(|i| ResidualBlock::load(&resblocks.pp(i), config))
            .collect::<Result<_, _>>()?;
        let ctx = t.context_length;
        let mask: Vec<f32> = (0..ctx * ctx)
            .map(|i| {
                if i % ctx > i / ctx {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
            .collect();
        Ok(Self {
            token_embedding: w.get(&[t.vocab_size, t.width], "token_embedding.weight")?,
            positional_embedding: w.get(&[ctx, t.width], "positional_embedding")?,
            blocks,
            ln_final: LayerNorm::load(&w.pp("ln_final"), t.width)?,
            text_projection: w.get(&[t.width, config.embed_dim], "text_projection")?,
            causal_mask: Tensor::from_vec(mask, (ctx, ctx), &Device::Cpu)?,
        })
    }

    /// Maximum tokens per text, START and END included.
    pub fn context_length(&self) -> usize {
        self.positional_embedding.dims()[0]
    }

    /// Embeds token sequences (unpadded, START..END) → `[N, embed_dim]` (not normalised).
    ///
    /// The batch runs at the length of its longest sequence: with a causal mask, the END row
    /// does not depend on the padding after it.
    pub fn forward(&self, batch: &[Vec<u32>]) -> Result<Tensor, Error> {
        let ctx = self.context_length();
        let vocab = self.token_embedding.dims()[0];
        let len = batch.iter().map(Vec::len).max().unwrap_or(0);
        if batch.is_empty() || batch.iter().any(Vec::is_empty) {
            return Err(Error::InvalidInput(
                "text batch is empty or holds an empty token sequence".to_string(),
            ));
        }
        if len > ctx {
            return Err(Error::InvalidInput(format!(
                "token sequence of length {len} exceeds the context length {ctx}"
            )));
        }
        if let Some(bad) = batch.iter().flatten().find(|&&id| id as usize >= vocab) {
            return Err(Error::InvalidInput(format!(
                "token id {bad} is outside the vocabulary of {vocab}"
            )));
        }
        let n = batch.len();
        let mut ids = vec![0u32; n * len];
        let mut eot = Vec::with_capacity(n);
        for (row, tokens) in batch.iter().enumerate() {
            ids[row * len..row * len + tokens.len()].copy_from_slice(tokens);
            // open_clip's text_global_pool('argmax'): END has the largest id; first maximum.
            let pos = tokens
                .iter()
                .enumerate()
                .fold(0, |best, (i, &id)| if id > tokens[best] { i } else { best });
            eot.push((row * len + pos) as u32);
        }
        let ids = Tensor::from_vec(ids, n * len, &Device::Cpu)?;
        let x = self
            .token_embedding
            .index_select(&ids, 0)?
            .reshape((n, len, ()))?
            .broadcast_add(&self.positional_embedding.i(..len)?)?;
        let mask = self.causal_mask.i((..len, ..len))?;
        let mut x = x;
        for block in &self.blocks {
            x = block.forward(&x, &mask)?;
        }
        let x = self.ln_final.forward(&x)?;
        let eot = Tensor::from_vec(eot, n, &Device::Cpu)?;
        let pooled = x.flatten_to(1)?.index_select(&eot, 0)?; // [N, W]
        Ok(pooled.matmul(&self.text_projection)?)
    }
}
