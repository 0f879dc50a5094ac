//! `xsearch tag`: rank labels for images, zero-shot, without an index.

use anyhow::Result;
use serde::Serialize;
use xsearch::Engine;

use crate::args::TagArgs;
use crate::commands::texts::read_lines;
use crate::output::{score4, warn, JsonPath, Printer};
use crate::Outcome;

#[derive(Serialize)]
struct TagRecord<'a> {
    rank: usize,
    score: f64,
    #[serde(flatten)]
    path: &'a JsonPath,
    text: &'a str,
}

pub fn run(engine: &Engine, args: &TagArgs, printer: &mut Printer) -> Result<Outcome> {
    let labels = read_lines(&args.labels)?;
    anyhow::ensure!(
        !labels.is_empty(),
        "{}: no labels in the file\n\nWrite one label per line, e.g. `a photo of a dog`.",
        args.labels.display()
    );
    let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
    let mut outcome = Outcome::Found;
    let mut images = Vec::new();
    let mut paths = Vec::new();
    for (path, result) in args.images.iter().zip(engine.embed_files(&args.images)?) {
        match result {
            Ok(embedding) => {
                images.push(embedding);
                paths.push(std::path::absolute(path).unwrap_or_else(|_| path.clone()));
            }
            Err(err) => {
                warn(&err);
                outcome = Outcome::Errors;
            }
        }
    }
    let ranked = engine.tag(&images, &labels)?;
    for (path, scores) in paths.iter().zip(ranked) {
        let path = JsonPath::new(path);
        for (i, s) in scores.iter().take(args.top).enumerate() {
            let record = TagRecord {
                rank: i + 1,
                score: score4(s.score),
                path: &path,
                text: labels[s.label],
            };
            printer.record(&record, || {
                format!("{}  {:.4}  {}", path.text(), s.score, labels[s.label])
            })?;
        }
    }
    printer.flush()?;
    Ok(outcome)
}
