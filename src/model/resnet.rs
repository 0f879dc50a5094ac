//! CLIP's image tower: open_clip's `ModifiedResNet` (`open_clip/modified_resnet.py`), run on
//! [`crate::kernels`] over NHWC activations.
//!
//! BatchNorm is folded into the preceding convolution at load and the result packed once into a
//! [`Conv2d`]. A forward pass turns the NCHW pixels into NHWC once, runs the stem and every
//! bottleneck in one `Arena` of reused buffers, and hands the final `[N, H·W, C]` grid, which
//! is already the attention pool's token layout, to the attention pool (`attnpool.rs`).

use std::sync::Mutex;

use candle_core::Tensor;

use crate::kernels::{avg_pool2d_nhwc, Conv2d, ConvShape, Isa};
use crate::model::attnpool::AttentionPool2d;
use crate::model::config::ModelConfig;
use crate::model::error::Error;
use crate::model::weights::Weights;

/// One bottleneck where `ModifiedResNet._make_layer` puts it: the first block of each stage
/// after the first halves the grid, and the first of every stage changes the channel count.
struct BlockPlan {
    stage: usize,
    block: usize,
    inplanes: usize,
    planes: usize,
    stride: usize,
}

/// Every bottleneck of the tower `config` describes, stage by stage: the one walk of the
/// architecture that loading ([`ImageTower::load`]) and the layer table ([`tower_convs`])
/// share.
fn block_plan(config: &ModelConfig) -> Vec<BlockPlan> {
    let width = config.vision_cfg.width;
    let mut inplanes = width;
    let mut plan = Vec::new();
    for (stage, &blocks) in config.stage_blocks().iter().enumerate() {
        let planes = width << stage;
        for block in 0..blocks {
            let stride = if stage > 0 && block == 0 { 2 } else { 1 };
            plan.push(BlockPlan {
                stage,
                block,
                inplanes,
                planes,
                stride,
            });
            inplanes = planes * EXPANSION;
        }
    }
    plan
}

/// One distinct convolution of the image tower and how many times a forward pass runs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TowerConv {
    /// Where it sits, e.g. `stem.conv1`, `layer2.0` or `layer2.1-3`.
    pub name: String,
    /// Its geometry.
    pub shape: ConvShape,
    /// Input height and width (square).
    pub size: usize,
    /// Occurrences per image.
    pub count: usize,
}

/// Every distinct convolution of the image tower `config` describes, derived from the same
/// walk of the architecture as loading: the stem's three convs, then per block a 1x1 reduce,
/// a stride-1 3x3, the 1x1 expand after the pool and, where the block changes shape, the 1x1
/// downsample; repeated blocks of a stage are counted, not listed. For benchmarks and
/// throughput predictions of the kernels.
pub fn tower_convs(config: &ModelConfig) -> Result<Vec<TowerConv>, Error> {
    config.validate()?;
    let conv = ConvShape::square;
    let (width, size) = (config.vision_cfg.width, config.image_size());
    let half = width / 2;
    let mut convs = vec![
        ("stem.conv1".to_string(), conv(half, 3, 3, 2, 1), size),
        (
            "stem.conv2".to_string(),
            conv(half, half, 3, 1, 1),
            size / 2,
        ),
        (
            "stem.conv3".to_string(),
            conv(width, half, 3, 1, 1),
            size / 2,
        ),
    ];
    let mut grid = size / 4; // the stem's 2x2 average pool after its stride-2 conv
    let blocks = config.stage_blocks();
    for b in block_plan(config) {
        let name = match (b.block, blocks[b.stage]) {
            (0, _) => format!("layer{}.0", b.stage + 1),
            (_, n) => format!("layer{}.1-{}", b.stage + 1, n - 1),
        };
        let (out, expand) = (grid / b.stride, b.planes * EXPANSION);
        convs.push((name.clone(), conv(b.planes, b.inplanes, 1, 1, 0), grid));
        convs.push((name.clone(), conv(b.planes, b.planes, 3, 1, 1), grid));
        convs.push((name.clone(), conv(expand, b.planes, 1, 1, 0), out));
        if b.stride > 1 || b.inplanes != expand {
            convs.push((name, conv(expand, b.inplanes, 1, 1, 0), out));
        }
        grid = out;
    }
    let mut table: Vec<TowerConv> = Vec::new();
    for (name, shape, size) in convs {
        match table
            .iter_mut()
            .find(|t| t.name == name && t.shape == shape && t.size == size)
        {
            Some(seen) => seen.count += 1,
            None => table.push(TowerConv {
                name,
                shape,
                size,
                count: 1,
            }),
        }
    }
    Ok(table)
}

/// BatchNorm epsilon of `nn.BatchNorm2d`.
const BN_EPS: f64 = 1e-5;

/// Channel growth of a bottleneck's last 1x1 conv (`Bottleneck.expansion`).
const EXPANSION: usize = 4;

/// The size of an NHWC activation.
#[derive(Clone, Copy, Debug)]
struct Grid {
    n: usize,
    h: usize,
    w: usize,
    c: usize,
}

impl Grid {
    fn len(self) -> usize {
        self.n * self.h * self.w * self.c
    }
}

/// The first `len` floats of `buf`, which grows (zero-filled) when it is shorter. Buffers only
/// grow, so a pass allocates only while its activations are still getting bigger.
fn slot(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    &mut buf[..len]
}

/// The activation buffers of one forward pass, reused layer after layer.
#[derive(Default)]
struct Arena {
    /// The current block's input (the stem's: the pixels).
    input: Vec<f32>,
    /// The current block's output; swapped with `input` after each block.
    output: Vec<f32>,
    /// conv1's output, then the pooled conv2 output.
    mid1: Vec<f32>,
    /// conv2's output; before that, the pooled input of the downsample branch.
    mid2: Vec<f32>,
    /// The downsample branch's output: the residual of a block that changes shape.
    residual: Vec<f32>,
}

impl Arena {
    /// The block's output becomes the next block's input.
    fn advance(&mut self) {
        std::mem::swap(&mut self.input, &mut self.output);
    }
}

/// `nn.AvgPool2d(k)` (stride = kernel) from `x` into `out`.
fn avg_pool(x: &[f32], g: Grid, k: usize, out: &mut Vec<f32>) -> Result<Grid, Error> {
    let pooled = Grid {
        h: g.h / k,
        w: g.w / k,
        ..g
    };
    avg_pool2d_nhwc(x, g.n, g.h, g.w, g.c, k, slot(out, pooled.len()))?;
    Ok(pooled)
}

/// A bias-free convolution followed by an eval-mode BatchNorm, folded into one packed conv with
/// bias.
pub struct ConvBn {
    conv: Conv2d,
}

impl ConvBn {
    /// Loads `conv` (`<conv>.weight`) and `bn` (`<bn>.{weight,bias,running_mean,running_var}`),
    /// folds them (`w' = w * g / sqrt(var + eps)`, `b' = beta - mean * g / sqrt(var + eps)`) and
    /// packs the result for `isa`.
    fn load(
        conv: Weights,
        bn: Weights,
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        isa: Isa,
    ) -> Result<Self, Error> {
        let weight = conv.get(&[out_channels, in_channels, kernel, kernel], "weight")?;
        let gamma = bn.get(&[out_channels], "weight")?;
        let beta = bn.get(&[out_channels], "bias")?;
        let mean = bn.get(&[out_channels], "running_mean")?;
        let var = bn.get(&[out_channels], "running_var")?;
        let scale = gamma.div(&(var + BN_EPS)?.sqrt()?)?;
        let weight = weight.broadcast_mul(&scale.reshape((out_channels, 1, 1, 1))?)?;
        let bias = beta.sub(&mean.mul(&scale)?)?;
        let shape = ConvShape::square(out_channels, in_channels, kernel, stride, kernel / 2);
        let conv = Conv2d::new(
            &weight.flatten_all()?.to_vec1::<f32>()?,
            &bias.to_vec1::<f32>()?,
            shape,
        )?;
        Ok(Self {
            conv: conv.with_isa(isa),
        })
    }

    /// `out = act(conv(x) + bias + residual)`, ReLU if `relu`; returns the output's size.
    fn forward(
        &self,
        x: &[f32],
        g: Grid,
        residual: Option<&[f32]>,
        relu: bool,
        out: &mut Vec<f32>,
    ) -> Result<Grid, Error> {
        let s = self.conv.shape();
        // A kernel that does not fit gives (0, 0) here and a geometry error from `forward`.
        let (h, w) = s.output_size(g.h, g.w).unwrap_or_default();
        let result = Grid {
            n: g.n,
            h,
            w,
            c: s.out_c,
        };
        self.conv
            .forward(x, g.n, g.h, g.w, residual, relu, slot(out, result.len()))?;
        Ok(result)
    }
}

/// The three-conv stem: mirrors the first half of `ModifiedResNet.forward` (`stem`).
pub struct Stem {
    conv1: ConvBn,
    conv2: ConvBn,
    conv3: ConvBn,
}

impl Stem {
    /// Loads `conv{1,2,3}` and `bn{1,2,3}` under `w` (the `visual.` root), packed for `isa`.
    pub fn load(w: &Weights, width: usize, isa: Isa) -> Result<Self, Error> {
        let half = width / 2;
        Ok(Self {
            conv1: ConvBn::load(w.pp("conv1"), w.pp("bn1"), 3, half, 3, 2, isa)?,
            conv2: ConvBn::load(w.pp("conv2"), w.pp("bn2"), half, half, 3, 1, isa)?,
            conv3: ConvBn::load(w.pp("conv3"), w.pp("bn3"), half, width, 3, 1, isa)?,
        })
    }

    /// `arena.input` `[N, S, S, 3]` → `arena.input` `[N, S/4, S/4, width]`.
    fn forward(&self, g: Grid, arena: &mut Arena) -> Result<Grid, Error> {
        let Arena {
            input,
            output,
            mid1,
            mid2,
            ..
        } = arena;
        let g = self.conv1.forward(&input[..g.len()], g, None, true, mid1)?;
        let g = self.conv2.forward(&mid1[..g.len()], g, None, true, mid2)?;
        let g = self
            .conv3
            .forward(&mid2[..g.len()], g, None, true, output)?;
        // AvgPool2d(2), not the max-pool of torchvision's ResNet.
        avg_pool(&output[..g.len()], g, 2, input)
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
    /// Loads one block under `w` (e.g. `visual.layer2.0`), packed for `isa`.
    pub fn load(
        w: &Weights,
        inplanes: usize,
        planes: usize,
        stride: usize,
        isa: Isa,
    ) -> Result<Self, Error> {
        let out = planes * EXPANSION;
        let downsample = if stride > 1 || inplanes != out {
            let d = w.pp("downsample");
            Some(ConvBn::load(d.pp(0), d.pp(1), inplanes, out, 1, 1, isa)?)
        } else {
            None
        };
        Ok(Self {
            conv1: ConvBn::load(w.pp("conv1"), w.pp("bn1"), inplanes, planes, 1, 1, isa)?,
            conv2: ConvBn::load(w.pp("conv2"), w.pp("bn2"), planes, planes, 3, 1, isa)?,
            conv3: ConvBn::load(w.pp("conv3"), w.pp("bn3"), planes, out, 1, 1, isa)?,
            downsample,
            stride,
        })
    }

    /// `arena.input` `[N, H, W, inplanes]` → `arena.output` `[N, H / stride, W / stride,
    /// 4 * planes]`; the residual add and the final ReLU run in conv3's output pass.
    fn forward(&self, g: Grid, arena: &mut Arena) -> Result<Grid, Error> {
        let Arena {
            input,
            output,
            mid1,
            mid2,
            residual,
        } = arena;
        let x = &input[..g.len()];
        let identity = match &self.downsample {
            Some(down) => {
                let (pooled, gp) = if self.stride > 1 {
                    let gp = avg_pool(x, g, self.stride, mid2)?;
                    (&mid2[..gp.len()], gp)
                } else {
                    (x, g)
                };
                let gd = down.forward(pooled, gp, None, false, residual)?;
                &residual[..gd.len()]
            }
            None => x,
        };
        let g1 = self.conv1.forward(x, g, None, true, mid1)?;
        let g2 = self
            .conv2
            .forward(&mid1[..g1.len()], g1, None, true, mid2)?;
        let (mid, gm) = if self.stride > 1 {
            let gm = avg_pool(&mid2[..g2.len()], g2, self.stride, mid1)?;
            (&mid1[..gm.len()], gm)
        } else {
            (&mid2[..g2.len()], g2)
        };
        self.conv3.forward(mid, gm, Some(identity), true, output)
    }
}

/// Mirrors `open_clip.modified_resnet.ModifiedResNet`: stem, four bottleneck stages, attention
/// pool.
pub struct ImageTower {
    stem: Stem,
    stages: Vec<Vec<Bottleneck>>,
    attnpool: AttentionPool2d,
    image_size: usize,
    /// The last pass's buffers, kept for the next: growing them anew costs a zero-fill and a
    /// page fault per 4 KiB of activations (over 300 MB at batch 32) on every call.
    arena: Mutex<Arena>,
}

impl ImageTower {
    /// Loads the tower under `w` (the `visual` prefix), sized by `config`, with the best kernels
    /// this CPU runs.
    pub fn load(w: Weights, config: &ModelConfig) -> Result<Self, Error> {
        Self::load_with_isa(w, config, Isa::detect())
    }

    /// [`ImageTower::load`] with the convolution kernels compiled for `isa`; tests pass
    /// [`Isa::portable`] to run the fallback path on any CPU.
    pub fn load_with_isa(w: Weights, config: &ModelConfig, isa: Isa) -> Result<Self, Error> {
        config.validate()?;
        let width = config.vision_cfg.width;
        let image_size = config.image_size();
        let stem = Stem::load(&w, width, isa)?;
        let mut stages: Vec<Vec<Bottleneck>> = config
            .stage_blocks()
            .iter()
            .map(|&blocks| Vec::with_capacity(blocks))
            .collect();
        for b in block_plan(config) {
            let block = w.pp(format!("layer{}", b.stage + 1)).pp(b.block);
            stages[b.stage].push(Bottleneck::load(
                &block, b.inplanes, b.planes, b.stride, isa,
            )?);
        }
        let embed_dim = width * 32;
        let attnpool = AttentionPool2d::load(
            &w.pp("attnpool"),
            image_size / 32,
            embed_dim,
            embed_dim / config.vision_cfg.head_width,
            config.embed_dim,
            isa,
        )?;
        Ok(Self {
            stem,
            stages,
            attnpool,
            image_size,
            arena: Mutex::default(),
        })
    }

    /// Side of the square input.
    pub fn image_size(&self) -> usize {
        self.image_size
    }

    /// `[N, 3, S, S]` normalised pixels → `[N, embed_dim]` (not normalised).
    pub fn forward(&self, pixels: &Tensor) -> Result<Tensor, Error> {
        let (n, c, h, w) = pixels.dims4()?;
        if c != 3 {
            return Err(Error::InvalidInput(format!(
                "image batch has {c} channels, expected 3 (RGB)"
            )));
        }
        // Concurrent callers each get buffers: the kept ones if free, else fresh ones.
        let mut guard = self.arena.try_lock().ok();
        let mut fresh = Arena::default();
        let arena = guard.as_deref_mut().unwrap_or(&mut fresh);
        arena.input = pixels
            .permute((0, 2, 3, 1))?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let mut g = self.stem.forward(Grid { n, h, w, c }, arena)?;
        for block in self.stages.iter().flatten() {
            g = block.forward(g, arena)?;
            arena.advance();
        }
        self.attnpool.forward(&arena.input[..g.len()], g.n)
    }
}
