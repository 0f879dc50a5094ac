//! System libraries opened at run time (libheif, libjpeg-turbo): nothing to build against, and
//! a missing library is a reason a format is not decoded, not a link error.

use libloading::Library;

/// The first of `candidates` the dynamic loader opens; else why not, naming `what`.
pub(super) fn open_first(candidates: &[&str], what: &str) -> Result<Library, String> {
    // SAFETY: the libraries opened here (libheif, libturbojpeg) run initialisers without
    // preconditions.
    candidates
        .iter()
        .find_map(|name| unsafe { Library::new(name) }.ok())
        .ok_or_else(|| format!("{what} is not installed"))
}

/// A function pointer copied out of `library` (`what`, for the error).
///
/// # Safety
/// `T` must be the symbol's real type, and the pointer must not outlive `library`.
pub(super) unsafe fn sym<T: Copy>(library: &Library, what: &str, name: &[u8]) -> Result<T, String> {
    unsafe { library.get::<T>(name) }
        .map(|symbol| *symbol)
        .map_err(|_| {
            let name = String::from_utf8_lossy(name.strip_suffix(b"\0").unwrap_or(name));
            format!("the {what} found lacks `{name}`")
        })
}
