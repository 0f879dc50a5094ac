//! The `xsearch` command: parses arguments, dispatches to one command, maps the outcome to an
//! exit code. Every capability lives in the `xsearch` library.

mod args;
mod commands;
mod output;
mod preview;
mod progress;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use xsearch::{Clip, Engine, EngineConfig};

use crate::args::{Cli, Command, GlobalArgs, TextsCommand};
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(Outcome::Found) => ExitCode::SUCCESS,
        Ok(Outcome::NothingFound) => ExitCode::from(1),
        Ok(Outcome::Errors) => ExitCode::from(2),
        Err(err) => {
            eprintln!("xsearch: {err:#}");
            ExitCode::from(2)
        }
    }
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
            let clip = Clip::open(&global.model, Some(&download))?;
            commands::embed::run(&clip, args, &mut printer)
        }
        Command::Tag(args) => {
            let clip = Clip::open(&global.model, Some(&download))?;
            commands::tag::run(&clip, args, &mut printer)
        }
        Command::Index(args) => {
            let engine = open_engine(global, true, false, &download)?;
            commands::index::run(&engine, args, global.quiet, &mut printer)
        }
        Command::Query(args) => {
            // Parsed before anything loads: a syntax error costs nothing, and whether the
            // text tower is needed decides what to load while the index opens.
            let query = commands::query::parse(args)?;
            let engine = open_engine(global, false, query.has_texts(), &download)?;
            let outcome = commands::query::run(&engine, &query, args, &mut printer)?;
            exit_without_teardown(engine)?;
            Ok(outcome)
        }
        Command::Texts(TextsCommand::Add { file }) => {
            let engine = open_engine(global, true, false, &download)?;
            commands::texts::add(&engine, file, global.quiet)
        }
        Command::Status => {
            let engine = open_engine(global, false, false, &download)?;
            let outcome = commands::status::run(&engine, &global.model, &mut printer)?;
            exit_without_teardown(engine)?;
            Ok(outcome)
        }
    }
}

/// Ends a read-only command: flushes the store, then leaves the engine to the OS. Freeing a
/// large graph node by node takes longer than a whole query (about 0.4 s at 100k vectors),
/// and the process is about to exit, which frees it at once and releases the index lock.
fn exit_without_teardown(engine: Engine) -> Result<()> {
    engine.index().flush()?;
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

/// Opens the model and the index, telling on stderr when the index was converted from an older
/// format or its graph had to be repaired.
fn open_engine(
    global: &GlobalArgs,
    create: bool,
    preload_text: bool,
    download: &progress::Download,
) -> Result<Engine> {
    let config = EngineConfig {
        model: global.model.clone(),
        index: index_dir(global)?,
        create,
        preload_text,
    };
    let engine = Engine::open(&config, Some(download))?;
    let report = engine.open_report();
    if let (Some(from), false) = (report.converted_from, global.quiet) {
        eprintln!(
            "xsearch: {}: converted the index from format {from} to format {}",
            config.index.display(),
            xsearch_index::FORMAT_VERSION
        );
    }
    for (collection, status) in [("images", &report.images), ("texts", &report.texts)] {
        if status.is_repair() && !global.quiet {
            eprintln!(
                "xsearch: {}: {collection}: {status}",
                config.index.display()
            );
        }
    }
    Ok(engine)
}
