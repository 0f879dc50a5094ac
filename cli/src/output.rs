//! Everything xsearch prints goes through here: data on stdout (text or JSON Lines),
//! diagnostics on stderr in one voice (`xsearch: <thing>: <what happened>`).

use std::io::{self, Write};

use serde::Serialize;

/// Writes results to stdout, as text for people or JSON Lines for scripts.
pub struct Printer {
    json: bool,
    out: io::BufWriter<io::Stdout>,
}

impl Printer {
    pub fn new(json: bool) -> Self {
        Self {
            json,
            out: io::BufWriter::new(io::stdout()),
        }
    }

    /// Prints one result: `record` as a JSON object with `--json`, else the `text` line.
    pub fn record<T: Serialize>(
        &mut self,
        record: &T,
        text: impl FnOnce() -> String,
    ) -> io::Result<()> {
        if self.json {
            serde_json::to_writer(&mut self.out, record)?;
            writeln!(self.out)
        } else {
            writeln!(self.out, "{}", text())
        }
    }

    pub fn is_json(&self) -> bool {
        self.json
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Reports a problem that does not stop the run (a skipped file); `message` names the thing.
pub fn warn(message: &dyn std::fmt::Display) {
    eprintln!("xsearch: {message}");
}

/// A score rounded to four decimals for JSON output: stable across platforms, and more
/// precision than a ranking needs.
pub fn score4(score: f32) -> f64 {
    (f64::from(score) * 1e4).round() / 1e4
}
