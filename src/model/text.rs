//! CLIP's text tower: open_clip's `TextTransformer` with OpenAI's layout (`open_clip/transformer.py`,
//! `CLIP.encode_text` in `open_clip/model.py`), run on [`crate::kernels`].
//!
//! Every projection is a [`Dense`] layer packed once at load (bias fused, the attention's
//! `1/√d` folded into the query rows); attention is one fused pass per query and head with the
//! causal mask as its loop bound; LayerNorm and QuickGELU run in the passes that produce their
//! input. A forward pass keeps its activations in one `Arena`.

use candle_core::{Device, Tensor};

use crate::kernels::{causal_self_attention, Dense, Epilogue, Isa, LayerNorm};
use crate::model::config::ModelConfig;
use crate::model::error::Error;
use crate::model::weights::{dense, Weights};

/// `nn.LayerNorm` epsilon.
const LN_EPS: f32 = 1e-5;

/// Loads a `nn.LayerNorm` (`weight`, `bias`) of `width` under `w`.
fn layer_norm(w: &Weights, width: usize) -> Result<LayerNorm, Error> {
    Ok(LayerNorm::new(
        w.get_vec(&[width], "weight")?,
        w.get_vec(&[width], "bias")?,
        LN_EPS,
    ))
}

/// Rows `rows` of the row-major `x` (`width` wide), in that order.
fn gather_rows(x: &[f32], width: usize, rows: &[usize]) -> Vec<f32> {
    rows.iter()
        .flat_map(|&r| &x[r * width..(r + 1) * width])
        .copied()
        .collect()
}

/// The activations of one forward pass over `rows` positions.
struct Arena {
    /// The residual stream, `[rows, width]`; the last block leaves only the END rows.
    x: Vec<f32>,
    /// A LayerNorm's output, `[rows, width]`.
    normed: Vec<f32>,
    /// `[rows, 3·width]`.
    qkv: Vec<f32>,
    /// The attention's output, `[rows, width]`.
    attn: Vec<f32>,
    /// The MLP's hidden layer, `[rows, mlp_width]`.
    hidden: Vec<f32>,
}

/// Mirrors open_clip's `ResidualAttentionBlock` (pre-LN attention, then pre-LN MLP) with
/// `nn.MultiheadAttention`'s packed `in_proj_weight`, whose rows are Q, K, V.
struct ResidualBlock {
    ln_1: LayerNorm,
    /// `in_proj`, with the query rows (weights and bias) pre-scaled by `1/√d`.
    qkv: Dense,
    out_proj: Dense,
    ln_2: LayerNorm,
    c_fc: Dense,
    c_proj: Dense,
    /// QuickGELU (`quick_gelu`, OpenAI weights) or the erf GELU, fused into `c_fc`.
    activation: Epilogue,
}

impl ResidualBlock {
    fn load(w: &Weights, config: &ModelConfig, isa: Isa) -> Result<Self, Error> {
        let t = &config.text_cfg;
        let (width, hidden) = (t.width, config.mlp_width());
        let attn = w.pp("attn");
        let mut in_proj = attn.get_vec(&[3 * width, width], "in_proj_weight")?;
        let mut in_bias = attn.get_vec(&[3 * width], "in_proj_bias")?;
        // Scaling q here instead of the scores: the same product (1/√d is a power of two for
        // every CLIP head width), no pass at run time.
        let scale = ((width / t.heads) as f32).powf(-0.5);
        for v in in_proj[..width * width]
            .iter_mut()
            .chain(&mut in_bias[..width])
        {
            *v *= scale;
        }
        let mlp = w.pp("mlp");
        Ok(Self {
            ln_1: layer_norm(&w.pp("ln_1"), width)?,
            qkv: Dense::from_linear(isa, &in_proj, width, 3 * width, Some(in_bias)),
            out_proj: dense(&attn.pp("out_proj"), width, width, isa)?,
            ln_2: layer_norm(&w.pp("ln_2"), width)?,
            c_fc: dense(&mlp.pp("c_fc"), width, hidden, isa)?,
            c_proj: dense(&mlp.pp("c_proj"), hidden, width, isa)?,
            activation: if config.quick_gelu {
                Epilogue::QuickGelu
            } else {
                Epilogue::Gelu
            },
        })
    }

    /// Runs the block on `a.x` (sequences of `len` positions, `heads` heads). `queries` are the
    /// rows whose outputs are needed: every row in order, or, in the last block, the END rows
    /// only, whose attention still reads every earlier position; `a.x` then keeps only those.
    fn forward(&self, isa: Isa, len: usize, heads: usize, queries: &[usize], a: &mut Arena) {
        let width = self.ln_1.width();
        let rows = a.x.len() / width;
        let normed = &mut a.normed[..rows * width];
        self.ln_1.forward(isa, &a.x, normed);
        let qkv = &mut a.qkv[..rows * 3 * width];
        self.qkv.forward(rows, normed, qkv, Epilogue::Store);
        let q = queries.len();
        let attn = &mut a.attn[..q * width];
        causal_self_attention(isa, qkv, len, heads, queries, attn);
        if q < rows {
            a.x = gather_rows(&a.x, width, queries);
        }
        self.out_proj.forward(q, attn, &mut a.x, Epilogue::Add);
        let normed = &mut a.normed[..q * width];
        self.ln_2.forward(isa, &a.x, normed);
        let hidden = &mut a.hidden[..q * self.c_fc.n()];
        self.c_fc.forward(q, normed, hidden, self.activation);
        self.c_proj.forward(q, hidden, &mut a.x, Epilogue::Add);
    }
}

/// Mirrors `open_clip.CLIP.encode_text` (without the final normalisation).
pub struct TextTower {
    isa: Isa,
    heads: usize,
    width: usize,
    /// `[vocab, width]`, kept as loaded: a pass reads only its tokens' rows, and copying
    /// 100 MB into a vector would add to every query's load time.
    token_embedding: Tensor,
    /// `[context, width]`.
    positional_embedding: Vec<f32>,
    blocks: Vec<ResidualBlock>,
    ln_final: LayerNorm,
    /// `text_projection` (`[width, embed_dim]`, right-multiplied, no bias).
    text_projection: Dense,
}

impl TextTower {
    /// Loads the tower from the checkpoint root (`token_embedding`, `transformer.resblocks.*`,
    /// `ln_final`, ...), sized by `config`, with the best kernels this CPU runs.
    pub fn load(w: Weights, config: &ModelConfig) -> Result<Self, Error> {
        Self::load_with_isa(w, config, Isa::detect())
    }

    /// [`TextTower::load`] with the kernels compiled for `isa`; tests pass [`Isa::portable`] to
    /// run the fallback path on any CPU.
    pub fn load_with_isa(w: Weights, config: &ModelConfig, isa: Isa) -> Result<Self, Error> {
        config.validate()?;
        let t = &config.text_cfg;
        let resblocks = w.pp("transformer").pp("resblocks");
        let blocks = (0..t.layers)
            .map(|i| ResidualBlock::load(&resblocks.pp(i), config, isa))
            .collect::<Result<_, _>>()?;
        let ctx = t.context_length;
        let projection = w.get_vec(&[t.width, config.embed_dim], "text_projection")?;
        Ok(Self {
            isa,
            heads: t.heads,
            width: t.width,
            token_embedding: w.get(&[t.vocab_size, t.width], "token_embedding.weight")?,
            positional_embedding: w.get_vec(&[ctx, t.width], "positional_embedding")?,
            blocks,
            ln_final: layer_norm(&w.pp("ln_final"), t.width)?,
            text_projection: Dense::new(isa, t.width, config.embed_dim, &projection, None),
        })
    }

    /// Maximum tokens per text, START and END included.
    pub fn context_length(&self) -> usize {
        self.positional_embedding.len() / self.width
    }

    /// Embeds token sequences (unpadded, START..END) → `[N, embed_dim]` (not normalised).
    ///
    /// The batch runs at the length of its longest sequence: with a causal mask, the END row
    /// does not depend on the padding after it. The last block computes only the END rows.
    pub fn forward(&self, batch: &[Vec<u32>]) -> Result<Tensor, Error> {
        let ctx = self.context_length();
        let width = self.width;
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
        let (n, rows) = (batch.len(), batch.len() * len);
        // Padding positions embed token 0, as open_clip's padded batch does.
        let mut ids = vec![0u32; rows];
        let mut eot = Vec::with_capacity(n);
        for (seq, tokens) in batch.iter().enumerate() {
            ids[seq * len..seq * len + tokens.len()].copy_from_slice(tokens);
            // open_clip's text_global_pool('argmax'): END has the largest id; first maximum.
            let end = tokens
                .iter()
                .enumerate()
                .fold(0, |best, (i, &id)| if id > tokens[best] { i } else { best });
            eot.push(seq * len + end);
        }
        let ids = Tensor::from_vec(ids, rows, &Device::Cpu)?;
        let mut x = self
            .token_embedding
            .index_select(&ids, 0)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let positions = &self.positional_embedding[..len * width];
        for row in x.chunks_exact_mut(len * width) {
            for (v, &p) in row.iter_mut().zip(positions) {
                *v += p;
            }
        }
        let hidden = self.blocks.first().map_or(0, |b| b.c_fc.n());
        let mut arena = Arena {
            x,
            normed: vec![0.0; rows * width],
            qkv: vec![0.0; rows * 3 * width],
            attn: vec![0.0; rows * width],
            hidden: vec![0.0; rows * hidden],
        };
        let every: Vec<usize> = (0..rows).collect();
        for (i, block) in self.blocks.iter().enumerate() {
            let queries = if i + 1 == self.blocks.len() {
                &eot
            } else {
                &every
            };
            block.forward(self.isa, len, self.heads, queries, &mut arena);
        }
        if self.blocks.is_empty() {
            arena.x = gather_rows(&arena.x, width, &eot);
        }
        let normed = &mut arena.normed[..n * width];
        self.ln_final.forward(self.isa, &arena.x, normed);
        let embed_dim = self.text_projection.n();
        let mut out = vec![0.0; n * embed_dim];
        self.text_projection
            .forward(n, normed, &mut out, Epilogue::Store);
        Ok(Tensor::from_vec(out, (n, embed_dim), &Device::Cpu)?)
    }
}
