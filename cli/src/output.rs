//! Everything xsearch prints goes through here: data on stdout (text or JSON Lines),
//! diagnostics on stderr in one voice (`xsearch: <thing>: <what happened>`).

use std::io::{self, Write};
use std::path::Path;

use base64::Engine as _;
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

    /// Prints one line as it is (already in its output form).
    pub fn line(&mut self, line: &str) -> io::Result<()> {
        writeln!(self.out, "{line}")
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

/// A path as text, exact and unambiguous: UTF-8 as it is, each byte that is not part of valid
/// UTF-8 as `\xNN` (as ripgrep and `ls -b` do), so two names that differ only in such bytes
/// print differently, and the printed name leads back to the file.
pub fn path_text(path: &Path) -> String {
    let mut text = String::new();
    for chunk in path.as_os_str().as_encoded_bytes().utf8_chunks() {
        text.push_str(chunk.valid());
        for byte in chunk.invalid() {
            text.push_str(&format!("\\x{byte:02X}"));
        }
    }
    text
}

/// A path in JSON output: `"path"` is [`path_text`], and when the name is not UTF-8,
/// `"path_bytes"` carries its exact bytes in base64 (standard alphabet, padded).
#[derive(Serialize)]
pub struct JsonPath {
    path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    path_bytes: Option<String>,
}

impl JsonPath {
    pub fn new(path: &Path) -> Self {
        let bytes = path.as_os_str().as_encoded_bytes();
        Self {
            path: path_text(path),
            path_bytes: std::str::from_utf8(bytes)
                .is_err()
                .then(|| base64::engine::general_purpose::STANDARD.encode(bytes)),
        }
    }

    /// The text form, for text output.
    pub fn text(&self) -> &str {
        &self.path
    }
}

/// The message for an error that ends the run, in words, each cause once.
///
/// Errors here often repeat their cause in their own text (`path: cause`) and also chain it,
/// sometimes under a prefix of its own (sled's `IO error: cause`): a cause whose text, or whose
/// last `: ` part, is already said is not said again. A full disk is said as such, with the way
/// on.
pub fn error_message(err: &anyhow::Error) -> String {
    if let Some(full) = storage_full(err) {
        return full;
    }
    let mut message = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        let last = text.rsplit(": ").next().unwrap_or(&text);
        if message.contains(&text) || message.contains(last) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    message
}

fn storage_full(err: &anyhow::Error) -> Option<String> {
    let path = err.chain().find_map(|cause| {
        // `xsearch::Error::Index` is transparent: the chain goes past the index error.
        let index = match cause.downcast_ref::<xsearch::Error>() {
            Some(xsearch::Error::Index(index)) => Some(index),
            _ => cause.downcast_ref::<xsearch::IndexError>(),
        };
        if let Some(index) = index {
            return (index.io_kind() == Some(io::ErrorKind::StorageFull))
                .then(|| index.path().map(Path::to_path_buf));
        }
        let io = cause.downcast_ref::<io::Error>()?;
        (io.kind() == io::ErrorKind::StorageFull).then_some(None)
    })?;
    let place = path.map_or_else(String::new, |p| format!("{}: ", path_text(&p)));
    Some(format!(
        "{place}the disk is full (no space left on device)\n\nThe work committed so far is kept. \
         Free some space, then run the command again: it goes on from where it stopped."
    ))
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    use super::*;

    #[test]
    fn paths_that_are_not_utf8_stay_distinct_and_exact() {
        let a = Path::new(OsStr::from_bytes(b"/p/c\xe9.jpg"));
        let b = Path::new(OsStr::from_bytes(b"/p/c\xe8.jpg"));
        assert_eq!(path_text(a), "/p/c\\xE9.jpg");
        assert_eq!(path_text(b), "/p/c\\xE8.jpg");
        assert_eq!(path_text(Path::new("/p/café.jpg")), "/p/café.jpg");
        let json = |p| serde_json::to_string(&JsonPath::new(p)).unwrap();
        assert_eq!(
            json(a),
            r#"{"path":"/p/c\\xE9.jpg","path_bytes":"L3AvY+kuanBn"}"#
        );
        assert_eq!(json(Path::new("/p/ok.jpg")), r#"{"path":"/p/ok.jpg"}"#);
    }

    #[test]
    fn a_full_disk_is_said_in_words_once_with_the_way_on() {
        let full = xsearch::IndexError::Store {
            path: "/idx/store".into(),
            source: io::Error::from(io::ErrorKind::StorageFull).into(),
        };
        let err = anyhow::Error::from(xsearch::Error::from(full));
        assert_eq!(
            error_message(&err),
            "/idx/store: the disk is full (no space left on device)\n\nThe work committed so \
             far is kept. Free some space, then run the command again: it goes on from where it \
             stopped."
        );
    }

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let io = io::Error::new(io::ErrorKind::PermissionDenied, "permission denied");
        let err = anyhow::Error::from(xsearch::Error::from(xsearch::IndexError::Io {
            path: "/idx/graph".into(),
            source: io,
        }));
        assert_eq!(error_message(&err), "/idx/graph: permission denied");
    }
}
