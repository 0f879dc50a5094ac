//! `xsearch texts add`: fill the text collection that `query --texts` searches.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use xsearch::{Engine, MAX_TEXT_CHARS};

use crate::output::{path_text, warn};
use crate::Outcome;

/// The largest text file read, in bytes: 64k texts at the length limit. A bigger file (or an
/// endless one, `/dev/zero`) is refused before memory grows with it.
const MAX_TEXT_FILE: u64 = 64 << 20;

pub fn add(engine: &Engine, file: &Path, quiet: bool) -> Result<Outcome> {
    let mut lines = read_lines(file)?;
    let mut outcome = Outcome::Found;
    let mut line_number = 0;
    lines.retain(|line| {
        line_number += 1;
        let chars = line.chars().count();
        let keep = chars <= MAX_TEXT_CHARS;
        if !keep {
            warn(&format_args!(
                "{}: text {line_number} is {chars} characters long, over the limit of \
                 {MAX_TEXT_CHARS}; skipped\n\nCLIP reads only about the first 300 characters \
                 of a text: split it or shorten it.",
                path_text(file)
            ));
            outcome = Outcome::Errors;
        }
        keep
    });
    let added = engine.add_texts(&lines)?;
    if !quiet {
        let total = engine.text_count()?;
        eprintln!(
            "added {added} new texts ({} already present); the text collection holds {total}",
            lines.iter().collect::<std::collections::HashSet<_>>().len() - added
        );
    }
    Ok(outcome)
}

/// The non-empty lines of `file` (`-` is standard input).
pub fn read_lines(file: &Path) -> Result<Vec<String>> {
    let mut bytes = Vec::new();
    let name = if file == Path::new("-") {
        std::io::stdin()
            .take(MAX_TEXT_FILE + 1)
            .read_to_end(&mut bytes)
            .context("cannot read standard input")?;
        "standard input".to_owned()
    } else {
        let name = path_text(file);
        std::fs::File::open(file)
            .and_then(|f| f.take(MAX_TEXT_FILE + 1).read_to_end(&mut bytes))
            .with_context(|| format!("{name}: cannot read the file (one UTF-8 text per line)"))?;
        name
    };
    anyhow::ensure!(
        bytes.len() as u64 <= MAX_TEXT_FILE,
        "{name}: more than {} MiB of text, over the limit\n\nSplit it into smaller files.",
        MAX_TEXT_FILE >> 20
    );
    let text = String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("{name}: not UTF-8 text\n\nWrite one UTF-8 text per line."))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}
