//! Decodes every file named on stdin (one path a line) with xsearch's decoder and prints one
//! line per file: `ok\tPATH\tWxH` or `fail\tPATH\tREASON`. A decoder panic is caught and
//! reported as a failure, so one bad file cannot hide the rest. With a folder as argument,
//! each decoded image is also saved there as `N.png` (N: its line number from 0, 8-bit RGB, or
//! RGBA when it has alpha) for a pixel comparison. Used by `benches/format_coverage.py`.
//!
//!     ls photos/*.tif | cargo run --example decode_check [SAVE_DIR]

use std::io::{self, BufRead, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use image::DynamicImage;
use xsearch::decode::{decode_file, DecodeLimits};

fn main() -> io::Result<()> {
    // The panic message is reported on the file's line; the default hook would print it too.
    std::panic::set_hook(Box::new(|_| {}));
    let save = std::env::args_os().nth(1).map(PathBuf::from);
    let limits = DecodeLimits::default();
    let mut out = io::stdout().lock();
    for (n, line) in io::stdin().lock().lines().enumerate() {
        let path = PathBuf::from(line?);
        match catch_unwind(AssertUnwindSafe(|| decode_file(&path, &limits))) {
            Ok(Ok(image)) => {
                if let Some(dir) = &save {
                    let image = if image.color().has_alpha() {
                        DynamicImage::ImageRgba8(image.to_rgba8())
                    } else {
                        DynamicImage::ImageRgb8(image.to_rgb8())
                    };
                    image
                        .save(dir.join(format!("{n}.png")))
                        .map_err(io::Error::other)?;
                }
                let (width, height) = (image.width(), image.height());
                writeln!(out, "ok\t{}\t{width}x{height}", path.display())?
            }
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
