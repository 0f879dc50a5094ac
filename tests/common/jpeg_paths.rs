//! Both reduced-scale JPEG paths under one `cargo test`: libjpeg-turbo (loaded at run time,
//! `src/decode/turbojpeg.rs`) where the system has it, and the pure-Rust jpeg-decoder that
//! serves every other machine. A process picks its path once, so the second path is a second
//! run of the same test binary with `XSEARCH_TURBOJPEG=0`.

use std::process::Command;

use super::skip::skip_or_fail;

const VAR: &str = "XSEARCH_TURBOJPEG";

/// Runs this test binary's other tests again on the pure-Rust path (the caller, `this`, is
/// skipped) and asserts that they pass. In that second run itself, checks that the variable
/// turned libjpeg-turbo off. Without libjpeg-turbo, the present run is already the pure-Rust
/// path: the fast path cannot be tested, a loud skip (a failure under CI).
pub fn rerun_on_the_pure_rust_path(this: &str) {
    match xsearch::decode::turbojpeg_status() {
        Err(why) if std::env::var(VAR).as_deref() == Ok("0") => {
            assert_eq!(why, "libturbojpeg is turned off by XSEARCH_TURBOJPEG=0");
            return;
        }
        Err(why) => {
            skip_or_fail(&format!(
                "{why}, so the libjpeg-turbo path of the JPEG tests cannot run (they ran on the \
                 pure-Rust path).\nInstall it (Debian/Ubuntu: `apt-get install libturbojpeg0`; \
                 macOS: `brew install jpeg-turbo`)."
            ));
            return;
        }
        Ok(()) => {}
    }
    let output = Command::new(std::env::current_exe().unwrap())
        .env(VAR, "0")
        .args(["--skip", this])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "with {VAR}=0:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The harness's summary: some tests ran, none failed.
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("test result: ok."))
        .unwrap_or_else(|| panic!("no summary with {VAR}=0:\n{stdout}"));
    assert!(!summary.contains(" 0 passed"), "{summary}");
}
