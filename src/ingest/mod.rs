//! Ingest: walking folders, and the pipeline that decodes, embeds and commits images in batches.

pub mod pipeline;
pub mod walk;
