//! `serve --watch`: the watcher on a thread of its own beside the server, and what
//! `/api/status` says about it.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::Result;
use serde::Serialize;
use xsearch::{IngestEvent, WatchEvent, WatchObserver, WatchOptions};

use super::App;
use crate::commands::index::{pass_name, IndexSummaryFields};
use crate::output::{path_text, warn};

/// What the watcher is doing, as `/api/status` shows it in `indexing`.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Indexing {
    /// The folders watched.
    pub roots: Vec<String>,
    /// Whether a pass is under way.
    pub busy: bool,
    /// Files the pass under way has to index, and how many of them are done.
    pub pending: usize,
    pub done: usize,
    /// Passes applied so far (the first is the initial index run).
    pub passes: usize,
    /// What the last pass did.
    pub last: Option<PassRecord>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PassRecord {
    pass: &'static str,
    #[serde(flatten)]
    summary: IndexSummaryFields,
    seconds: f64,
}

/// The watcher's state, updated from its threads.
#[derive(Debug, Default)]
pub struct Progress(Mutex<Indexing>);

impl Progress {
    pub fn new(roots: &[PathBuf]) -> Self {
        Self(Mutex::new(Indexing {
            roots: roots.iter().map(|r| path_text(r)).collect(),
            ..Indexing::default()
        }))
    }

    pub fn snapshot(&self) -> Indexing {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl WatchObserver for Progress {
    fn event(&self, event: WatchEvent<'_>) {
        let mut state = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match event {
            WatchEvent::Ingest(IngestEvent::Walked { pending, .. }) => {
                state.busy = true;
                state.pending = pending;
                state.done = 0;
            }
            WatchEvent::Ingest(IngestEvent::Committed { files }) => state.done += files,
            // Listed by the status's failures; each rescan meets them again, so not said here.
            WatchEvent::Ingest(IngestEvent::Skipped { .. }) => state.done += 1,
            WatchEvent::Applied {
                pass,
                summary,
                took,
            } => {
                state.busy = false;
                state.passes += 1;
                state.last = Some(PassRecord {
                    pass: pass_name(pass),
                    summary: summary.into(),
                    seconds: took.as_secs_f64(),
                });
            }
            WatchEvent::Unwatched { path, reason } => {
                warn(&format_args!("{}: {reason}", path_text(path)));
            }
            _ => {}
        }
    }
}

/// The watcher's thread and its stop flag.
pub struct Watcher {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Result<(), xsearch::Error>>,
}

impl Watcher {
    /// Starts watching `roots` into `app`'s engine (opened as the writer); `ended` is told when
    /// the watcher ends, which before a stop means it failed.
    pub fn start(
        app: &App,
        roots: Vec<PathBuf>,
        options: WatchOptions,
        ended: tokio::sync::oneshot::Sender<()>,
    ) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let app = Arc::clone(app);
        let thread = std::thread::Builder::new()
            .name("watch".into())
            .spawn(move || {
                let progress = app
                    .indexing
                    .as_ref()
                    .expect("a watching server has progress");
                let result = app.engine.watch(&roots, &options, progress, &flag);
                let _ = ended.send(());
                result
            })?;
        Ok(Self { stop, thread })
    }

    /// Stops the watcher: the pass under way commits what it prepared, whole.
    pub fn stop(self) -> Result<()> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        match self.thread.join() {
            Ok(result) => Ok(result?),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}
