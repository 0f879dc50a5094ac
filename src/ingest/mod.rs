//! Ingest: walking folders, the pipeline that decodes, embeds and commits images in batches,
//! and the watcher that keeps an index fresh.

pub mod pipeline;
pub mod walk;
pub mod watch;
