//! Containing a panic in the work on one file, so it becomes that file's error.
//!
//! Decoders are large parsers of untrusted input, and some panic on files they should refuse
//! (the `tiff` crate 0.11.3 asserts on valid tiled planar TIFFs). One such file must not end a
//! run over a library of photos, nor every later run: the panic is caught where the file's work
//! starts ([`contain`], as czkawka does per image) and becomes a [`DecodeError::Crashed`].
//!
//! The library never prints, but Rust's default panic hook does, before the panic is caught.
//! [`panic_is_contained`] tells a program's own hook that this panic will be caught and
//! reported as a file's error, so it can stay quiet (the `xsearch` command does).

use std::any::Any;
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use super::DecodeError;

thread_local! {
    /// How many [`contain`] scopes this thread is inside.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Whether a panic on this thread now would be caught by [`contain`] and reported as a file's
/// error. For a panic hook: `if !panic_is_contained() { default_hook(info) }`.
///
/// A panic on another thread that a decoder started itself (a rayon task) is caught all the
/// same when it reaches [`contain`], but its hook runs on that thread, where this answers no.
pub fn panic_is_contained() -> bool {
    DEPTH.with(|depth| depth.get() > 0)
}

/// Runs `work` on the file at `path`; a panic inside becomes [`DecodeError::Crashed`] naming
/// `stage` ("the TIFF decoder") and the panic's message.
pub fn contain<T>(
    path: Option<&Path>,
    stage: &str,
    work: impl FnOnce() -> Result<T, DecodeError>,
) -> Result<T, DecodeError> {
    struct Scope;
    impl Drop for Scope {
        fn drop(&mut self) {
            DEPTH.with(|depth| depth.set(depth.get() - 1));
        }
    }
    DEPTH.with(|depth| depth.set(depth.get() + 1));
    let scope = Scope;
    // Unwind safety: `work` owns or only reads what it touches, and whatever it built is
    // dropped with the panic; nothing half-changed outlives it.
    let result = catch_unwind(AssertUnwindSafe(work));
    drop(scope);
    result.unwrap_or_else(|payload| {
        Err(DecodeError::Crashed {
            path: path.map(Path::to_path_buf),
            stage: stage.to_owned(),
            message: panic_message(payload.as_ref()),
        })
    })
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic without a message".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_the_files_error_and_the_scope_ends() {
        let path = Path::new("/photos/a.tif");
        let err = contain::<()>(Some(path), "the TIFF decoder", || {
            assert!(panic_is_contained());
            panic!("assertion failed: x < 4")
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "/photos/a.tif: the TIFF decoder crashed on this file (assertion failed: x < 4)"
        );
        assert!(!panic_is_contained());
        assert_eq!(contain(None, "x", || Ok(7)).unwrap(), 7);
    }
}
