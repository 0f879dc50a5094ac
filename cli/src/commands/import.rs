//! `xsearch import`: commit records made by `xsearch embed --stdin` into the index.

use std::io::BufReader;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use xsearch::{Engine, IngestEvent, IngestObserver, IngestSummary, ModelInfo};

use crate::output::{path_text, warn, Printer};
use crate::records::Lines;
use crate::{progress, Outcome};

/// The records of `file` (`-`: standard input), opened and their model line read.
pub fn open(file: &Path) -> Result<(ModelInfo, Lines<Box<dyn std::io::BufRead + Send>>)> {
    let (input, name): (Box<dyn std::io::BufRead + Send>, String) = if file == Path::new("-") {
        (Box::new(BufReader::new(std::io::stdin())), "-".into())
    } else {
        let opened = std::fs::File::open(file)
            .with_context(|| format!("{}: could not open the records", path_text(file)))?;
        (Box::new(BufReader::new(opened)), path_text(file))
    };
    Lines::open(input, name)
}

#[derive(Serialize)]
struct SummaryRecord {
    records: usize,
    unchanged: usize,
    added: usize,
    updated: usize,
    failed: usize,
    seconds: f64,
}

/// Commits the records of `lines`, embedded with `model`, reporting progress and a summary.
pub fn run(
    engine: &Engine,
    model: &ModelInfo,
    lines: Lines<Box<dyn std::io::BufRead + Send>>,
    quiet: bool,
    printer: &mut Printer,
) -> Result<Outcome> {
    let started = Instant::now();
    let progress = Progress::new(quiet);
    let summary = engine.import(&model.fingerprint, lines, &progress)?;
    progress.bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    if printer.is_json() {
        printer.record(
            &SummaryRecord {
                records: summary.found,
                unchanged: summary.unchanged,
                added: summary.added,
                updated: summary.updated,
                failed: summary.failed,
                seconds,
            },
            String::new,
        )?;
        printer.flush()?;
    } else if !quiet {
        eprintln!("{}", summary_line(&summary, seconds));
    }
    Ok(Outcome::of_ingest(&summary))
}

fn summary_line(s: &IngestSummary, seconds: f64) -> String {
    let mut line = format!(
        "imported {} new and {} changed records in {seconds:.1}s; {} unchanged",
        s.added, s.updated, s.unchanged
    );
    if s.failed > 0 {
        line.push_str(&format!(
            ", {} failures recorded (see xsearch status)",
            s.failed
        ));
    }
    line
}

/// A spinner counting committed records (on a terminal only); failures named on stderr.
struct Progress {
    bar: ProgressBar,
}

impl Progress {
    fn new(quiet: bool) -> Self {
        let bar = ProgressBar::hidden();
        if progress::enabled(quiet) {
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
        bar.set_style(
            ProgressStyle::with_template("{spinner} {pos} records committed {per_sec}")
                .expect("the template is valid"),
        );
        Self { bar }
    }
}

impl IngestObserver for Progress {
    fn event(&self, event: IngestEvent<'_>) {
        match event {
            IngestEvent::Committed { files } => self.bar.inc(files as u64),
            IngestEvent::Skipped { path, reason } => self
                .bar
                .suspend(|| warn(&format_args!("{}: {reason}", path_text(path)))),
            _ => {}
        }
    }
}
