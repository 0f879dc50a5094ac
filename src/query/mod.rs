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

use crate::{Clip, Embedding, Error, ImageId};

/// What one term of a query describes.
#[derive(Debug, Clone)]
pub enum Term {
    /// A text, embedded by the text tower.
    Text(String),
    /// An image file, decoded and embedded by the image tower.
    ImagePath(PathBuf),
    /// Decoded pixels, embedded by the image tower.
    Image(DynamicImage),
    /// An indexed image, by its id: its stored vector, so no tower runs ("more like this").
    Indexed(ImageId),
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

    /// Parses the same syntax with every term a text, never a file: for queries from
    /// someone who must not make this process read its files (the server's `q=`).
    pub fn parse_texts(input: &str) -> Result<Self, ParseError> {
        parse::parse(input, &|_| false)
    }

    /// Whether any term needs the image tower.
    pub fn has_images(&self) -> bool {
        self.terms
            .iter()
            .any(|t| matches!(t.term, Term::ImagePath(_) | Term::Image(_)))
    }

    /// Whether embedding the query needs the text tower.
    pub fn has_texts(&self) -> bool {
        self.terms.iter().any(|t| matches!(t.term, Term::Text(_)))
    }

    /// The query's vector: the normalised weighted sum of its terms' embeddings. Without an
    /// index, an [`Term::Indexed`] term is [`Error::NoIndexOpened`].
    pub fn embed(&self, clip: &Clip) -> Result<Embedding, Error> {
        self.embed_with(clip, &|_| Err(Error::NoIndexOpened))
    }

    /// [`Query::embed`], with `stored` giving the vectors of [`Term::Indexed`] terms.
    pub(crate) fn embed_with(
        &self,
        clip: &Clip,
        stored: &dyn Fn(ImageId) -> Result<Embedding, Error>,
    ) -> Result<Embedding, Error> {
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
                Term::Text(_) | Term::Indexed(_) => {}
            }
        }
        let mut image_vectors = clip.embed_images(&images)?.into_iter();
        let weighted: Vec<(f32, Embedding)> = self
            .terms
            .iter()
            .map(|t| {
                let vector = match t.term {
                    Term::Text(_) => text_vectors.next(),
                    Term::Indexed(id) => Some(stored(id)?),
                    Term::ImagePath(_) | Term::Image(_) => image_vectors.next(),
                };
                Ok((t.weight, vector.expect("one embedding per term")))
            })
            .collect::<Result<_, Error>>()?;
        weighted_sum(&weighted, clip.embed_dim())
    }
}

/// The normalised weighted sum of unit vectors; [`Error::EmptyQuery`] when the weights are all
/// zero or the terms cancel out, [`Error::BadWeight`] for a weight that is not finite.
///
/// Weights are divided by the largest |weight| first: the sum then stays within a few units
/// whatever their scale, so `1e20:cat` cannot overflow and `1e-15:cat` does not vanish below
/// the cancellation threshold, and both mean the same as `cat`. Only the direction of the sum
/// matters, and scaling every weight by the same factor does not change it.
pub fn weighted_sum(terms: &[(f32, Embedding)], dim: usize) -> Result<Embedding, Error> {
    if let Some(&(weight, _)) = terms.iter().find(|(w, _)| !w.is_finite()) {
        return Err(Error::BadWeight { weight });
    }
    let largest = terms.iter().map(|(w, _)| w.abs()).fold(0f32, f32::max);
    if largest == 0.0 {
        return Err(Error::EmptyQuery);
    }
    let mut sum = vec![0f64; dim];
    for (weight, vector) in terms {
        let weight = f64::from(*weight) / f64::from(largest);
        for (s, v) in sum.iter_mut().zip(vector) {
            *s += weight * f64::from(*v);
        }
    }
    let norm = sum.iter().map(|v| v * v).sum::<f64>().sqrt();
    // Relative to the largest weight, now 1: terms that cancel to a millionth of it are noise.
    if norm < 1e-6 {
        return Err(Error::EmptyQuery);
    }
    Ok(sum.iter().map(|v| (v / norm) as f32).collect())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn unit(v: &[f32]) -> Embedding {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / norm).collect()
    }

    #[test]
    fn extreme_weights_on_one_term_are_that_term() {
        let cat = unit(&[3.0, 4.0, 0.0]);
        for weight in [1e-15, 1e-30, 1.0, 1e20, f32::MAX, -f32::MAX] {
            let sum = weighted_sum(&[(weight, cat.clone())], 3).unwrap();
            let sign = weight.signum();
            assert_eq!(
                sum,
                cat.iter().map(|x| sign * x).collect::<Vec<_>>(),
                "{weight}"
            );
        }
    }

    #[test]
    fn weights_that_are_zero_cancel_or_not_finite_are_refused() {
        let cat = unit(&[1.0, 0.0]);
        assert!(matches!(
            weighted_sum(&[(0.0, cat.clone())], 2),
            Err(Error::EmptyQuery)
        ));
        assert!(matches!(
            weighted_sum(&[(2.0, cat.clone()), (-2.0, cat.clone())], 2),
            Err(Error::EmptyQuery)
        ));
        for weight in [f32::NAN, f32::INFINITY] {
            assert!(matches!(
                weighted_sum(&[(weight, cat.clone())], 2),
                Err(Error::BadWeight { .. })
            ));
        }
    }

    fn vectors() -> impl Strategy<Value = Vec<(f32, Embedding)>> {
        let term = (
            prop_oneof![-1e30f32..1e30, -1.0f32..1.0, -1e-30f32..1e-30],
            prop::collection::vec(-1.0f32..1.0, 4),
        )
            .prop_filter("a vector with a direction", |(_, v)| {
                v.iter().any(|x| x.abs() > 1e-3)
            })
            .prop_map(|(w, v)| (w, unit(&v)));
        prop::collection::vec(term, 1..5)
    }

    proptest! {
        #[test]
        fn the_sum_is_a_unit_vector_whose_direction_ignores_a_common_scale(
            terms in vectors(),
            scale in prop_oneof![1e-20f32..1e-10, 0.5f32..2.0, 1e10f32..1e20],
        ) {
            let Ok(sum) = weighted_sum(&terms, 4) else {
                return Ok(()); // cancelled out
            };
            prop_assert!(sum.iter().all(|x| x.is_finite()));
            let norm = sum.iter().map(|x| x * x).sum::<f32>().sqrt();
            prop_assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
            let scaled: Vec<(f32, Embedding)> =
                terms.iter().map(|(w, v)| (w * scale, v.clone())).collect();
            // A weight scaled into the subnormals or to zero changes the query: skip those.
            prop_assume!(scaled.iter().zip(&terms).all(|((s, _), (w, _))| {
                *w == 0.0 || (s.is_normal() && ((s / scale) / w - 1.0).abs() < 1e-6)
            }));
            let again = weighted_sum(&scaled, 4).unwrap();
            for (a, b) in sum.iter().zip(&again) {
                prop_assert!((a - b).abs() < 1e-5, "{sum:?} vs {again:?}");
            }
        }
    }
}
