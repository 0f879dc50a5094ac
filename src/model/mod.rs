//! CLIP (ResNet image tower, transformer text tower), its tokenizer and its preprocessing.
//!
//! [`ModelFiles`] finds a model (directory or hub id); [`ImageEncoder`] and [`TextEncoder`]
//! load one tower each, so a process that only embeds queries never reads the image tower.

pub mod attnpool;
pub mod config;
pub mod error;
pub mod hub;
pub mod preprocess;
pub mod resnet;
pub mod text;
pub mod tokenizer;
pub mod weights;

use std::io::Read;
use std::path::{Path, PathBuf};

use candle_core::{DType, Tensor, D};

pub use config::OpenClipConfig;
pub use error::Error;
pub use hub::DownloadProgress;

use hub::{HubOptions, CONFIG_FILE, WEIGHTS_FILE};
use resnet::ImageTower;
use text::TextTower;
use tokenizer::Tokenizer;
use weights::{Checkpoint, Scope, TensorLoader};

/// The two files of an open_clip model, with the config already parsed and validated.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    /// The directory holding both files (a snapshot directory for hub models).
    pub dir: PathBuf,
    /// The parsed `open_clip_config.json`.
    pub config: OpenClipConfig,
    /// `open_clip_model.safetensors`.
    pub weights: PathBuf,
    source: String,
    fingerprint: String,
}

impl ModelFiles {
    /// Resolves `--model`: an existing directory is used as is; an `owner/name` id is looked up
    /// in the Hugging Face cache and, unless `HF_HUB_OFFLINE` is set, downloaded there.
    pub fn resolve(spec: &str, progress: Option<&dyn DownloadProgress>) -> Result<Self, Error> {
        Self::resolve_with(spec, &HubOptions::from_env(), progress)
    }

    /// [`ModelFiles::resolve`] with explicit hub settings instead of the environment's.
    pub fn resolve_with(
        spec: &str,
        hub: &HubOptions,
        progress: Option<&dyn DownloadProgress>,
    ) -> Result<Self, Error> {
        let path = Path::new(spec);
        if path.is_dir() {
            return Self::from_dir(path);
        }
        if !hub::looks_like_repo_id(spec) {
            return Err(Error::ModelNotFound {
                spec: spec.to_string(),
            });
        }
        let (config, weights) = hub.fetch(spec, progress)?;
        let dir = config.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::from_files(spec.to_string(), dir, &config, weights)
    }

    /// Uses `dir/open_clip_config.json` and `dir/open_clip_model.safetensors`.
    pub fn from_dir(dir: &Path) -> Result<Self, Error> {
        let config = dir.join(CONFIG_FILE);
        let weights = dir.join(WEIGHTS_FILE);
        for (path, file) in [(&config, CONFIG_FILE), (&weights, WEIGHTS_FILE)] {
            if !path.is_file() {
                return Err(Error::MissingModelFile {
                    dir: dir.to_path_buf(),
                    file,
                });
            }
        }
        let source = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        Self::from_files(
            source.to_string_lossy().into_owned(),
            dir.to_path_buf(),
            &config,
            weights,
        )
    }

    fn from_files(
        source: String,
        dir: PathBuf,
        config_path: &Path,
        weights: PathBuf,
    ) -> Result<Self, Error> {
        let config = OpenClipConfig::from_file(config_path)?;
        let fingerprint = fingerprint(&config, &weights)?;
        Ok(Self {
            dir,
            config,
            weights,
            source,
            fingerprint,
        })
    }

    /// A stable id of the model, for telling indexes built with different models apart:
    /// 16 hex digits of FNV-1a over the canonical JSON of the parsed config, the weights file
    /// size and its safetensors header (every key, dtype, shape and offset). The same files
    /// give the same id wherever they live; a re-saved or re-typed (F16) checkpoint does not.
    pub fn fingerprint(&self) -> String {
        self.fingerprint.clone()
    }

    /// Where the model came from, as an index records it: the hub id, or the directory made
    /// absolute (so that it still names the model from another working directory).
    pub fn source(&self) -> &str {
        &self.source
    }
}

/// Reads what [`ModelFiles::fingerprint`] hashes.
fn fingerprint(config: &OpenClipConfig, weights: &Path) -> Result<String, Error> {
    let io = |source| Error::Io {
        path: weights.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(weights).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(io)?;
    let mut header = Vec::new();
    // The header length is untrusted: read at most what the file holds.
    (&mut file)
        .take(u64::from_le_bytes(len).min(size))
        .read_to_end(&mut header)
        .map_err(io)?;
    // Serialising our own struct cannot fail; fall back to nothing rather than panic.
    let config_json = serde_json::to_vec(config).unwrap_or_default();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in config_json.iter().chain(&size.to_le_bytes()).chain(&header) {
        hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    Ok(format!("{hash:016x}"))
}

/// Divides each row by its L2 norm, clamped like `torch.nn.functional.normalize` (eps 1e-12).
fn l2_normalize(x: &Tensor) -> Result<Tensor, Error> {
    let norm = x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.maximum(1e-12)?;
    Ok(x.broadcast_div(&norm)?)
}

/// The image tower, ready to embed preprocessed pixels. `Send + Sync`.
pub struct ImageEncoder {
    tower: ImageTower,
    embed_dim: usize,
}

impl ImageEncoder {
    /// Loads the `visual.*` tensors only, strictly (missing, extra or misshapen tensors fail).
    pub fn load(files: &ModelFiles) -> Result<Self, Error> {
        let checkpoint = Checkpoint::open(&files.weights)?;
        let loader = TensorLoader::new(&checkpoint);
        let model = &files.config.model_cfg;
        let tower = ImageTower::load(loader.root().pp("visual"), model)?;
        loader.finish(Scope::Image)?;
        Ok(Self {
            tower,
            embed_dim: model.embed_dim,
        })
    }

    /// Side of the square input in pixels.
    pub fn image_size(&self) -> usize {
        self.tower.image_size()
    }

    /// Width of the embeddings.
    pub fn embed_dim(&self) -> usize {
        self.embed_dim
    }

    /// pixels: [N, 3, S, S] f32, already normalised; returns [N, D] L2-normalised rows.
    pub fn embed(&self, pixels: &Tensor) -> Result<Tensor, Error> {
        let s = self.image_size();
        match pixels.dims() {
            &[n, 3, h, w] if n > 0 && h == s && w == s && pixels.dtype() == DType::F32 => {}
            dims => {
                return Err(Error::InvalidInput(format!(
                    "image batch has shape {dims:?} and dtype {:?}, expected [N, 3, {s}, {s}] f32",
                    pixels.dtype()
                )))
            }
        }
        l2_normalize(&self.tower.forward(pixels)?)
    }
}

/// The text tower and its tokenizer. `Send + Sync`.
pub struct TextEncoder {
    tower: TextTower,
    tokenizer: Tokenizer,
    embed_dim: usize,
}

impl TextEncoder {
    /// Loads every tensor outside `visual.*`, strictly (missing, extra or misshapen tensors
    /// fail).
    pub fn load(files: &ModelFiles) -> Result<Self, Error> {
        let checkpoint = Checkpoint::open(&files.weights)?;
        let loader = TensorLoader::new(&checkpoint);
        let model = &files.config.model_cfg;
        let tower = TextTower::load(loader.root(), model)?;
        loader.finish(Scope::Text)?;
        Ok(Self {
            tower,
            tokenizer: Tokenizer::new(),
            embed_dim: model.embed_dim,
        })
    }

    /// Maximum tokens per text, START and END included.
    pub fn context_length(&self) -> usize {
        self.tower.context_length()
    }

    /// Width of the embeddings.
    pub fn embed_dim(&self) -> usize {
        self.embed_dim
    }

    /// token ids as produced by `Tokenizer::tokenize` (START..END, unpadded, <= context_length).
    /// Returns [N, D] L2-normalised rows.
    pub fn embed_tokens(&self, batch: &[Vec<u32>]) -> Result<Tensor, Error> {
        l2_normalize(&self.tower.forward(batch)?)
    }

    /// Tokenizes `texts` and embeds them: [N, D] L2-normalised rows.
    pub fn embed(&self, texts: &[&str]) -> Result<Tensor, Error> {
        let ctx = self.context_length();
        let batch: Vec<Vec<u32>> = texts
            .iter()
            .map(|text| self.tokenizer.tokenize(text, ctx))
            .collect();
        self.embed_tokens(&batch)
    }
}

/// Loads both towers from one checkpoint and fails unless together they consume every tensor
/// (besides `logit_scale` and `num_batches_tracked`).
pub fn verify_checkpoint(files: &ModelFiles) -> Result<(), Error> {
    let checkpoint = Checkpoint::open(&files.weights)?;
    let loader = TensorLoader::new(&checkpoint);
    let model = &files.config.model_cfg;
    ImageTower::load(loader.root().pp("visual"), model)?;
    TextTower::load(loader.root(), model)?;
    loader.finish(Scope::All)
}

/// Every tensor key a checkpoint for `config` must hold (besides the allowed extras), with its
/// shape, sorted by key: both towers loaded on zeros, each key they ask for recorded.
pub fn expected_tensors(
    config: &config::ModelConfig,
) -> Result<std::collections::BTreeMap<String, Vec<usize>>, Error> {
    config.validate()?;
    let loader = TensorLoader::zeros();
    ImageTower::load(loader.root().pp("visual"), config)?;
    TextTower::load(loader.root(), config)?;
    Ok(loader.consumed())
}
