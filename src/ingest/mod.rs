//! Ingest: walking folders, decoding images, embedding them in batches.

pub mod decode;
pub mod pipeline;
pub mod walk;
