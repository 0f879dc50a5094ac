//! What a search asks for besides the query: how many hits, and which images may answer.

use std::path::{Path, PathBuf};

/// Options of [`crate::Engine::search`] and [`crate::Engine::search_texts`].
///
/// Built from [`SearchOptions::default`] (10 hits, no filter) or [`SearchOptions::new`] and
/// refined with setters; the struct is `#[non_exhaustive]`, so filters added later (capture
/// date, camera, minimum score, order) do not break callers:
///
/// ```
/// let options = xsearch::SearchOptions::new(5).within("/photos/2024");
/// assert_eq!(options.k, 5);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SearchOptions {
    /// How many hits to return at most.
    pub k: usize,
    /// Only images under this folder (images only: texts have no path).
    pub within: Option<PathBuf>,
}

impl Default for SearchOptions {
    fn default() -> Self {
        Self::new(10)
    }
}

impl SearchOptions {
    /// At most `k` hits, no filter.
    pub fn new(k: usize) -> Self {
        Self { k, within: None }
    }

    /// At most `k` hits.
    pub fn k(mut self, k: usize) -> Self {
        self.k = k;
        self
    }

    /// Only images under `dir` (made absolute against the current directory when searched).
    pub fn within(mut self, dir: impl Into<PathBuf>) -> Self {
        self.within = Some(dir.into());
        self
    }

    /// The image filter these options describe, `None` when every image may answer. Each
    /// filter to come adds its test here, so the engine's search does not change.
    pub(crate) fn image_filter(&self) -> Option<ImageFilter> {
        let within = self
            .within
            .as_ref()
            .map(|dir| std::path::absolute(dir).unwrap_or_else(|_| dir.clone()))?;
        Some(ImageFilter { within })
    }
}

/// The resolved filter of a search, tested against each candidate image's path.
pub(crate) struct ImageFilter {
    within: PathBuf,
}

impl ImageFilter {
    pub(crate) fn accepts(&self, path: &Path) -> bool {
        path.starts_with(&self.within)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_filter_by_default_and_within_is_absolute() {
        assert!(SearchOptions::default().image_filter().is_none());
        assert_eq!(SearchOptions::default().k, 10);
        let filter = SearchOptions::new(3).within("/a/b").image_filter().unwrap();
        assert!(filter.accepts(Path::new("/a/b/c.jpg")));
        assert!(!filter.accepts(Path::new("/a/bc.jpg")));
        let relative = SearchOptions::new(3).within("x").image_filter().unwrap();
        assert!(relative.accepts(&std::env::current_dir().unwrap().join("x/y.jpg")));
    }
}
