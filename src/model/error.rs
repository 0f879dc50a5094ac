//! Errors of the model layer: finding, reading, checking and running a CLIP checkpoint.

use std::path::PathBuf;

/// Everything that can go wrong between `--model` and an embedding.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file of the model could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },

    /// `open_clip_config.json` is not valid JSON of the expected shape.
    #[error("{}: invalid open_clip config: {source}", path.display())]
    ConfigParse {
        /// The config file.
        path: PathBuf,
        /// What serde said.
        source: serde_json::Error,
    },

    /// The config describes a model xsearch cannot run.
    #[error(
        "{}: unsupported model: {reason}\n\nxsearch runs CLIP with a ModifiedResNet image tower \
         (RN50 family); use such a checkpoint.",
        path.display()
    )]
    UnsupportedModel {
        /// The config file.
        path: PathBuf,
        /// Which field is out of reach and why.
        reason: String,
    },

    /// `--model` is neither an existing directory nor a hub repository id.
    #[error(
        "{spec}: no such model directory, and not a hub repository id\n\nName a directory \
         holding open_clip_config.json and open_clip_model.safetensors, or a hub id such as \
         timm/resnet50_clip.openai."
    )]
    ModelNotFound {
        /// What `--model` said.
        spec: String,
    },

    /// A directory given as `--model` lacks one of the two files.
    #[error(
        "{}: not an open_clip model directory: {} is missing\n\nA model directory holds \
         open_clip_config.json and open_clip_model.safetensors.",
        dir.display(), file
    )]
    MissingModelFile {
        /// The directory.
        dir: PathBuf,
        /// The missing file name.
        file: &'static str,
    },

    /// The safetensors file is unreadable or malformed.
    #[error("{}: cannot read safetensors: {source}", path.display())]
    Safetensors {
        /// The checkpoint.
        path: PathBuf,
        /// What candle/safetensors said.
        source: candle_core::Error,
    },

    /// A tensor the model needs is not in the checkpoint.
    #[error("{}: missing tensor {name} (expected shape {expected:?})", path.display())]
    MissingTensor {
        /// The checkpoint.
        path: PathBuf,
        /// open_clip key of the tensor.
        name: String,
        /// The shape the config implies.
        expected: Vec<usize>,
    },

    /// A tensor has a different shape than the config implies.
    #[error(
        "{}: tensor {name} has shape {found:?}, expected {expected:?}\n\nThe checkpoint does \
         not match its open_clip_config.json.",
        path.display()
    )]
    ShapeMismatch {
        /// The checkpoint.
        path: PathBuf,
        /// open_clip key of the tensor.
        name: String,
        /// The shape the config implies.
        expected: Vec<usize>,
        /// The shape stored in the checkpoint.
        found: Vec<usize>,
    },

    /// A tensor is stored in a dtype other than F32, F16 or BF16.
    #[error("{}: tensor {name} has dtype {dtype}, expected f32, f16 or bf16", path.display())]
    UnsupportedDtype {
        /// The checkpoint.
        path: PathBuf,
        /// open_clip key of the tensor.
        name: String,
        /// The stored dtype.
        dtype: String,
    },

    /// The checkpoint holds tensors the model does not use.
    #[error(
        "{}: unexpected tensors not used by the model: {}\n\nThe checkpoint does not match \
         its open_clip_config.json.",
        path.display(), names.join(", ")
    )]
    UnexpectedTensors {
        /// The checkpoint.
        path: PathBuf,
        /// open_clip keys of the unused tensors, sorted.
        names: Vec<String>,
    },

    /// The model is neither a local directory nor obtainable from the hub (offline, not cached,
    /// unreachable, or the download failed).
    #[error(
        "model {repo}: {reason}: cannot get open_clip_config.json and \
         open_clip_model.safetensors\n\nDownload both files into a directory and open the model \
         from there, or allow network access to the hub."
    )]
    ModelUnavailable {
        /// The hub repository id.
        repo: String,
        /// Why the files could not be obtained.
        reason: String,
    },

    /// An input tensor does not have the shape the model takes.
    #[error("invalid model input: {0}")]
    InvalidInput(String),

    /// A tensor operation failed while running the model.
    #[error("model computation failed: {0}")]
    Compute(#[from] candle_core::Error),

    /// A convolution kernel of the image tower refused its arguments.
    #[error("image tower kernel failed: {0}")]
    Kernel(#[from] crate::kernels::KernelError),
}

impl Error {
    /// Attaches the file a config or checkpoint error is about, for errors built before the
    /// path was known.
    pub(crate) fn at(self, file: &std::path::Path) -> Self {
        match self {
            Error::ConfigParse { source, .. } => Error::ConfigParse {
                path: file.to_path_buf(),
                source,
            },
            Error::UnsupportedModel { reason, .. } => Error::UnsupportedModel {
                path: file.to_path_buf(),
                reason,
            },
            other => other,
        }
    }
}
