//! `xsearch status`: what the index holds.

use anyhow::Result;
use serde::Serialize;
use xsearch::Engine;

use crate::output::Printer;
use crate::Outcome;

#[derive(Serialize)]
struct StatusRecord<'a> {
    index: &'a str,
    model: &'a str,
    fingerprint: &'a str,
    dim: usize,
    images: usize,
    texts: usize,
    failures: Vec<FailureRecord>,
}

#[derive(Serialize)]
struct FailureRecord {
    path: String,
    reason: String,
}

pub fn run(engine: &Engine, printer: &mut Printer) -> Result<Outcome> {
    let status = engine.status()?;
    let failures: Vec<FailureRecord> = status
        .failures
        .into_iter()
        .map(|failure| FailureRecord {
            path: failure.path.to_string_lossy().into_owned(),
            reason: failure.reason,
        })
        .collect();
    let record = StatusRecord {
        index: &status.index.to_string_lossy(),
        model: &status.model,
        fingerprint: &status.fingerprint,
        dim: status.dim,
        images: status.images,
        texts: status.texts,
        failures,
    };
    printer.record(&record, || {
        let mut text = format!(
            "index     {}\nmodel     {} (fingerprint {}, {} dimensions)\nimages    {}\ntexts     {}\nfailures  {}",
            record.index, record.model, record.fingerprint, record.dim, record.images, record.texts,
            record.failures.len()
        );
        for f in &record.failures {
            text.push_str(&format!("\n  {}: {}", f.path, f.reason));
        }
        text
    })?;
    printer.flush()?;
    Ok(Outcome::Found)
}
