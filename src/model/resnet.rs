//! CLIP's image tower: open_clip's `ModifiedResNet` (`open_clip/modified_resnet.py`).
//!
//! BatchNorm is folded into the preceding convolution at load time, so every conv here is one
//! [`ConvBn`]: convolution, per-channel bias, optional ReLU.

use candle_core::Tensor;
use candle_nn::{Linear, Module};

use crate::model::config::ModelConfig;
use crate::model::error::Error;
use crate::model::weights::Weights;

/// BatchNorm epsilon of `nn.BatchNorm2d`.
const BN_EPS: f64 = 1e-5;

/// Channel growth of a bottleneck's last 1x1 conv (`Bottleneck.expansion`).
const EXPANSION: usize = 4;

/// A bias-free convolution followed by an eval-mode BatchNorm, folded into one conv with bias.
pub struct ConvBn {
    /// `[out, in, k, k]`, contiguous.
    weight: Tensor,
    /// `[1, out, 1, 1]`, ready to broadcast over NCHW.
    bias: Tensor,
    padding: usize,
    stride: usize,
}

impl ConvBn {
    /// Loads `conv` (`<conv>.weight`) and `bn` (`<bn>.{weight,bias,running_mean,running_var}`)
    /// and folds them: `w' = w * g / sqrt(var + eps)`, `b' = beta - mean * g / sqrt(var + eps)`.
    fn load(
        conv: Weights,
        bn: Weights,
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
    ) -> Result<Self, Error> {
        let weight = conv.get(&[out_channels, in_channels, kernel, kernel], "weight")?;
        let gamma = bn.get(&[out_channels], "weight")?;
        let beta = bn.get(&[out_channels], "bias")?;
        let mean = bn.get(&[out_channels], "running_mean")?;
        let var = bn.get(&[out_channels], "running_var")?;
        let scale = gamma.div(&(var + BN_EPS)?.sqrt()?)?;
        let weight = weight
            .broadcast_mul(&scale.reshape((out_channels, 1, 1, 1))?)?
            .contiguous()?;
        let bias = beta
            .sub(&mean.mul(&scale)?)?
            .reshape((1, out_channels, 1, 1))?
            .contiguous()?;
        Ok(Self {
            weight,
            bias,
            padding: kernel / 2,
            stride,
        })
    }

    /// Convolution + folded bias (+ ReLU): the one step a faster conv kernel replaces.
    fn forward(&self, x: &Tensor, relu: bool) -> Result<Tensor, Error> {
        let y = x
            .conv2d(&self.weight, self.padding, self.stride, 1, 1)?
            .broadcast_add(&self.bias)?;
        Ok(if relu { y.relu()? } else { y })
    }
}

/// `nn.AvgPool2d(k)` (stride = kernel); identity for `k == 1`.
fn avg_pool(x: &Tensor, k: usize) -> Result<Tensor, Error> {
    Ok(if k > 1 { x.avg_pool2d(k)? } else { x.clone() })
}

/// The three-conv stem: mirrors the first half of `ModifiedResNet.forward` (`stem`).
pub struct Stem {
    conv1: ConvBn,
    conv2: ConvBn,
    conv3: ConvBn,
}

impl Stem {
    /// Loads `conv{1,2,3}` and `bn{1,2,3}` under `w` (the `visual.` root).
    pub fn load(w: &Weights, width: usize) -> Result<Self, Error> {
        let half = width / 2;
        Ok(Self {
            conv1: ConvBn::load(w.pp("conv1"), w.pp("bn1"), 3, half, 3, 2)?,
            conv2: ConvBn::load(w.pp("conv2"), w.pp("bn2"), half, half, 3, 1)?,
            conv3: ConvBn::load(w.pp("conv3"), w.pp("bn3"), half, width, 3, 1)?,
        })
    }

    /// `[N, 3, S, S]` → `[N, width, S/4, S/4]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor, Error> {
        let x = self.conv1.forward(x, true)?;
        let x = self.conv2.forward(&x, true)?;
        let x = self.conv3.forward(&x, true)?;
        // AvgPool2d(2), not the max-pool of torchvision's ResNet.
        avg_pool(&x, 2)
    }
}

/// Mirrors `open_clip.modified_resnet.Bottleneck`: every conv has stride 1; a stride > 1 is an
/// average pool after conv2 (and before the downsample conv).
pub struct Bottleneck {
    conv1: ConvBn,
    conv2: ConvBn,
    conv3: ConvBn,
    /// `downsample.0` (conv) + `downsample.1` (BN), present when the block changes shape.
    downsample: Option<ConvBn>,
    stride: usize,
}

impl Bottleneck {
    /// Loads one block under `w` (e.g. `visual.layer2.0`).
    pub fn load(w: &Weights, inplanes: usize, planes: usize, stride: usize) -> Result<Self, Error> {
        let out = planes * EXPANSION;
        let downsample = if stride > 1 || inplanes != out {
            let d = w.pp("downsample");
            Some(ConvBn::load(d.pp(0), d.pp(1), inplanes, out, 1, 1)?)
        } else {
            None
        };
        Ok(Self {
            conv1: ConvBn::load(w.pp("conv1"), w.pp("bn1"), inplanes, planes, 1, 1)?,
            conv2: ConvBn::load(w.pp("conv2"), w.pp("bn2"), planes, planes, 3, 1)?,
            conv3: ConvBn::load(w.pp("conv3"), w.pp("bn3"), planes, out, 1, 1)?,
            downsample,
            stride,
        })
    }

    /// `[N, inplanes, H, W]` → `[N, 4 * planes, H / stride, W / stride]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor, Error> {
        let out = self.conv1.forward(x, true)?;
        let out = self.conv2.forward(&out, true)?;
        let out = avg_pool(&out, self.stride)?;
        let out = self.conv3.forward(&out, false)?;
        let identity = match &self.downsample {
            Some(down) => down.forward(&avg_pool(x, self.stride)?, false)?,
            None => x.clone(),
        };
        Ok((out + identity)?.relu()?)
    }
}

/// Mirrors `open_clip.modified_resnet.AttentionPool2d`: one attention step in which only the
/// mean of the spatial tokens queries them all.
pub struct AttentionPool2d {
    /// `[HW + 1, C]`.
    positional_embedding: Tensor,
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    c_proj: Linear,
    heads: usize,
}

/// A `nn.Linear` with bias, loaded under `w`.
pub(crate) fn linear(w: &Weights, in_dim: usize, out_dim: usize) -> Result<Linear, Error> {
    Ok(Linear::new(
        w.get(&[out_dim, in_dim], "weight")?,
        Some(w.get(&[out_dim], "bias")?),
    ))
}

impl AttentionPool2d {
    /// Loads `attnpool` for a `spacial_dim`² grid of `embed_dim` channels pooled to `output_dim`.
    pub fn load(
        w: &Weights,
        spacial_dim: usize,
        embed_dim: usize,
        heads: usize,
        output_dim: usize,
    ) -> Result<Self, Error> {
        Ok(Self {
            positional_embedding: w.get(
                &[spacial_dim * spacial_dim + 1, embed_dim],
                "positional_embedding",
            )?,
            q_proj: linear(&w.pp("q_proj"), embed_dim, embed_dim)?,
            k_proj: linear(&w.pp("k_proj"), embed_dim, embed_dim)?,
            v_proj: linear(&w.pp("v_proj"), embed_dim, embed_dim)?,
            c_proj: linear(&w.pp("c_proj"), embed_dim, output_dim)?,
            heads,
        })
    }

    /// `[N, C, H, W]` → `[N, output_dim]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor, Error> {
        let (n, c, h, w) = x.dims4()?;
        let tokens = x.reshape((n, c, h * w))?.transpose(1, 2)?; // [N, HW, C]
                                                                 // The mean token is prepended before the positional embedding is added.
        let mean = tokens.mean_keepdim(1)?;
        let x = Tensor::cat(&[&mean, &tokens], 1)?.broadcast_add(&self.positional_embedding)?;
        let t = h * w + 1;
        let head_dim = c / self.heads;
        let split = |y: Tensor, len: usize| -> candle_core::Result<Tensor> {
            y.reshape((n, len, self.heads, head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        // Only the output at the mean token is returned, so it is the only query computed.
        let query = x.narrow(1, 0, 1)?.contiguous()?;
        let q = (self.q_proj.forward(&query)? * (head_dim as f64).powf(-0.5))?;
        let q = split(q, 1)?; // [N, heads, 1, d]
        let k = split(self.k_proj.forward(&x)?, t)?; // [N, heads, T, d]
        let v = split(self.v_proj.forward(&x)?, t)?;
        let attn = candle_nn::ops::softmax_last_dim(&q.matmul(&k.t()?)?)?;
        let out = attn.matmul(&v)?.reshape((n, c))?; // [N, heads, 1, d] → [N, C]
        Ok(self.c_proj.forward(&out)?)
    }
}

/// Mirrors `open_clip.modified_resnet.ModifiedResNet`: stem, four bottleneck stages, attention
/// pool.
pub struct ImageTower {
    stem: Stem,
    stages: Vec<Vec<Bottleneck>>,
    attnpool: AttentionPool2d,
    image_size: usize,
}

impl ImageTower {
    /// Loads the tower under `w` (the `visual` prefix), sized by `config`.
    pub fn load(w: Weights, config: &ModelConfig) -> Result<Self, Error> {
        config.validate()?;
        let width = config.vision_cfg.width;
        let image_size = config.image_size();
        let stem = Stem::load(&w, width)?;
        // Mirrors `ModifiedResNet._make_layer`: the first block of each stage changes shape.
        let mut inplanes = width;
        let mut stages = Vec::with_capacity(4);
        for (i, &blocks) in config.stage_blocks().iter().enumerate() {
            let planes = width << i;
            let layer = w.pp(format!("layer{}", i + 1));
            let mut stage = Vec::with_capacity(blocks);
            for b in 0..blocks {
                let stride = if i > 0 && b == 0 { 2 } else { 1 };
                stage.push(Bottleneck::load(&layer.pp(b), inplanes, planes, stride)?);
                inplanes = planes * EXPANSION;
            }
            stages.push(stage);
        }
        let embed_dim = width * 32;
        let attnpool = AttentionPool2d::load(
            &w.pp("attnpool"),
            image_size / 32,
            embed_dim,
            embed_dim / config.vision_cfg.head_width,
            config.embed_dim,
        )?;
        Ok(Self {
            stem,
            stages,
            attnpool,
            image_size,
        })
    }

    /// Side of the square input.
    pub fn image_size(&self) -> usize {
        self.image_size
    }

    /// `[N, 3, S, S]` normalised pixels → `[N, embed_dim]` (not normalised).
    pub fn forward(&self, pixels: &Tensor) -> Result<Tensor, Error> {
        let mut x = self.stem.forward(pixels)?;
        for block in self.stages.iter().flatten() {
            x = block.forward(&x)?;
        }
        self.attnpool.forward(&x)
    }
}
