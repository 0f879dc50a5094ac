//! The skip rule for tests that need something outside the repository, shared with the CLI's
//! tests (`cli/tests/common`), which include this file by path.

/// A test that needs a system library or service that is missing: under CI (`CI=true`) that
/// is a failure, since CI must run it for real; elsewhere a loud skip. Written straight to
/// stderr, not with `eprintln!`, which the test harness captures and shows only on failure.
pub fn skip_or_fail(message: &str) {
    use std::io::Write;
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
    let _ = writeln!(std::io::stderr(), "\n*** SKIPPED: {message}\n");
}
