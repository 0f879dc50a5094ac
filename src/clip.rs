//! `Clip`: a model's two towers behind one handle, each loaded on first use, so a text query
//! never pays for the image tower and an image job never pays for the text tower.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use candle_core::{Device, Tensor};
use image::DynamicImage;
use rayon::prelude::*;

use crate::decode::{contain, decode_bytes_scaled, decode_file_scaled, DecodeError, DecodeLimits};
use crate::model::hub::DownloadProgress;
use crate::model::preprocess::{min_source_side, Preprocessor};
use crate::model::{ImageEncoder, ModelFiles, TextEncoder};
use crate::Error;

/// Images embedded together by default. Measured (`BENCHMARKS.md`, "Ingest speed"): the image
/// tower's CPU time per image falls by 27% from batch 1 to 8 and by 4% more up to 32, and
/// ingest overlapped decoding with the tower best at 8 of 2, 4 and 8; larger batches only
/// lengthen the unoverlapped first and last batch and hold more pixels.
pub const DEFAULT_BATCH_SIZE: usize = 8;

/// Where an image comes from, for [`Clip::pixels`].
pub(crate) enum ImageSource<'a> {
    /// A file, read by the decoder (its errors name the file).
    File(&'a Path),
    /// A file's bytes, already read (ingest hashes them first).
    Bytes(Vec<u8>),
}
/// The longest text embedded, in characters. CLIP reads 77 tokens and drops the rest (75 after
/// the start and end tokens: about 300 characters of English); at 1,000 characters everything
/// after is certainly dropped, so a longer text is a mistake (a whole file on one line), and
/// one stored in the text collection would be printed whole with every hit.
pub const MAX_TEXT_CHARS: usize = 1_000;

/// An L2-normalised embedding: similarity between two of them is their dot product.
pub type Embedding = Vec<f32>;

/// A CLIP model: tokenizer and text tower, preprocessing and image tower.
pub struct Clip {
    files: ModelFiles,
    image: OnceLock<ImageSide>,
    text: OnceLock<TextEncoder>,
    limits: DecodeLimits,
}

struct ImageSide {
    encoder: ImageEncoder,
    preprocessor: Preprocessor,
}

impl Clip {
    /// Resolves `spec` (a model directory or a Hugging Face hub id; see [`ModelFiles::resolve`])
    /// and reads its config. The weights are read when a tower is first used.
    pub fn open(spec: &str, progress: Option<&dyn DownloadProgress>) -> Result<Self, Error> {
        Ok(Self::from_files(ModelFiles::resolve(spec, progress)?))
    }

    /// A model whose files are already resolved.
    pub fn from_files(files: ModelFiles) -> Self {
        Self {
            files,
            image: OnceLock::new(),
            text: OnceLock::new(),
            limits: DecodeLimits::default(),
        }
    }

    /// The resolved model files (directory, config, weights).
    pub fn files(&self) -> &ModelFiles {
        &self.files
    }

    /// Width of the shared embedding space.
    pub fn embed_dim(&self) -> usize {
        self.files.config.model_cfg.embed_dim
    }

    fn image_side(&self) -> Result<&ImageSide, Error> {
        if let Some(side) = self.image.get() {
            return Ok(side);
        }
        let encoder = ImageEncoder::load(&self.files)?;
        let cfg = &self.files.config.preprocess_cfg;
        let preprocessor = Preprocessor::new(encoder.image_size(), cfg.mean, cfg.std);
        // A racing thread may have loaded it first; either copy is the same model.
        Ok(self.image.get_or_init(|| ImageSide {
            encoder,
            preprocessor,
        }))
    }

    fn text_encoder(&self) -> Result<&TextEncoder, Error> {
        if let Some(encoder) = self.text.get() {
            return Ok(encoder);
        }
        let encoder = TextEncoder::load(&self.files)?;
        Ok(self.text.get_or_init(|| encoder))
    }

    /// Loads the text tower now rather than at the first text, so a caller can overlap it
    /// with other work.
    pub fn preload_text(&self) -> Result<(), Error> {
        self.text_encoder().map(|_| ())
    }

    /// Embeds texts, in one batch. A text over [`MAX_TEXT_CHARS`] is [`Error::TextTooLong`].
    pub fn embed_texts(&self, texts: &[&str]) -> Result<Vec<Embedding>, Error> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(text) = texts.iter().find(|t| t.chars().count() > MAX_TEXT_CHARS) {
            return Err(Error::TextTooLong {
                start: text.chars().take(40).collect(),
                chars: text.chars().count(),
            });
        }
        let rows = self.text_encoder()?.embed(texts)?;
        Ok(rows.to_vec2::<f32>()?)
    }

    /// Length of one preprocessed image (`3 * size * size`); loads the image tower.
    pub fn pixel_len(&self) -> Result<usize, Error> {
        Ok(self.image_side()?.preprocessor.pixel_len())
    }

    /// The image tower's preprocessing (resize, centre crop, normalise) of one image.
    pub fn preprocess(&self, image: &DynamicImage) -> Result<Vec<f32>, Error> {
        Ok(self.image_side()?.preprocessor.pixels(image))
    }

    /// Embeds preprocessed images laid end to end (each [`Clip::pixel_len`] long), in one batch.
    pub fn embed_pixels(&self, pixels: Vec<f32>) -> Result<Vec<Embedding>, Error> {
        let side = self.image_side()?;
        let len = side.preprocessor.pixel_len();
        let count = pixels.len() / len;
        if count == 0 {
            return Ok(Vec::new());
        }
        let size = side.preprocessor.image_size();
        let batch = Tensor::from_vec(pixels, (count, 3, size, size), &Device::Cpu)?;
        Ok(side.encoder.embed(&batch)?.to_vec2::<f32>()?)
    }

    /// Embeds decoded images, in one batch. No images: the image tower is not loaded (a text
    /// query must not pay for it).
    pub fn embed_images(&self, images: &[DynamicImage]) -> Result<Vec<Embedding>, Error> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let side = self.image_side()?;
        let mut pixels = vec![0f32; images.len() * side.preprocessor.pixel_len()];
        side.preprocessor.write_batch(images, &mut pixels);
        self.embed_pixels(pixels)
    }

    /// The limits images are decoded under.
    pub fn decode_limits(&self) -> &DecodeLimits {
        &self.limits
    }

    /// The smallest short side images are decoded at: large JPEGs are reduced down to it (see
    /// [`crate::decode::decode_file_scaled`]). Twice the model's input size; known from
    /// the config, so asking does not load the image tower.
    pub fn min_source_side(&self) -> u32 {
        min_source_side(self.files.config.model_cfg.image_size())
    }

    /// Decodes and embeds image files. A file that cannot be decoded gets its own error in the
    /// result and does not stop the others; an error of the model itself fails the call.
    ///
    /// Files are decoded and embedded [`DEFAULT_BATCH_SIZE`] at a time, so the decoded pixels
    /// held at once stay bounded however many files are given.
    pub fn embed_files(
        &self,
        paths: &[PathBuf],
    ) -> Result<Vec<Result<Embedding, DecodeError>>, Error> {
        let mut results = Vec::with_capacity(paths.len());
        for chunk in paths.chunks(DEFAULT_BATCH_SIZE) {
            let slots = chunk
                .par_iter()
                .map(|path| self.pixels(ImageSource::File(path)))
                .collect::<Result<Vec<_>, Error>>()?;
            results.extend(self.embed_slots(slots)?);
        }
        Ok(results)
    }

    /// The image stage's first half, shared by [`Clip::embed_files`] and ingest: decodes an
    /// image with the model's limits (EXIF orientation applied, a large JPEG reduced to no less
    /// than [`Clip::min_source_side`]) and preprocesses it for the tower. The outer error is
    /// the model's, the inner one the image's.
    pub(crate) fn pixels(
        &self,
        source: ImageSource<'_>,
    ) -> Result<Result<Vec<f32>, DecodeError>, Error> {
        let (decoded, path) = match source {
            ImageSource::File(path) => (self.decode(path), Some(path)),
            // The bytes are dropped here, before preprocessing: the pixels replace them.
            ImageSource::Bytes(bytes) => (
                decode_bytes_scaled(&bytes, &self.limits, self.min_source_side()),
                None,
            ),
        };
        let image = match decoded {
            Ok(image) => image,
            Err(err) => return Ok(Err(err)),
        };
        // Preprocessing is per-file work on what a decoder made: contained like decoding.
        match contain(path, "preprocessing", || Ok(self.preprocess(&image))) {
            Ok(pixels) => Ok(Ok(pixels?)),
            Err(err) => Ok(Err(err)),
        }
    }

    /// The image stage's second half: embeds the preprocessed images of a batch in one pass,
    /// each failure kept in its slot.
    pub(crate) fn embed_slots<E>(
        &self,
        slots: Vec<Result<Vec<f32>, E>>,
    ) -> Result<Vec<Result<Embedding, E>>, Error> {
        let mut pixels = Vec::with_capacity(slots.iter().flatten().map(Vec::len).sum());
        for pixel in slots.iter().flatten() {
            pixels.extend_from_slice(pixel);
        }
        let mut embeddings = self.embed_pixels(pixels)?.into_iter();
        Ok(slots
            .into_iter()
            .map(|slot| slot.map(|_| embeddings.next().expect("one embedding per image")))
            .collect())
    }

    /// Decodes one image file with the model's limits, EXIF orientation applied, a large JPEG
    /// reduced to no less than [`Clip::min_source_side`] on its short side.
    pub fn decode(&self, path: &Path) -> Result<DynamicImage, DecodeError> {
        decode_file_scaled(path, &self.limits, self.min_source_side())
    }

    /// [`Clip::decode`] for an image in memory (an upload): the format from its content
    /// alone, the same limits.
    pub fn decode_bytes(&self, bytes: &[u8]) -> Result<DynamicImage, DecodeError> {
        decode_bytes_scaled(bytes, &self.limits, self.min_source_side())
    }
}
