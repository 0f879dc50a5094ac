//! `xsearch index`: add or refresh folders in the index.

use std::time::Instant;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use xsearch::{Engine, IngestEvent, IngestSummary};

use crate::args::IndexArgs;
use crate::output::{path_text, warn, Printer};
use crate::progress;
use crate::Outcome;

#[derive(Serialize)]
struct SummaryRecord<'a> {
    #[serde(flatten)]
    summary: &'a IndexSummaryFields,
    seconds: f64,
}

/// The summary's counts, as JSON.
#[derive(Serialize)]
struct IndexSummaryFields {
    found: usize,
    unchanged: usize,
    added: usize,
    updated: usize,
    reused: usize,
    backfilled: usize,
    removed: usize,
    failed: usize,
    special: usize,
}

impl From<&IngestSummary> for IndexSummaryFields {
    fn from(s: &IngestSummary) -> Self {
        Self {
            found: s.found,
            unchanged: s.unchanged,
            added: s.added,
            updated: s.updated,
            reused: s.reused,
            backfilled: s.backfilled,
            removed: s.removed,
            failed: s.failed,
            special: s.special,
        }
    }
}

pub fn run(
    engine: &Engine,
    args: &IndexArgs,
    quiet: bool,
    printer: &mut Printer,
) -> Result<Outcome> {
    let started = Instant::now();
    let bar = ProgressBar::hidden();
    if progress::enabled(quiet) {
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    }
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {pos}/{len} images {per_sec} eta {eta} {wide_bar} {msg}",
        )
        .expect("the template is valid"),
    );
    let skipped = std::sync::atomic::AtomicUsize::new(0);
    let observer = |event: IngestEvent<'_>| match event {
        IngestEvent::Walked { pending, .. } => bar.set_length(pending as u64),
        IngestEvent::Committed { files } => bar.inc(files as u64),
        IngestEvent::Skipped { path, reason } => {
            let n = skipped.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            bar.suspend(|| warn(&format_args!("{}: {reason}", path_text(path))));
            bar.inc(1);
            bar.set_message(format!("{n} skipped"));
        }
        _ => {}
    };
    let summary = engine.ingest(&args.paths, &observer)?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let fields = IndexSummaryFields::from(&summary);
    if printer.is_json() {
        printer.record(
            &SummaryRecord {
                summary: &fields,
                seconds,
            },
            String::new,
        )?;
        printer.flush()?;
    } else if !quiet {
        eprintln!("{}", summary_line(&summary, seconds));
    }
    Ok(if summary.failed > 0 {
        Outcome::Errors
    } else if summary.found == 0 {
        Outcome::NothingFound
    } else {
        Outcome::Found
    })
}

fn summary_line(s: &IngestSummary, seconds: f64) -> String {
    let embedded = s.added + s.updated - s.reused;
    let mut line = format!(
        "indexed {} new and {} changed files ({embedded} embedded, {} reused) in {seconds:.1}s; \
         {} unchanged",
        s.added, s.updated, s.reused, s.unchanged
    );
    if s.backfilled > 0 {
        line.push_str(&format!(
            ", {} gained their metadata (read, not embedded)",
            s.backfilled
        ));
    }
    if s.removed > 0 {
        line.push_str(&format!(", {} removed (gone from disk)", s.removed));
    }
    if s.failed > 0 {
        line.push_str(&format!(", {} skipped (see xsearch status)", s.failed));
    }
    if s.videos > 0 {
        let plural = if s.videos == 1 { "" } else { "s" };
        line.push_str(&format!(", {} video{plural} skipped", s.videos));
    }
    if s.special > 0 {
        line.push_str(&format!(
            ", {} special files not read (FIFOs, sockets, devices, broken links)",
            s.special
        ));
    }
    line
}
