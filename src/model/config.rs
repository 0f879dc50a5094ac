//! `open_clip_config.json`, as open_clip writes it next to `open_clip_model.safetensors`.
//!
//! Only the ModifiedResNet family (CLIP's RN50, RN101, RN50x4, ...) is accepted: its vision
//! `layers` is a list of four block counts, where a ViT has a single integer.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::model::error::Error;

/// OpenAI's CLIP pixel mean, used when `preprocess_cfg` does not say otherwise.
pub const OPENAI_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// OpenAI's CLIP pixel standard deviation, used when `preprocess_cfg` does not say otherwise.
// Written digit for digit as open_clip's OPENAI_DATASET_STD, which f32 rounds.
#[allow(clippy::excessive_precision)]
pub const OPENAI_STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];

/// The whole `open_clip_config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenClipConfig {
    /// Architecture of both towers.
    pub model_cfg: ModelConfig,
    /// How images must be prepared before the image tower.
    #[serde(default)]
    pub preprocess_cfg: PreprocessConfig,
}

/// open_clip's `model_cfg`: the arguments of `open_clip.CLIP`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Width of the shared embedding space (1024 for RN50).
    pub embed_dim: usize,
    /// `x * sigmoid(1.702 x)` instead of erf GELU in the text MLPs (true for OpenAI weights).
    #[serde(default)]
    pub quick_gelu: bool,
    /// The image tower.
    pub vision_cfg: VisionConfig,
    /// The text tower.
    pub text_cfg: TextConfig,
}

/// open_clip's `CLIPVisionCfg`, restricted to what a ModifiedResNet uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VisionConfig {
    /// Side of the square input image in pixels.
    pub image_size: ImageSize,
    /// Bottleneck blocks per stage; a ModifiedResNet has exactly four stages.
    pub layers: Layers,
    /// Stem width; stage `i` has `width * 2^i` planes and `4 * width * 2^i` output channels.
    #[serde(default = "default_vision_width")]
    pub width: usize,
    /// Width of one attention-pool head: heads = `width * 32 / head_width`.
    #[serde(default = "default_head_width")]
    pub head_width: usize,
}

/// `image_size` is written either as an integer or as `[height, width]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ImageSize {
    /// A square side.
    Square(usize),
    /// `[height, width]`.
    Pair([usize; 2]),
}

/// `layers` is a list of four for a ModifiedResNet and an integer for a ViT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Layers {
    /// Block counts per stage (ModifiedResNet).
    PerStage(Vec<usize>),
    /// Transformer depth (ViT), which xsearch does not run.
    Depth(usize),
}

/// open_clip's `CLIPTextCfg`, restricted to what the CLIP text transformer uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextConfig {
    /// Maximum number of tokens, START and END included (77).
    #[serde(default = "default_context_length")]
    pub context_length: usize,
    /// Rows of the token embedding (49408).
    #[serde(default = "default_vocab_size")]
    pub vocab_size: usize,
    /// Transformer width.
    #[serde(default = "default_text_width")]
    pub width: usize,
    /// Attention heads per block.
    #[serde(default = "default_text_heads")]
    pub heads: usize,
    /// Number of residual blocks.
    #[serde(default = "default_text_layers")]
    pub layers: usize,
    /// Hidden width of the MLP as a multiple of `width`.
    #[serde(default = "default_mlp_ratio")]
    pub mlp_ratio: f64,
}

/// open_clip's `preprocess_cfg`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreprocessConfig {
    /// Per-channel mean subtracted from `[0, 1]` RGB values.
    #[serde(default = "default_mean")]
    pub mean: [f32; 3],
    /// Per-channel standard deviation the centred values are divided by.
    #[serde(default = "default_std")]
    pub std: [f32; 3],
    /// Resampling filter of the resize (`bicubic` for OpenAI weights).
    #[serde(default = "default_interpolation")]
    pub interpolation: String,
    /// How the image is brought to the model's size (`shortest`: resize then centre crop).
    #[serde(default = "default_resize_mode")]
    pub resize_mode: String,
}

impl Default for PreprocessConfig {
    fn default() -> Self {
        Self {
            mean: OPENAI_MEAN,
            std: OPENAI_STD,
            interpolation: default_interpolation(),
            resize_mode: default_resize_mode(),
        }
    }
}

fn default_vision_width() -> usize {
    64
}
fn default_head_width() -> usize {
    64
}
fn default_context_length() -> usize {
    77
}
fn default_vocab_size() -> usize {
    49408
}
fn default_text_width() -> usize {
    512
}
fn default_text_heads() -> usize {
    8
}
fn default_text_layers() -> usize {
    12
}
fn default_mlp_ratio() -> f64 {
    4.0
}
fn default_mean() -> [f32; 3] {
    OPENAI_MEAN
}
fn default_std() -> [f32; 3] {
    OPENAI_STD
}
fn default_interpolation() -> String {
    "bicubic".to_string()
}
fn default_resize_mode() -> String {
    "shortest".to_string()
}

impl OpenClipConfig {
    /// Reads and validates `open_clip_config.json`.
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&text).map_err(|e| e.at(path))
    }

    /// Parses and validates the text of `open_clip_config.json`.
    ///
    /// Errors carry an empty path; [`OpenClipConfig::from_file`] fills it in.
    pub fn from_json(text: &str) -> Result<Self, Error> {
        let config: Self = serde_json::from_str(text).map_err(|source| Error::ConfigParse {
            path: Default::default(),
            source,
        })?;
        config.model_cfg.validate()?;
        Ok(config)
    }
}

impl ModelConfig {
    /// Checks that this is a ModifiedResNet CLIP whose sizes fit together.
    pub fn validate(&self) -> Result<(), Error> {
        let unsupported = |reason: String| Error::UnsupportedModel {
            path: Default::default(),
            reason,
        };
        let v = &self.vision_cfg;
        match &v.layers {
            Layers::PerStage(stages) if stages.len() == 4 => {
                if stages.contains(&0) {
                    return Err(unsupported(format!(
                        "vision_cfg.layers {stages:?} has an empty stage"
                    )));
                }
            }
            Layers::PerStage(stages) => {
                return Err(unsupported(format!(
                    "vision_cfg.layers has {} stages, a ModifiedResNet has 4",
                    stages.len()
                )))
            }
            Layers::Depth(depth) => {
                return Err(unsupported(format!(
                "vision_cfg.layers is {depth}, which is a ViT, not a ModifiedResNet (RN50 family)"
            )))
            }
        }
        let size = match v.image_size {
            ImageSize::Square(s) => s,
            ImageSize::Pair([h, w]) if h == w => h,
            ImageSize::Pair([h, w]) => {
                return Err(unsupported(format!(
                    "vision_cfg.image_size {h}x{w} is not square"
                )))
            }
        };
        if size == 0 || size % 32 != 0 {
            return Err(unsupported(format!(
                "vision_cfg.image_size {size} is not a positive multiple of 32"
            )));
        }
        if v.width < 2 || !v.width.is_multiple_of(2) {
            return Err(unsupported(format!(
                "vision_cfg.width {} is not a positive even number",
                v.width
            )));
        }
        if v.head_width == 0 || !(v.width * 32).is_multiple_of(v.head_width) {
            return Err(unsupported(format!(
                "vision_cfg.head_width {} does not divide the attention-pool width {}",
                v.head_width,
                v.width * 32
            )));
        }
        let t = &self.text_cfg;
        if t.heads == 0 || !t.width.is_multiple_of(t.heads) {
            return Err(unsupported(format!(
                "text_cfg.heads {} does not divide text_cfg.width {}",
                t.heads, t.width
            )));
        }
        if t.context_length < 2 || t.vocab_size == 0 || self.embed_dim == 0 {
            return Err(unsupported(
                "text_cfg.context_length, text_cfg.vocab_size and embed_dim must be positive"
                    .to_string(),
            ));
        }
        if t.mlp_ratio.is_nan() || t.mlp_ratio <= 0.0 || self.mlp_width() == 0 {
            return Err(unsupported(format!(
                "text_cfg.mlp_ratio {} gives an empty MLP",
                t.mlp_ratio
            )));
        }
        Ok(())
    }

    /// Side of the square input image (validated: a multiple of 32).
    pub fn image_size(&self) -> usize {
        match self.vision_cfg.image_size {
            ImageSize::Square(s) | ImageSize::Pair([s, _]) => s,
        }
    }

    /// Block counts of the four stages (empty for a config that failed [`ModelConfig::validate`]).
    pub fn stage_blocks(&self) -> &[usize] {
        match &self.vision_cfg.layers {
            Layers::PerStage(stages) => stages,
            Layers::Depth(_) => &[],
        }
    }

    /// Hidden width of the text MLP, as open_clip computes it: `int(width * mlp_ratio)`.
    pub fn mlp_width(&self) -> usize {
        // Truncation mirrors Python's int(); the ratio is validated positive.
        (self.text_cfg.width as f64 * self.text_cfg.mlp_ratio) as usize
    }
}
