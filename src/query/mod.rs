//! Queries: weighted text and image terms combined into one vector.
//!
//! A query is a sum of terms, each a text or an image with a weight; negative weights push
//! results away from a term. The query vector is the weighted sum of the terms' normalised
//! embeddings, normalised again, so `"beach" + photo.jpg - "people"` finds beaches that look
//! like the photo, without people.

mod parse;

use std::path::PathBuf;

use image::DynamicImage;

pub use parse::ParseError;

use crate::{Clip, Embedding, Error};

/// What one term of a query describes.
#[derive(Debug, Clone)]
pub enum Term {
    /// A text, embedded by the text tower.
    Text(String),
    /// An image file, decoded and embedded by the image tower.
    ImagePath(PathBuf),
    /// Decoded pixels, embedded by the image tower.
    Image(DynamicImage),
}

/// A term and its weight (negative to steer away from it).
#[derive(Debug, Clone)]
pub struct WeightedTerm {
    /// Multiplies the term's normalised embedding.
    pub weight: f32,
    /// The term.
    pub term: Term,
}

/// A query: one or more weighted terms.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// The terms, summed in order.
    pub terms: Vec<WeightedTerm>,
}

impl Query {
    /// A query of one text.
    pub fn text(text: impl Into<String>) -> Self {
        Self::default().with(1.0, Term::Text(text.into()))
    }

    /// A query of one image file.
    pub fn image(path: impl Into<PathBuf>) -> Self {
        Self::default().with(1.0, Term::ImagePath(path.into()))
    }

    /// Adds a term with a weight.
    pub fn with(mut self, weight: f32, term: Term) -> Self {
        self.terms.push(WeightedTerm { weight, term });
        self
    }

    /// Parses the query syntax of `xsearch query`: terms joined by ` + ` and ` - `, each
    /// optionally prefixed by a weight (`2:beach`); a term that names an existing image file is
    /// an image. The grammar is in `src/query/parse.rs`.
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        parse::parse(input, &|path| path.is_file())
    }

    /// Whether any term needs the image tower.
    pub fn has_images(&self) -> bool {
        self.terms.iter().any(|t| !matches!(t.term, Term::Text(_)))
    }

    /// Whether embedding the query needs the text tower.
    pub fn has_texts(&self) -> bool {
        self.terms.iter().any(|t| matches!(t.term, Term::Text(_)))
    }

    /// The query's vector: the normalised weighted sum of its terms' embeddings.
    pub fn embed(&self, clip: &Clip) -> Result<Embedding, Error> {
        let texts: Vec<&str> = self
            .terms
            .iter()
            .filter_map(|t| match &t.term {
                Term::Text(text) => Some(text.as_str()),
                _ => None,
            })
            .collect();
        let mut text_vectors = clip.embed_texts(&texts)?.into_iter();
        let mut images = Vec::new();
        for t in &self.terms {
            match &t.term {
                Term::ImagePath(path) => images.push(clip.decode(path)?),
                Term::Image(image) => images.push(image.clone()),
                Term::Text(_) => {}
            }
        }
        let mut image_vectors = clip.embed_images(&images)?.into_iter();
        let mut sum = vec![0f32; clip.embed_dim()];
        for t in &self.terms {
            let vector = match t.term {
                Term::Text(_) => text_vectors.next(),
                _ => image_vectors.next(),
            }
            .expect("one embedding per term");
            for (s, v) in sum.iter_mut().zip(vector) {
                *s += t.weight * v;
            }
        }
        let norm = sum.iter().map(|v| v * v).sum::<f32>().sqrt();
        if norm < 1e-6 {
            return Err(Error::EmptyQuery);
        }
        sum.iter_mut().for_each(|v| *v /= norm);
        Ok(sum)
    }
}
