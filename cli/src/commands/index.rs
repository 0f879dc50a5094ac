//! `xsearch index`: add or refresh folders in the index, once or (`--watch`) until stopped.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use xsearch::{Engine, IngestEvent, IngestObserver, IngestSummary, Pass, WatchEvent, WatchOptions};

use crate::args::IndexArgs;
use crate::output::{path_text, warn, JsonPath, Printer};
use crate::progress;
use crate::Outcome;

#[derive(Serialize)]
struct SummaryRecord<'a> {
    /// With `--watch`, which pass: `initial`, `changes` or `rescan`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pass: Option<&'static str>,
    #[serde(flatten)]
    summary: &'a IndexSummaryFields,
    seconds: f64,
}

/// The summary's counts, as JSON (here and in `serve --watch`'s status).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct IndexSummaryFields {
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
    let progress = Progress::new(quiet, args.watch);
    if args.watch {
        return watch(engine, args, quiet, printer, &progress);
    }
    let summary = engine.ingest(&args.paths, &progress)?;
    progress.finish();
    report(printer, quiet, None, &summary, started.elapsed())?;
    Ok(Outcome::of_ingest(&summary))
}

/// `--dry-run`: the image files the run would read, in the walk's order, as they are found.
pub fn dry_run(engine: &Engine, args: &IndexArgs, printer: &mut Printer) -> Result<Outcome> {
    let count = engine.pending(&args.paths, |path| -> Result<()> {
        let path = JsonPath::new(path);
        printer.record(&path, || path.text().to_owned())?;
        Ok(())
    })?;
    printer.flush()?;
    Ok(if count == 0 {
        Outcome::NothingFound
    } else {
        Outcome::Found
    })
}

/// `--watch`: indexes, then applies changes until SIGINT or SIGTERM, reporting each pass that
/// changed something (each pass, in JSON). A clean stop is exit status 0, whatever was skipped
/// on the way (listed as it happened, once, and by `xsearch status`).
fn watch(
    engine: &Engine,
    args: &IndexArgs,
    quiet: bool,
    printer: &mut Printer,
    progress: &Progress,
) -> Result<Outcome> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // The first signal stops the watcher between batches; a second one ends the process
        // at once, in case stopping takes too long for the person waiting.
        signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(&stop))
            .and_then(|_| signal_hook::flag::register(signal, Arc::clone(&stop)))
            .context("could not install the signal handlers")?;
    }
    let options = WatchOptions::default().rescan_every(Duration::from_secs(args.rescan.seconds));
    let printer = Mutex::new(printer);
    let failed = Mutex::new(None);
    let observer = |event: WatchEvent<'_>| match event {
        WatchEvent::Ingest(event) => progress.event(event),
        WatchEvent::Applied {
            pass,
            summary,
            took,
        } => {
            progress.finish();
            // Files that failed before are met again by every rescan: people hear news only;
            // programs (JSON) get every pass.
            let skipped = progress.skipped.load(Ordering::Relaxed);
            let news =
                summary.added + summary.updated + summary.removed + summary.backfilled + skipped
                    > 0;
            let mut printer = printer.lock().unwrap_or_else(|p| p.into_inner());
            if pass == Pass::Initial || news || printer.is_json() {
                if let Err(err) = report(&mut printer, quiet, Some(pass), summary, took) {
                    // stdout is gone (a closed pipe): nothing more can be reported, so stop.
                    *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(err);
                    stop.store(true, Ordering::Relaxed);
                }
            }
            if pass == Pass::Initial && !quiet {
                eprintln!(
                    "watching for changes (full rescan every {}s); Ctrl-C or SIGTERM stops",
                    args.rescan.seconds
                );
            }
        }
        WatchEvent::Unwatched { path, reason } => {
            progress.suspend(|| warn(&format_args!("{}: {reason}", path_text(path))));
        }
        _ => {}
    };
    engine.watch(&args.paths, &options, &observer, &stop)?;
    match failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(err) => Err(err),
        None => Ok(Outcome::Found),
    }
}

/// The progress bar of the pass under way (drawn on a terminal only) and its skipped files.
struct Progress {
    bar: ProgressBar,
    /// Files of this pass reported as skipped.
    skipped: AtomicUsize,
    /// With `--watch`: the files (and why) reported as skipped so far. Each rescan meets the
    /// files that failed before again; they are said once.
    said: Option<Mutex<HashSet<(PathBuf, String)>>>,
}

impl Progress {
    fn new(quiet: bool, watch: bool) -> Self {
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
        Self {
            bar,
            skipped: AtomicUsize::new(0),
            said: watch.then(Mutex::default),
        }
    }

    fn suspend(&self, f: impl FnOnce()) {
        self.bar.suspend(f);
    }

    /// Clears the bar at the end of a pass.
    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl IngestObserver for Progress {
    fn event(&self, event: IngestEvent<'_>) {
        match event {
            IngestEvent::Walked { pending, .. } => {
                // A new pass (the watcher makes many): a bar of its own.
                self.bar.reset();
                self.skipped.store(0, Ordering::Relaxed);
                self.bar.set_message("");
                self.bar.set_length(pending as u64);
            }
            IngestEvent::Committed { files } => self.bar.inc(files as u64),
            IngestEvent::Skipped { path, reason } => {
                if let Some(said) = &self.said {
                    let mut said = said.lock().unwrap_or_else(|p| p.into_inner());
                    if !said.insert((path.to_path_buf(), reason.to_owned())) {
                        return;
                    }
                }
                let n = self.skipped.fetch_add(1, Ordering::Relaxed) + 1;
                self.suspend(|| warn(&format_args!("{}: {reason}", path_text(path))));
                self.bar.inc(1);
                self.bar.set_message(format!("{n} skipped"));
            }
            _ => {}
        }
    }
}

/// Prints what a pass did: a JSON record on stdout, or a line on stderr.
fn report(
    printer: &mut Printer,
    quiet: bool,
    pass: Option<Pass>,
    summary: &IngestSummary,
    took: Duration,
) -> Result<()> {
    let seconds = took.as_secs_f64();
    let fields = IndexSummaryFields::from(summary);
    if printer.is_json() {
        printer.record(
            &SummaryRecord {
                pass: pass.map(pass_name),
                summary: &fields,
                seconds,
            },
            String::new,
        )?;
        printer.flush()?;
    } else if !quiet {
        let line = summary_line(summary, seconds);
        match pass {
            Some(Pass::Changes) => eprintln!("changes: {line}"),
            Some(Pass::Rescan) => eprintln!("rescan: {line}"),
            Some(Pass::Initial) | None => eprintln!("{line}"),
        }
    }
    Ok(())
}

pub(crate) fn pass_name(pass: Pass) -> &'static str {
    match pass {
        Pass::Initial => "initial",
        Pass::Changes => "changes",
        Pass::Rescan => "rescan",
    }
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
