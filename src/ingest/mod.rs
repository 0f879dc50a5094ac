//! Ingest: walking folders, the pipeline that decodes, embeds and commits images in batches,
//! the watcher that keeps an index fresh, and records embedded apart from an index.

pub mod pipeline;
pub mod records;
pub mod walk;
pub mod watch;
