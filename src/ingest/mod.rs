//! Ingest: walking folders, decoding images, embedding them in batches.

pub mod decode;
