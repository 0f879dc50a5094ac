//! `xsearch serve`: a web gallery and a JSON API over an engine, read-only unless `--watch`.
//!
//! - `mod.rs`: start (bind, the `listening on` line), the accept loop (hyper's HTTP/1 with a
//!   header read timeout), the view refresh, graceful stop on SIGINT/SIGTERM;
//! - `api.rs`: the routes (`dupes.rs`: `/api/dupes`); `params.rs`: their parameters, checked; `error.rs`: JSON errors;
//! - `auth.rs`: the token; `thumbs.rs`: the thumbnail cache; `page/`: the embedded web page;
//! - `watcher.rs`: `--watch`, the watcher on its own thread, and its progress for the status.
//!
//! The engine's calls block (the model, the index): they run on tokio's blocking threads, at
//! most `work` of them at once, so the async workers keep accepting and timing out clients.

mod api;
mod auth;
mod dupes;
mod error;
mod page;
mod params;
mod thumbs;
mod watcher;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use xsearch::{Engine, WatchOptions};

pub use auth::Token;
use error::ApiError;
use thumbs::Thumbs;
use watcher::{Progress, Watcher};

/// What every request shares.
pub struct Shared {
    engine: Engine,
    thumbs: Thumbs,
    token: Option<Token>,
    /// Engine calls running at once: each uses a core (and the model's threads besides).
    work: Semaphore,
    /// With `--watch`: what the watcher is doing.
    indexing: Option<Progress>,
}

/// `--watch`: the folders to keep indexed, and how.
pub struct Watch {
    pub roots: Vec<PathBuf>,
    pub options: WatchOptions,
}

type App = Arc<Shared>;

/// Open connections at most: past it, new ones wait in the listen queue.
const MAX_CONNECTIONS: usize = 1024;
/// How often the engine looks for a newer published view of the index.
const REFRESH_EVERY: Duration = Duration::from_secs(1);
/// How long a stop waits for requests in flight.
const DRAIN: Duration = Duration::from_secs(10);

/// Serves `engine` on `addr` until SIGINT or SIGTERM; with `watch`, keeps the index in step
/// with its folders meanwhile (the engine is then the writer). A watcher that fails stops the
/// server with its error.
pub fn run(
    engine: Engine,
    addr: SocketAddr,
    token: Option<Token>,
    timeout: Duration,
    watch: Option<Watch>,
) -> Result<()> {
    let index = engine
        .index_dir()
        .expect("serve opens an index")
        .to_path_buf();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let app = Arc::new(Shared {
        engine,
        thumbs: Thumbs::open(&index),
        token,
        work: Semaphore::new(cores.max(2)),
        indexing: watch.as_ref().map(|w| Progress::new(&w.roots)),
    });
    let (ended, watcher_ended) = tokio::sync::oneshot::channel();
    let watcher = watch
        .map(|w| Watcher::start(&app, w.roots, w.options, ended))
        .transpose()
        .context("could not start the watcher")?;
    let served = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the server's threads")?
        .block_on(serve(app, addr, timeout, watcher_ended));
    // After the drain: the watcher's pass under way commits whole, then it ends.
    let watched = watcher.map_or(Ok(()), Watcher::stop);
    served.and(watched)
}

async fn serve(
    app: App,
    addr: SocketAddr,
    timeout: Duration,
    watcher_ended: tokio::sync::oneshot::Receiver<()>,
) -> Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("{addr}: could not listen"))?;
    let local = listener.local_addr()?;
    let router = api::router(Arc::clone(&app), timeout);
    tokio::spawn(refresh(Arc::clone(&app)));
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let graceful = GracefulShutdown::new();
    let signal = stop_signal()?;
    // A watcher ends before a stop only when it fails; without one, the sender is dropped.
    let mut stop = std::pin::pin!(async move {
        tokio::select! {
            () = signal => {}
            Ok(()) = watcher_ended => {}
        }
    });
    eprintln!("listening on http://{local}/");
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&connections).acquire_owned() => permit.expect("never closed"),
            () = &mut stop => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of file descriptors, or a connection reset before it was taken: the
                // listener itself is fine. A pause keeps a persistent error from spinning.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(timeout)
            .serve_connection(
                TokioIo::new(stream),
                TowerToHyperService::new(router.clone()),
            );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A client that goes away or times out ends its connection; nothing to report.
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    // Requests in flight finish (keep-alive connections close after them), within reason.
    let _ = tokio::time::timeout(DRAIN, graceful.shutdown()).await;
    Ok(())
}

/// Keeps the engine on the newest view its writer published, so searches see an ingest
/// running beside the server. Says a failure once, not every second.
async fn refresh(app: App) {
    let mut last_error = None;
    loop {
        tokio::time::sleep(REFRESH_EVERY).await;
        let engine = Arc::clone(&app);
        let refreshed = tokio::task::spawn_blocking(move || engine.engine.refresh()).await;
        let error = match refreshed {
            Ok(Ok(_)) => None,
            Ok(Err(err)) => Some(crate::hint::render(&err.into())),
            Err(panic) => Some(panic.to_string()),
        };
        if let Some(error) = error.as_ref().filter(|e| last_error.as_ref() != Some(*e)) {
            eprintln!("xsearch: serve: {error}");
        }
        last_error = error;
    }
}

/// Resolves at SIGINT or SIGTERM. Both are caught from the call on, before the `listening`
/// line, so a stop sent as soon as it is read is never the default, abrupt one.
fn stop_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt()).context("could not catch SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("could not catch SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

impl Shared {
    /// Runs `work` on a blocking thread once one of the `work` permits is free.
    async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&Shared) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let _permit = self.work.acquire().await.expect("never closed");
        let app = Arc::clone(self);
        tokio::task::spawn_blocking(move || work(&app))
            .await
            .unwrap_or_else(|panic| {
                eprintln!("xsearch: serve: a request failed: {panic}");
                Err(ApiError::new(
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error",
                ))
            })
    }
}
