//! `xsearch texts add`: fill the text collection that `query --texts` searches.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use xsearch::Engine;

use crate::Outcome;

pub fn add(engine: &Engine, file: &Path, quiet: bool) -> Result<Outcome> {
    let lines = read_lines(file)?;
    let added = engine.add_texts(&lines)?;
    if !quiet {
        let total = engine.text_count()?;
        eprintln!(
            "added {added} new texts ({} already present); the text collection holds {total}",
            lines.iter().collect::<std::collections::HashSet<_>>().len() - added
        );
    }
    Ok(Outcome::Found)
}

/// The non-empty lines of `file` (`-` is standard input).
pub fn read_lines(file: &Path) -> Result<Vec<String>> {
    let mut text = String::new();
    if file == Path::new("-") {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read standard input")?;
    } else {
        text = std::fs::read_to_string(file).with_context(|| {
            format!(
                "{}: cannot read the file (one UTF-8 text per line)",
                file.display()
            )
        })?;
    }
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}
