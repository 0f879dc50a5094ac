//! xsearch: cross-modal image retrieval with CLIP.

pub mod model;
