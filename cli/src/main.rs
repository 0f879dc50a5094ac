//! The `xsearch` command: parses arguments, dispatches to one command, maps the outcome to an
//! exit code. Every capability lives in the `xsearch` library.

mod args;
mod commands;
mod date;
mod hint;
mod output;
mod preview;
mod progress;
mod records;
mod serve;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use xsearch::{
    Engine, EngineOptions, IndexError, IngestOptions, Location, OpenMode, RawPairs, WatchOptions,
    INDEX_FORMAT_VERSION,
};

use crate::args::{Cli, Command, GlobalArgs, RawPairsArg, TextsCommand};
use crate::output::Printer;

/// How a run ended when it did not fail outright (a failure is exit code 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Results were printed (exit 0).
    Found,
    /// The run finished but found nothing (exit 1).
    NothingFound,
    /// The run finished, but some inputs were skipped with an error (exit 2).
    Errors,
}

impl Outcome {
    /// How an index or import run that committed `summary` ended.
    fn of_ingest(summary: &xsearch::IngestSummary) -> Self {
        if summary.failed > 0 {
            Outcome::Errors
        } else if summary.found == 0 {
            Outcome::NothingFound
        } else {
            Outcome::Found
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    quiet_contained_panics();
    match run(cli) {
        Ok(Outcome::Found) => ExitCode::SUCCESS,
        Ok(Outcome::NothingFound) => ExitCode::from(1),
        Ok(Outcome::Errors) => ExitCode::from(2),
        Err(err) => {
            eprintln!("xsearch: {}", hint::render(&err));
            ExitCode::from(2)
        }
    }
}

/// A decoder's panic on one file is caught by the library and reported as that file's error
/// (`PATH: the TIFF decoder crashed on this file (...)`); the default hook would print it
/// first, raw. Every other panic is a bug of ours and still prints as usual.
fn quiet_contained_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !xsearch::decode::panic_is_contained() {
            default(info);
        }
    }));
}

fn run(cli: Cli) -> Result<Outcome> {
    let global = &cli.global;
    if let Some(threads) = global.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .context("could not start the worker threads")?;
    }
    let mut printer = Printer::new(global.json);
    let download = progress::Download::new(global.quiet);
    match &cli.command {
        Command::Embed(args) => {
            let engine = Engine::open(&index_model_options(global), Some(&download))?;
            commands::embed::run(&engine, args, &mut printer)
        }
        Command::Tag(args) => {
            let engine = Engine::open(&index_model_options(global), Some(&download))?;
            commands::tag::run(&engine, args, &mut printer)
        }
        Command::Index(args) if args.dry_run => {
            // Reads only: an index that does not exist yet holds nothing, and is not created.
            let dir = index_dir(global)?;
            let options = if index_exists(&dir)? {
                model_options(global).index(dir).mode(OpenMode::Read)
            } else {
                model_options(global)
            };
            let engine = open_engine(&options, global.quiet, &download)?;
            commands::index::dry_run(&engine, args, &mut printer)
        }
        Command::Import(args) => {
            let (model, lines) = commands::import::open(&args.file)?;
            let dir = index_dir(global)?;
            // A new index takes the records' model unless another is named; an existing one
            // its own, which must be the records'.
            let options = match &global.model {
                None if !index_exists(&dir)? => EngineOptions::new(&model.source),
                _ => model_options(global),
            };
            let options = options.index(dir).mode(OpenMode::Create);
            let engine = open_engine(&options, global.quiet, &download)?;
            commands::import::run(&engine, &model, lines, global.quiet, &mut printer)
        }
        Command::Index(args) => {
            let ingest = IngestOptions::default()
                .follow_symlinks(args.follow_symlinks)
                .raw_pairs(match args.raw_pairs {
                    RawPairsArg::Jpeg => RawPairs::JpegOnly,
                    RawPairsArg::Both => RawPairs::Both,
                })
                .batch_size(args.batch_size);
            let options = index_options(global)?.mode(OpenMode::Create).ingest(ingest);
            let engine = open_engine(&options, global.quiet, &download)?;
            commands::index::run(&engine, args, global.quiet, &mut printer)
        }
        Command::Query(args) => {
            // Parsed before anything loads: a syntax error costs nothing, and whether the
            // text tower is needed decides what to load while the index opens.
            let query = commands::query::parse(args)?;
            let options = index_options(global)?
                .mode(OpenMode::Read)
                .preload_text(query.has_texts());
            let engine = open_engine(&options, global.quiet, &download)?;
            let outcome = commands::query::run(&engine, &query, args, &mut printer)?;
            exit_without_teardown(engine)?;
            Ok(outcome)
        }
        Command::Texts(TextsCommand::Add { file }) => {
            let options = index_options(global)?.mode(OpenMode::Create);
            let engine = open_engine(&options, global.quiet, &download)?;
            commands::texts::add(&engine, file, global.quiet)
        }
        Command::Status => commands::status::run(&index_dir(global)?, &mut printer),
        Command::Dupes(args) => {
            let options = index_options(global)?.mode(OpenMode::Read);
            let engine = open_engine(&options, global.quiet, &download)?;
            let outcome = commands::dupes::run(&engine, args, &mut printer)?;
            exit_without_teardown(engine)?;
            Ok(outcome)
        }
        Command::Serve(args) => {
            // Checked before the model loads: a refused address costs nothing.
            let token = serve::Token::new(args.addr, args.token.as_deref())?;
            // Watching makes the server the index's writer, as `xsearch index` is.
            let watch = (!args.watch.is_empty()).then(|| serve::Watch {
                roots: args.watch.clone(),
                options: WatchOptions::default()
                    .rescan_every(std::time::Duration::from_secs(args.rescan.seconds)),
            });
            let location = index_dir(global)?;
            if let xsearch::Location::Milvus(url) = xsearch::Location::parse(&location)? {
                anyhow::bail!(
                    "{url}: `xsearch serve` does not serve a Milvus index yet (its thumbnail \
                     cache and watcher assume a directory)\n\nSearch it with `xsearch query \
                     --index {url}`, or serve a directory index."
                );
            }
            let mode = if watch.is_some() {
                OpenMode::Create
            } else {
                OpenMode::Read
            };
            let options = index_options(global)?.mode(mode).preload_text(true);
            let engine = open_engine(&options, global.quiet, &download)?;
            let timeout = std::time::Duration::from_secs_f64(args.client_timeout);
            serve::run(engine, args.addr, token, timeout, watch)?;
            Ok(Outcome::Found)
        }
    }
}

/// Ends a read-only command: leaves the engine to the OS. Freeing a large index's maps and
/// tables piece by piece takes longer than a whole query, and the process is about to exit,
/// which frees them at once.
fn exit_without_teardown(engine: Engine) -> Result<()> {
    engine.flush()?;
    std::mem::forget(engine);
    Ok(())
}

/// The index directory: `--index`, `XSEARCH_INDEX`, or the platform's data directory.
fn index_dir(global: &GlobalArgs) -> Result<PathBuf> {
    match &global.index {
        Some(dir) => Ok(dir.clone()),
        None => Ok(dirs::data_dir()
            .context(
                "no data directory on this platform\n\nPass --index <DIR> or set XSEARCH_INDEX.",
            )?
            .join("xsearch")),
    }
}

/// Whether the index at `location` exists: a directory, or a collection the Milvus server
/// holds (asked of it).
fn index_exists(location: &Path) -> Result<bool> {
    match Location::parse(location)? {
        Location::Dir(dir) => Ok(dir.exists()),
        Location::Milvus(_) => match Engine::inspect(location) {
            Ok(_) => Ok(true),
            Err(xsearch::Error::Index(IndexError::NoCollection { .. })) => Ok(false),
            Err(err) => Err(err.into()),
        },
    }
}

/// The model the global arguments name; without one, the engine takes the model the index
/// records (or the default hub model).
fn model_options(global: &GlobalArgs) -> EngineOptions {
    match &global.model {
        Some(model) => EngineOptions::new(model),
        None => EngineOptions::default(),
    }
}

/// For the commands that use no index (`embed`, `tag`): the model named, else the one the
/// index records, so that their vectors and scores are those of the index's space.
fn index_model_options(global: &GlobalArgs) -> EngineOptions {
    match index_dir(global) {
        Ok(location) => model_options(global).model_of(location),
        // No data directory and no --index: there is no index to ask.
        Err(_) => model_options(global),
    }
}

/// The model and the index the global arguments name, opening an existing index.
fn index_options(global: &GlobalArgs) -> Result<EngineOptions> {
    Ok(model_options(global).index(index_dir(global)?))
}

/// Opens the model and the index, telling on stderr when the index was converted from an older
/// format or its graph had to be repaired.
fn open_engine(
    options: &EngineOptions,
    quiet: bool,
    download: &progress::Download,
) -> Result<Engine> {
    let engine = Engine::open(options, Some(download))?;
    if let (Some(report), Some(dir), false) = (engine.open_report(), engine.index_dir(), quiet) {
        if let Some(from) = report.converted_from {
            eprintln!(
                "xsearch: {}: converted the index from format {from} to format \
                 {INDEX_FORMAT_VERSION}",
                dir.display(),
            );
        }
        for (collection, status) in [("images", &report.images), ("texts", &report.texts)] {
            if status.is_repair() {
                eprintln!("xsearch: {}: {collection}: {status}", dir.display());
            }
        }
    }
    Ok(engine)
}
