//! `xsearch embed`: print the embeddings of images or texts, or (`--stdin`) embed the files
//! listed on standard input into records for `xsearch import`.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::Serialize;
use xsearch::Engine;

use crate::args::EmbedArgs;
use crate::output::{warn, Printer};
use crate::Outcome;

#[derive(Serialize)]
struct EmbeddingRecord<'a> {
    kind: &'static str,
    input: &'a str,
    embedding: &'a [f32],
}

pub fn run(engine: &Engine, args: &EmbedArgs, printer: &mut Printer) -> Result<Outcome> {
    if args.stdin {
        return records(engine, args.null, printer);
    }
    let mut outcome = Outcome::Found;
    if !args.texts.is_empty() {
        let texts: Vec<&str> = args.texts.iter().map(String::as_str).collect();
        for (text, embedding) in texts.iter().zip(engine.embed_texts(&texts)?) {
            print(printer, "text", text, &embedding)?;
        }
    } else {
        for (path, result) in args.images.iter().zip(engine.embed_files(&args.images)?) {
            let input = crate::output::path_text(path);
            match result {
                Ok(embedding) => print(printer, "image", &input, &embedding)?,
                Err(err) => {
                    warn(&err);
                    outcome = Outcome::Errors;
                }
            }
        }
    }
    printer.flush()?;
    Ok(outcome)
}

fn print(printer: &mut Printer, kind: &'static str, input: &str, embedding: &[f32]) -> Result<()> {
    let record = EmbeddingRecord {
        kind,
        input,
        embedding,
    };
    printer.record(&record, || {
        let values: Vec<String> = embedding.iter().map(f32::to_string).collect();
        format!("{input}\t{}", values.join(" "))
    })?;
    Ok(())
}

/// `--stdin`: the model line, then a record or a failure line per path read, a batch at a
/// time, each batch flushed (a reader downstream, such as `xsearch import` or a Spark task,
/// gets it at once). Failures are also named on stderr.
fn records(engine: &Engine, null: bool, printer: &mut Printer) -> Result<Outcome> {
    printer.line(&crate::records::model_line(&engine.model_info())?)?;
    printer.flush()?;
    let separator = if null { b'\0' } else { b'\n' };
    let paths = BufReader::new(std::io::stdin())
        .split(separator)
        .filter(|name| !matches!(name, Ok(name) if name.is_empty()))
        .map(|name| {
            let name = name.context("could not read the paths on standard input")?;
            Ok(PathBuf::from(OsString::from_vec(name)))
        });
    let mut outcome = Outcome::NothingFound;
    engine.embed_paths(paths, |batch| -> Result<()> {
        for file in &batch {
            printer.line(&crate::records::file_line(file)?)?;
            outcome = match (file, outcome) {
                (Err(failure), _) => {
                    warn(&format_args!(
                        "{}: {}",
                        crate::output::path_text(&failure.path),
                        failure.reason
                    ));
                    Outcome::Errors
                }
                (Ok(_), Outcome::NothingFound) => Outcome::Found,
                (Ok(_), outcome) => outcome,
            };
        }
        Ok(printer.flush()?)
    })?;
    Ok(outcome)
}
