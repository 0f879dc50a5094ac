//! xsearch: cross-modal image retrieval with CLIP.

pub mod ingest;
pub mod kernels;
pub mod model;
