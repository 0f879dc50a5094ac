//! `xsearch embed`: print the embeddings of images or texts.

use anyhow::Result;
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
