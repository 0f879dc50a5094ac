//! An application embedding xsearch: opens (or creates) an index with options, ingests folders
//! with its own progress callback, then answers several searches from several threads at once
//! on the one engine, and prints the hits.
//!
//!     cargo run --release -p xsearch-shapes -- demo/photos 300 --seed 7
//!     cargo run --release --example embed_engine -- \
//!         fixtures/models/shapes-tiny demo/index demo/photos "a red star" "a blue circle"
//!
//! Arguments: the model (a directory or a hub id), the index directory, a folder of photos,
//! then the queries (one thread each).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use xsearch::{
    Engine, EngineOptions, IngestEvent, IngestObserver, IngestOptions, OpenMode, Query,
    SearchOptions,
};

/// The application's progress report: counts what the pipeline tells, and says where it is
/// every hundred files. Called from the pipeline's threads, hence the atomics.
#[derive(Default)]
struct Progress {
    pending: AtomicUsize,
    done: AtomicUsize,
    skipped: AtomicUsize,
}

impl IngestObserver for Progress {
    fn event(&self, event: IngestEvent<'_>) {
        match event {
            IngestEvent::Walked { pending, unchanged } => {
                self.pending.store(pending, Ordering::Relaxed);
                eprintln!("{pending} photos to embed, {unchanged} unchanged");
            }
            IngestEvent::Committed { files } => {
                let before = self.done.fetch_add(files, Ordering::Relaxed);
                if (before + files) / 100 > before / 100 {
                    let pending = self.pending.load(Ordering::Relaxed);
                    eprintln!("{} of {pending} embedded", before + files);
                }
            }
            IngestEvent::Skipped { path, reason } => {
                self.skipped.fetch_add(1, Ordering::Relaxed);
                eprintln!("skipped {}: {reason}", path.display());
            }
            // Events added by later versions are not this application's business.
            _ => {}
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: embed_engine <MODEL> <INDEX DIR> <PHOTOS DIR> <QUERY>...";
    let (Some(model), Some(index), Some(photos)) = (args.next(), args.next(), args.next()) else {
        return Err(usage.into());
    };
    let queries: Vec<String> = args.collect();
    if queries.is_empty() {
        return Err(usage.into());
    }

    let options = EngineOptions::new(model)
        .index(&index)
        .mode(OpenMode::Create)
        .ingest(IngestOptions::default().batch_size(16));
    let engine = Engine::open(&options, None)?;

    let progress = Progress::default();
    let summary = engine.ingest(&[PathBuf::from(photos)], &progress)?;
    eprintln!(
        "{} added, {} updated, {} unchanged, {} skipped; the index holds {} photos",
        summary.added,
        summary.updated,
        summary.unchanged,
        progress.skipped.load(Ordering::Relaxed),
        engine.image_count()?
    );

    // One engine, shared by reference: every thread searches at the same time.
    let search = SearchOptions::new(3);
    let answers = std::thread::scope(|s| {
        let threads: Vec<_> = queries
            .iter()
            .map(|text| {
                let (engine, search) = (&engine, &search);
                s.spawn(move || engine.search(&Query::text(text.as_str()), search))
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("a search thread panicked"))
            .collect::<Vec<_>>()
    });
    for (text, hits) in queries.iter().zip(answers) {
        println!("{text}");
        for hit in hits? {
            println!("  {:.4}  {}", hit.score, hit.path.display());
        }
    }
    Ok(())
}
