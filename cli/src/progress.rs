//! Progress bars on stderr, drawn only when stderr is a terminal and `--quiet` is off.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use xsearch::DownloadProgress;

/// Whether bars should be drawn at all.
pub fn enabled(quiet: bool) -> bool {
    !quiet && std::io::stderr().is_terminal()
}

fn hidden_or_stderr(visible: bool) -> ProgressDrawTarget {
    if visible {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}

/// The bar shown while model files download.
pub struct Download {
    bar: ProgressBar,
}

impl Download {
    pub fn new(quiet: bool) -> Self {
        let bar = ProgressBar::with_draw_target(None, hidden_or_stderr(enabled(quiet)));
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .expect("the template is valid"),
        );
        Self { bar }
    }
}

impl DownloadProgress for Download {
    fn start(&self, file: &str, total_bytes: u64) {
        self.bar.reset();
        self.bar.set_length(total_bytes);
        self.bar.set_message(format!("downloading {file}"));
    }

    fn advance(&self, bytes: u64) {
        self.bar.inc(bytes);
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
