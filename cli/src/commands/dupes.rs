//! `xsearch dupes`: groups of byte-identical files and of near-duplicates, each with a
//! suggested keeper. Reads the index only; never deletes or moves anything.

use anyhow::Result;
use serde::Serialize;
use xsearch::{DupKind, DupesOptions, Engine};

use crate::args::DupesArgs;
use crate::output::{path_text, score4, Printer};
use crate::Outcome;

/// One group as a JSON line: `{"group":1,"kind":"near","score":0.987,"paths":[...],"keep":...}`.
#[derive(Serialize)]
struct GroupRecord<'a> {
    group: usize,
    kind: &'a str,
    score: f64,
    paths: Vec<String>,
    keep: String,
}

pub fn run(engine: &Engine, args: &DupesArgs, printer: &mut Printer) -> Result<Outcome> {
    let mut options = DupesOptions::default().threshold(args.threshold);
    if let Some(dir) = &args.within {
        options = options.within(dir);
    }
    let groups = engine.duplicates(&options)?;
    for (i, group) in groups.iter().enumerate() {
        let record = GroupRecord {
            group: i + 1,
            kind: kind_name(group.kind),
            score: score4(group.score),
            paths: group.paths.iter().map(|p| path_text(p)).collect(),
            keep: path_text(&group.keep),
        };
        printer.record(&record, || text(&record))?;
    }
    printer.flush()?;
    Ok(if groups.is_empty() {
        Outcome::NothingFound
    } else {
        Outcome::Found
    })
}

/// A group's kind as JSON says it (here and in `serve`'s `/api/dupes`).
pub(crate) fn kind_name(kind: DupKind) -> &'static str {
    match kind {
        DupKind::Exact => "exact",
        DupKind::Near => "near",
    }
}

/// A group for people: a heading, then one file a line, the keeper marked.
///
/// ```text
/// group 1: exact, 2 identical files
///   keep /photos/a.jpg
///        /photos/copy of a.jpg
///
/// group 2: near, 2 files, lowest similarity 0.9871
///   keep /photos/b.jpg
///        /photos/b-small.jpg
/// ```
fn text(record: &GroupRecord<'_>) -> String {
    let gap = if record.group > 1 { "\n" } else { "" };
    let (group, files) = (record.group, record.paths.len());
    let mut text = match record.kind {
        "exact" => format!("{gap}group {group}: exact, {files} identical files"),
        _ => format!(
            "{gap}group {group}: near, {files} files, lowest similarity {:.4}",
            record.score
        ),
    };
    // The keeper first, then the others in path order.
    text.push_str(&format!("\n  keep {}", record.keep));
    for path in record.paths.iter().filter(|p| **p != record.keep) {
        text.push_str(&format!("\n       {path}"));
    }
    text
}
