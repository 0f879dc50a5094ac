//! Zero-shot tagging: rank a list of labels for each image, without an index.

use crate::{Clip, Embedding, Error};

/// One label's score for one image.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelScore {
    /// Index of the label in the list given to [`tag`].
    pub label: usize,
    /// Cosine similarity between the image and the label.
    pub score: f32,
}

/// Ranks `labels` for each image embedding, best first. The labels are embedded once.
pub fn tag(
    clip: &Clip,
    images: &[Embedding],
    labels: &[&str],
) -> Result<Vec<Vec<LabelScore>>, Error> {
    let label_vectors = clip.embed_texts(labels)?;
    Ok(images
        .iter()
        .map(|image| {
            let mut scores: Vec<LabelScore> = label_vectors
                .iter()
                .enumerate()
                .map(|(label, v)| LabelScore {
                    label,
                    score: image.iter().zip(v).map(|(a, b)| a * b).sum(),
                })
                .collect();
            scores.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.label.cmp(&b.label)));
            scores
        })
        .collect())
}
