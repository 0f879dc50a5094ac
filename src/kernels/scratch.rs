//! Per-thread scratch memory, so the hot path allocates only until the buffers reach the
//! largest layer's size.

use std::cell::RefCell;
use std::thread::LocalKey;

thread_local! {
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static PACK: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on a scratch slice of `len` floats with unspecified contents.
///
/// Reuses this thread's buffer; if that is already borrowed (a kernel called from inside
/// another's scratch scope), falls back to a fresh allocation rather than failing.
pub(crate) fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    borrow(&SCRATCH, len, f)
}

/// Like [`with_scratch`], from a second buffer: the GEMM packs its left-hand side here while
/// its caller's im2col or Winograd data sit in the first.
pub(crate) fn with_pack_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    borrow(&PACK, len, f)
}

fn borrow<R>(
    key: &'static LocalKey<RefCell<Vec<f32>>>,
    len: usize,
    f: impl FnOnce(&mut [f32]) -> R,
) -> R {
    key.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < len {
                buf.resize(len, 0.0);
            }
            f(&mut buf[..len])
        }
        Err(_) => f(&mut vec![0.0; len]),
    })
}
