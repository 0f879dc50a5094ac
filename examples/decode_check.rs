//! Decodes every file named on stdin (one path a line) with xsearch's decoder and prints one
//! line per file: `ok\tPATH\tWxH` or `fail\tPATH\tREASON`. A decoder panic is caught and
//! reported as a failure, so one bad file cannot hide the rest. Used by
//! `benches/format_coverage.py`.
//!
//!     ls photos/*.tif | cargo run --release --example decode_check

use std::io::{self, BufRead, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use xsearch::decode::{decode_file, DecodeLimits};

fn main() -> io::Result<()> {
    // The panic message is reported on the file's line; the default hook would print it too.
    std::panic::set_hook(Box::new(|_| {}));
    let limits = DecodeLimits::default();
    let mut out = io::stdout().lock();
    for line in io::stdin().lock().lines() {
        let path = PathBuf::from(line?);
        match catch_unwind(AssertUnwindSafe(|| decode_file(&path, &limits))) {
            Ok(Ok(image)) => writeln!(
                out,
                "ok\t{}\t{}x{}",
                path.display(),
                image.width(),
                image.height()
            )?,
            Ok(Err(e)) => writeln!(out, "fail\t{}\t{}", path.display(), e.reason())?,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                writeln!(out, "fail\t{}\tdecoder panicked: {message}", path.display())?
            }
        }
    }
    Ok(())
}
