//! Reading an open_clip safetensors checkpoint, strictly.
//!
//! Towers ask a [`Weights`] for each tensor by its open_clip key and the shape their config
//! implies; the [`TensorLoader`] behind it checks presence and shape, converts F16/BF16 to F32,
//! and records what was consumed so [`TensorLoader::finish`] can reject leftovers. The image
//! tower owns the `visual.` namespace, the text tower everything else, so either tower can be
//! loaded alone and the two checks together cover every tensor.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{safetensors::MmapedSafetensors, DType, Device, Storage, Tensor};

use crate::kernels::{Dense, Isa};
use crate::model::error::Error;

/// Key prefix of the image tower's tensors.
pub const VISUAL_PREFIX: &str = "visual.";

/// A memory-mapped safetensors checkpoint with its header read.
pub struct Checkpoint {
    path: PathBuf,
    tensors: MmapedSafetensors,
    /// Every tensor's stored shape, by key.
    shapes: BTreeMap<String, Vec<usize>>,
}

impl Checkpoint {
    /// Maps `path` and reads its header.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let wrap = |source| Error::Safetensors {
            path: path.to_path_buf(),
            source,
        };
        // SAFETY: the map is read-only; like every mmap reader we rely on nobody truncating the
        // checkpoint while it is in use, which is the documented contract of the model directory.
        let tensors = unsafe { MmapedSafetensors::new(path) }.map_err(wrap)?;
        let shapes = tensors
            .tensors()
            .into_iter()
            .map(|(name, view)| (name, view.shape().to_vec()))
            .collect();
        Ok(Self {
            path: path.to_path_buf(),
            tensors,
            shapes,
        })
    }

    /// The checkpoint file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every tensor key with its stored shape, sorted by key.
    pub fn shapes(&self) -> &BTreeMap<String, Vec<usize>> {
        &self.shapes
    }

    fn load(&self, name: &str, expected: &[usize]) -> Result<Tensor, Error> {
        let found = self.shapes.get(name).ok_or_else(|| Error::MissingTensor {
            path: self.path.clone(),
            name: name.to_string(),
            expected: expected.to_vec(),
        })?;
        if found != expected {
            return Err(Error::ShapeMismatch {
                path: self.path.clone(),
                name: name.to_string(),
                expected: expected.to_vec(),
                found: found.clone(),
            });
        }
        let unsupported = |dtype: String| Error::UnsupportedDtype {
            path: self.path.clone(),
            name: name.to_string(),
            dtype,
        };
        let tensor = self.tensors.load(name, &Device::Cpu).map_err(|e| match e {
            candle_core::Error::UnsupportedSafeTensorDtype(dtype) => {
                unsupported(format!("{dtype:?}"))
            }
            source => Error::Safetensors {
                path: self.path.clone(),
                source,
            },
        })?;
        match tensor.dtype() {
            DType::F32 => Ok(tensor),
            DType::F16 | DType::BF16 => Ok(tensor.to_dtype(DType::F32)?),
            other => Err(unsupported(other.as_str().to_string())),
        }
    }
}

/// Which part of a checkpoint a load must consume completely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Keys under `visual.`.
    Image,
    /// Every key outside `visual.`.
    Text,
    /// Every key.
    All,
}

impl Scope {
    fn covers(self, name: &str) -> bool {
        match self {
            Scope::Image => name.starts_with(VISUAL_PREFIX),
            Scope::Text => !name.starts_with(VISUAL_PREFIX),
            Scope::All => true,
        }
    }
}

/// Tensors a checkpoint may hold although no tower reads them: open_clip's `logit_scale` and
/// BatchNorm's step counters.
fn is_allowed_extra(name: &str) -> bool {
    name == "logit_scale" || name.ends_with("num_batches_tracked")
}

enum Source<'a> {
    Checkpoint(&'a Checkpoint),
    Zeros,
}

/// Hands out tensors to the towers and remembers which keys (and shapes) they asked for.
pub struct TensorLoader<'a> {
    source: Source<'a>,
    consumed: RefCell<BTreeMap<String, Vec<usize>>>,
}

impl<'a> TensorLoader<'a> {
    /// Serves tensors from `checkpoint`.
    pub fn new(checkpoint: &'a Checkpoint) -> Self {
        Self {
            source: Source::Checkpoint(checkpoint),
            consumed: RefCell::default(),
        }
    }

    /// Serves zero tensors of whatever shape is asked: shape tests, and listing what a config
    /// needs (see [`expected_tensors`](crate::model::expected_tensors)).
    pub fn zeros() -> TensorLoader<'static> {
        TensorLoader {
            source: Source::Zeros,
            consumed: RefCell::default(),
        }
    }

    /// The root of the key tree.
    pub fn root(&self) -> Weights<'_> {
        Weights {
            loader: self,
            prefix: String::new(),
        }
    }

    /// Every key served so far with the shape it was asked for.
    pub fn consumed(&self) -> BTreeMap<String, Vec<usize>> {
        self.consumed.borrow().clone()
    }

    /// Fails with [`Error::UnexpectedTensors`] if the checkpoint holds keys in `scope` that were
    /// never asked for (besides `logit_scale` and `num_batches_tracked`).
    pub fn finish(&self, scope: Scope) -> Result<(), Error> {
        let Source::Checkpoint(checkpoint) = self.source else {
            return Ok(());
        };
        let consumed = self.consumed.borrow();
        let names: Vec<String> = checkpoint
            .shapes
            .keys()
            .filter(|name| scope.covers(name))
            .filter(|name| !consumed.contains_key(*name) && !is_allowed_extra(name))
            .cloned()
            .collect();
        if names.is_empty() {
            Ok(())
        } else {
            Err(Error::UnexpectedTensors {
                path: checkpoint.path.clone(),
                names,
            })
        }
    }

    fn get(&self, name: String, shape: &[usize]) -> Result<Tensor, Error> {
        let tensor = match self.source {
            Source::Checkpoint(checkpoint) => checkpoint.load(&name, shape)?,
            Source::Zeros => Tensor::zeros(shape, DType::F32, &Device::Cpu)?,
        };
        self.consumed.borrow_mut().insert(name, shape.to_vec());
        Ok(tensor)
    }
}

/// A position in the checkpoint's key tree, like candle's `VarBuilder`: `w.pp("layer1").pp(0)`
/// addresses `layer1.0.*`.
pub struct Weights<'a> {
    loader: &'a TensorLoader<'a>,
    prefix: String,
}

impl Weights<'_> {
    /// Descends into `name`.
    pub fn pp(&self, name: impl std::fmt::Display) -> Self {
        let prefix = if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        };
        Self {
            loader: self.loader,
            prefix,
        }
    }

    /// The F32 tensor `name` under this position, which must have exactly `shape`.
    pub fn get(&self, shape: &[usize], name: &str) -> Result<Tensor, Error> {
        self.loader.get(self.pp(name).prefix, shape)
    }

    /// [`Weights::get`] as a flat row-major vector, the form our kernels take.
    pub fn get_vec(&self, shape: &[usize], name: &str) -> Result<Vec<f32>, Error> {
        self.with_values(shape, name, <[f32]>::to_vec)
    }

    /// Runs `f` on the row-major values of [`Weights::get`], borrowed from the loaded tensor
    /// when it is contiguous in memory (it is, as loaded), for weights that are repacked
    /// anyway: a copy of the text tower's 151 MB costs every query's load time.
    pub fn with_values<R>(
        &self,
        shape: &[usize],
        name: &str,
        f: impl FnOnce(&[f32]) -> R,
    ) -> Result<R, Error> {
        let tensor = self.get(shape, name)?;
        let (storage, layout) = tensor.storage_and_layout();
        if let (Storage::Cpu(cpu), Some((start, end))) = (&*storage, layout.contiguous_offsets()) {
            return Ok(f(&cpu.as_slice::<f32>()?[start..end]));
        }
        drop(storage);
        Ok(f(&tensor.flatten_all()?.to_vec1::<f32>()?))
    }
}

/// A `nn.Linear` with bias, loaded under `w` and packed for our GEMM on `isa`.
pub(crate) fn dense(w: &Weights, in_dim: usize, out_dim: usize, isa: Isa) -> Result<Dense, Error> {
    let weight = w.get_vec(&[out_dim, in_dim], "weight")?;
    let bias = w.get_vec(&[out_dim], "bias")?;
    Ok(Dense::from_linear(
        isa,
        &weight,
        in_dim,
        out_dim,
        Some(bias),
    ))
}
