//! Reduced-scale JPEG decoding through the system's libjpeg-turbo, opened at run time.
//!
//! Entropy (Huffman) decoding is most of what a 12-megapixel JPEG costs once the inverse DCT is
//! scaled down, and no DCT scale reduces it. libjpeg-turbo decodes such a photo at 1/4 scale
//! in about 70% of jpeg-decoder's time (`BENCHMARKS.md`, "Ingest (issue 17)"), and it is the
//! decoder Pillow uses, so this path is also the one closest to the Python reference.
//!
//! - **Loaded, not linked**: `libturbojpeg.so.0` (Debian's `libturbojpeg0`; macOS
//!   `libturbojpeg.0.dylib`, Homebrew's `jpeg-turbo` prefixes included) is opened with
//!   `libloading` on first use, once per process, so building needs no `-dev` package and a
//!   machine without it runs the pure-Rust path (`jpeg.rs`). The four TurboJPEG functions
//!   used exist from libjpeg-turbo 1.4 on and are kept by 3.x. `XSEARCH_TURBOJPEG=0` turns the
//!   library off for the process (to test or compare the pure-Rust path).
//! - **Only a fast path**: anything libjpeg-turbo does not decode cleanly (an error, or a
//!   warning about damaged data: TurboJPEG 2 cannot tell a warning followed by an error from a
//!   warning alone) returns `None`, and the caller decodes the file as it would without the
//!   library. So every refusal, and its message, comes from the pure-Rust path on every
//!   machine; libjpeg-turbo never rejects a file.
//! - **Limits**: the header's full size is checked against [`DecodeLimits`] before anything is
//!   decoded, counting twice the decoded bytes: a progressive file's DCT coefficients are held
//!   whole, 2 bytes a sample. Progressive files are limited to libjpeg-turbo's 500 scans
//!   (`TJFLAG_LIMITSCANS`, 2.1 on), against files made of endless tiny scans.
//! - **Threads**: each decode has its own TurboJPEG handle, so any number of threads decode at
//!   once. libjpeg's error handling `longjmp`s only within the library (TurboJPEG installs
//!   its own handler); nothing unwinds through Rust frames, and the library never prints.

use std::ffi::{c_int, c_ulong, c_void};
use std::sync::OnceLock;

use libloading::Library;

use super::dylib;
use super::jpeg::scaled_len;
use super::limits::DecodeLimits;

/// The environment variable that turns libjpeg-turbo off when set to `0`.
const DISABLE_VAR: &str = "XSEARCH_TURBOJPEG";

/// Pixels decoded at a reduced scale: 8-bit RGB (3 channels) or grey (1), rows packed, in the
/// file's stored orientation.
pub(super) struct Decoded {
    pub width: u32,
    pub height: u32,
    pub channels: u8,
    pub pixels: Vec<u8>,
}

/// Decodes `bytes` at the scale `scale` picks, in eighths, from the stored width and height;
/// `None` when the library is missing, the file is CMYK or over `limits`, `scale` declines, or
/// libjpeg-turbo does not decode the file cleanly (see the module's notes).
pub(super) fn decode(
    bytes: &[u8],
    limits: &DecodeLimits,
    scale: impl FnOnce(u32, u32) -> Option<u32>,
) -> Option<Decoded> {
    let api = Api::get().ok()?;
    let handle = Handle::new(api)?;
    let header = handle.header(bytes)?;
    let channels: u8 = match header.colorspace {
        TJCS_RGB | TJCS_YCBCR => 3,
        TJCS_GRAY => 1,
        // CMYK and YCCK: the pure-Rust path converts them.
        _ => return None,
    };
    let (width, height) = (header.width, header.height);
    let full_bytes = u64::from(width) * u64::from(height) * u64::from(channels);
    if limits.exceeded(width, height, 2 * full_bytes).is_some() {
        return None;
    }
    let eighths = scale(width, height)?;
    let (out_w, out_h) = (scaled_len(width, eighths), scaled_len(height, eighths));
    let row = out_w as usize * usize::from(channels);
    let mut pixels = vec![0u8; row * out_h as usize];
    let format = if channels == 3 { TJPF_RGB } else { TJPF_GRAY };
    // SAFETY: a live handle; `pixels` holds `out_h` rows of `row` bytes, the size asked for.
    // Asked for exactly `eighths`/8 of the size, TurboJPEG picks that scaling factor (the
    // largest whose output fits) and writes no more than the size asked for.
    let status = unsafe {
        (api.decompress)(
            handle.raw,
            bytes.as_ptr(),
            c_ulong::try_from(bytes.len()).ok()?,
            pixels.as_mut_ptr(),
            c_int::try_from(out_w).ok()?,
            c_int::try_from(row).ok()?,
            c_int::try_from(out_h).ok()?,
            format,
            TJFLAG_LIMITSCANS,
        )
    };
    (status == 0).then_some(Decoded {
        width: out_w,
        height: out_h,
        channels,
        pixels,
    })
}

/// Whether reduced-scale JPEG decoding goes through libjpeg-turbo in this process, or why not.
pub(super) fn available() -> Result<(), String> {
    Api::get().map(|_| ())
}

// `turbojpeg.h`'s values.
const TJPF_RGB: c_int = 0;
const TJPF_GRAY: c_int = 6;
const TJCS_RGB: c_int = 0;
const TJCS_YCBCR: c_int = 1;
const TJCS_GRAY: c_int = 2;
/// Refuse progressive files of more than 500 scans (2.1 on; 2.0 ignores the bit).
const TJFLAG_LIMITSCANS: c_int = 32_768;

/// Where libturbojpeg may be: the dynamic loader's search first, then Homebrew's prefixes,
/// which the macOS loader does not search.
/// The library, as errors name it.
const LIBRARY: &str = "libturbojpeg";

const CANDIDATES: &[&str] = if cfg!(target_os = "macos") {
    &[
        "libturbojpeg.0.dylib",
        "/opt/homebrew/opt/jpeg-turbo/lib/libturbojpeg.0.dylib",
        "/usr/local/opt/jpeg-turbo/lib/libturbojpeg.0.dylib",
    ]
} else if cfg!(windows) {
    &["turbojpeg.dll"]
} else {
    &["libturbojpeg.so.0", "libturbojpeg.so"]
};

/// The functions used, resolved once from the library, which stays loaded for the process.
struct Api {
    _library: Library,
    init_decompress: unsafe extern "C" fn() -> *mut c_void,
    destroy: unsafe extern "C" fn(*mut c_void) -> c_int,
    decompress_header: unsafe extern "C" fn(
        *mut c_void,
        *const u8,
        c_ulong,
        *mut c_int,
        *mut c_int,
        *mut c_int,
        *mut c_int,
    ) -> c_int,
    #[allow(clippy::type_complexity)]
    decompress: unsafe extern "C" fn(
        *mut c_void,
        *const u8,
        c_ulong,
        *mut u8,
        c_int,
        c_int,
        c_int,
        c_int,
        c_int,
    ) -> c_int,
}

// SAFETY: plain function addresses in a library that is never unloaded (it lives in a static);
// TurboJPEG handles are independent, and each is used by one thread (`Handle` is not `Send`).
unsafe impl Send for Api {}
unsafe impl Sync for Api {}

impl Api {
    /// The loaded library, or why it is not used (decided once per process).
    fn get() -> Result<&'static Api, String> {
        static API: OnceLock<Result<Api, String>> = OnceLock::new();
        API.get_or_init(Api::load).as_ref().map_err(Clone::clone)
    }

    fn load() -> Result<Api, String> {
        if std::env::var_os(DISABLE_VAR).is_some_and(|v| v == "0") {
            return Err(format!("libturbojpeg is turned off by {DISABLE_VAR}=0"));
        }
        let library = dylib::open_first(CANDIDATES, LIBRARY)?;
        // SAFETY (every `sym` below): each name is looked up with the signature `turbojpeg.h`
        // gives it, and the library outlives the copied pointers (both live in `API`).
        unsafe {
            Ok(Api {
                init_decompress: dylib::sym(&library, LIBRARY, b"tjInitDecompress\0")?,
                destroy: dylib::sym(&library, LIBRARY, b"tjDestroy\0")?,
                decompress_header: dylib::sym(&library, LIBRARY, b"tjDecompressHeader3\0")?,
                decompress: dylib::sym(&library, LIBRARY, b"tjDecompress2\0")?,
                _library: library,
            })
        }
    }
}

/// What `tjDecompressHeader3` says of a file.
struct Header {
    width: u32,
    height: u32,
    colorspace: c_int,
}

/// A TurboJPEG decompressor, destroyed on drop. Not `Send`: a handle is used by one thread.
struct Handle {
    api: &'static Api,
    raw: *mut c_void,
}

impl Handle {
    fn new(api: &'static Api) -> Option<Self> {
        // SAFETY: no preconditions.
        let raw = unsafe { (api.init_decompress)() };
        (!raw.is_null()).then_some(Self { api, raw })
    }

    fn header(&self, bytes: &[u8]) -> Option<Header> {
        let (mut width, mut height, mut subsampling, mut colorspace) = (0, 0, 0, 0);
        // SAFETY: a live handle, `bytes` as long as said, valid out-pointers.
        let status = unsafe {
            (self.api.decompress_header)(
                self.raw,
                bytes.as_ptr(),
                c_ulong::try_from(bytes.len()).ok()?,
                &mut width,
                &mut height,
                &mut subsampling,
                &mut colorspace,
            )
        };
        match (status, u32::try_from(width), u32::try_from(height)) {
            (0, Ok(width), Ok(height)) if width > 0 && height > 0 => Some(Header {
                width,
                height,
                colorspace,
            }),
            _ => None,
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: made by `tjInitDecompress`, destroyed once.
        unsafe { (self.api.destroy)(self.raw) };
    }
}
