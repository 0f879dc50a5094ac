//! `xsearch status`: what the index holds.

use std::path::Path;

use anyhow::Result;
use serde::Serialize;
use xsearch::Engine;

use crate::output::{JsonPath, Printer};
use crate::Outcome;

#[derive(Serialize)]
struct StatusRecord<'a> {
    index: &'a str,
    /// Where the model came from; `null` for an index written before it was recorded.
    model: Option<&'a str>,
    fingerprint: &'a str,
    dim: usize,
    images: usize,
    texts: usize,
    failures: Vec<FailureRecord>,
}

#[derive(Serialize)]
struct FailureRecord {
    #[serde(flatten)]
    path: JsonPath,
    reason: String,
}

/// Reads what the index in `dir` last published: no model, no lock, nothing written.
pub fn run(dir: &Path, printer: &mut Printer) -> Result<Outcome> {
    let status = Engine::inspect(dir)?;
    let failures: Vec<FailureRecord> = status
        .failures
        .into_iter()
        .map(|failure| FailureRecord {
            path: JsonPath::new(&failure.path),
            reason: failure.reason,
        })
        .collect();
    let record = StatusRecord {
        index: &status.index.to_string_lossy(),
        model: status.model.as_deref(),
        fingerprint: &status.fingerprint,
        dim: status.dim,
        images: status.images,
        texts: status.texts,
        failures,
    };
    printer.record(&record, || {
        let mut text = format!(
            "index     {}\nmodel     {} (fingerprint {}, {} dimensions)\nimages    {}\ntexts     {}\nfailures  {}",
            record.index, record.model.unwrap_or("(not recorded)"), record.fingerprint, record.dim, record.images, record.texts,
            record.failures.len()
        );
        for f in &record.failures {
            text.push_str(&format!("\n  {}: {}", f.path.text(), f.reason));
        }
        text
    })?;
    printer.flush()?;
    Ok(Outcome::Found)
}
