//! libtiff, loaded at run time when the system has it, for the TIFF files the pure-Rust `tiff`
//! crate refuses: palette, YCbCr and old-style JPEG, 2- and 4-bit grey, CIELab, BigTIFF, LZMA,
//! 12-bit, signed samples, Huffman and fax compressions, and the tiled planar files it crashes
//! on (`tiff` 0.11.3, `decoder/image.rs`). Measured on Pillow's test images: `BENCHMARKS.md`,
//! "Format coverage".
//!
//! `TIFFReadRGBAImageOriented` converts every photometric interpretation libtiff knows to
//! 8-bit RGBA, top-left first (the file's orientation tag applied). The file's bytes are
//! handed over through read and seek callbacks, so nothing is read twice and no path is
//! reopened. libtiff's warning and error handlers are switched off (the library never prints);
//! a file it cannot read gets a reason of our own. Without libtiff (no `libtiff.so.6` or `.5`,
//! `libtiff.6.dylib`), these files are refused as before, with a hint to install it.

use std::ffi::{c_char, c_int, c_void};
use std::sync::OnceLock;

use image::{DynamicImage, RgbImage, RgbaImage};
use libloading::Library;

use super::DecodeLimits;

/// Names the library goes by, newest first.
const NAMES: &[&str] = &[
    "libtiff.so.6",
    "libtiff.so.5",
    "libtiff.6.dylib",
    "libtiff.5.dylib",
];

const TAG_IMAGE_WIDTH: u32 = 256;
const TAG_IMAGE_LENGTH: u32 = 257;
const ORIENTATION_TOPLEFT: c_int = 1;

type ReadWrite = unsafe extern "C" fn(*mut c_void, *mut c_void, isize) -> isize;
type Seek = unsafe extern "C" fn(*mut c_void, u64, c_int) -> u64;
type Close = unsafe extern "C" fn(*mut c_void) -> c_int;
type Size = unsafe extern "C" fn(*mut c_void) -> u64;
type Map = unsafe extern "C" fn(*mut c_void, *mut *mut c_void, *mut u64) -> c_int;
type Unmap = unsafe extern "C" fn(*mut c_void, *mut c_void, u64);
type ClientOpen = unsafe extern "C" fn(
    *const c_char,
    *const c_char,
    *mut c_void,
    ReadWrite,
    ReadWrite,
    Seek,
    Close,
    Size,
    Map,
    Unmap,
) -> *mut c_void;
type GetField = unsafe extern "C" fn(*mut c_void, u32, ...) -> c_int;
type ReadRgba = unsafe extern "C" fn(*mut c_void, u32, u32, *mut u32, c_int, c_int) -> c_int;
type CloseTiff = unsafe extern "C" fn(*mut c_void);
/// `TIFFSetErrorHandler` / `TIFFSetWarningHandler`: the handler is a C function pointer, or
/// null for none.
type SetHandler = unsafe extern "C" fn(*const c_void) -> *const c_void;

/// The functions we use, resolved once.
struct LibTiff {
    client_open: ClientOpen,
    get_field: GetField,
    read_rgba: ReadRgba,
    close: CloseTiff,
    /// Keeps the functions above loaded.
    _library: Library,
}

fn libtiff() -> Option<&'static LibTiff> {
    static LIB: OnceLock<Option<LibTiff>> = OnceLock::new();
    LIB.get_or_init(|| NAMES.iter().find_map(|name| load(name)))
        .as_ref()
}

fn load(name: &str) -> Option<LibTiff> {
    // SAFETY: loading libtiff runs no initialisers with preconditions; every symbol below is
    // typed as libtiff 4's headers declare it (tiffio.h, tmsize_t = ssize_t, toff_t = uint64).
    unsafe {
        let library = Library::new(name).ok()?;
        let set_error: SetHandler = *library.get(b"TIFFSetErrorHandler\0").ok()?;
        let set_warning: SetHandler = *library.get(b"TIFFSetWarningHandler\0").ok()?;
        set_error(std::ptr::null());
        set_warning(std::ptr::null());
        Some(LibTiff {
            client_open: *library.get(b"TIFFClientOpen\0").ok()?,
            get_field: *library.get(b"TIFFGetField\0").ok()?,
            read_rgba: *library.get(b"TIFFReadRGBAImageOriented\0").ok()?,
            close: *library.get(b"TIFFClose\0").ok()?,
            _library: library,
        })
    }
}

/// Whether libtiff could be loaded on this machine.
pub(super) fn available() -> bool {
    libtiff().is_some()
}

/// Why libtiff did not give an image.
pub(super) enum Failure {
    /// libtiff is not installed.
    Missing,
    /// libtiff could not read the file.
    Unreadable,
    /// The header's size is over the limits: `(width, height, limit)`.
    TooLarge(u32, u32, String),
}

/// The file's bytes, as libtiff's callbacks see them.
struct Source<'a> {
    bytes: &'a [u8],
    position: u64,
}

unsafe extern "C" fn read(handle: *mut c_void, buffer: *mut c_void, size: isize) -> isize {
    // SAFETY: `handle` is the `Source` passed to TIFFClientOpen, alive until TIFFClose;
    // libtiff gives a buffer of at least `size` bytes.
    let source = unsafe { &mut *handle.cast::<Source<'_>>() };
    let start =
        usize::try_from(source.position).map_or(source.bytes.len(), |p| p.min(source.bytes.len()));
    let count = usize::try_from(size)
        .unwrap_or(0)
        .min(source.bytes.len() - start);
    unsafe {
        std::ptr::copy_nonoverlapping(source.bytes.as_ptr().add(start), buffer.cast::<u8>(), count)
    };
    source.position = (start + count) as u64;
    count as isize
}

unsafe extern "C" fn write(_: *mut c_void, _: *mut c_void, _: isize) -> isize {
    -1 // opened read-only
}

unsafe extern "C" fn seek(handle: *mut c_void, offset: u64, whence: c_int) -> u64 {
    // SAFETY: as in `read`.
    let source = unsafe { &mut *handle.cast::<Source<'_>>() };
    let base = match whence {
        0 => 0,
        1 => source.position,
        2 => source.bytes.len() as u64,
        _ => return u64::MAX,
    };
    // toff_t is unsigned: a relative seek backwards arrives as its two's complement.
    source.position = base.wrapping_add(offset);
    source.position
}

unsafe extern "C" fn close(_: *mut c_void) -> c_int {
    0
}

unsafe extern "C" fn size(handle: *mut c_void) -> u64 {
    // SAFETY: as in `read`.
    unsafe { &*handle.cast::<Source<'_>>() }.bytes.len() as u64
}

unsafe extern "C" fn map(_: *mut c_void, _: *mut *mut c_void, _: *mut u64) -> c_int {
    0 // no mapping: libtiff reads through `read`
}

unsafe extern "C" fn unmap(_: *mut c_void, _: *mut c_void, _: u64) {}

/// The first image of a TIFF (or BigTIFF) as 8-bit RGB, or RGBA when any pixel is not opaque.
pub(super) fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<DynamicImage, Failure> {
    let lib = libtiff().ok_or(Failure::Missing)?;
    let mut source = Source { bytes, position: 0 };
    // SAFETY: the callbacks match libtiff's prototypes and only touch `source`, which outlives
    // the handle (closed below on every path); the raster holds width * height words, as
    // TIFFReadRGBAImageOriented requires.
    unsafe {
        let tif = (lib.client_open)(
            c"memory".as_ptr(),
            c"rm".as_ptr(),
            (&raw mut source).cast(),
            read,
            write,
            seek,
            close,
            size,
            map,
            unmap,
        );
        if tif.is_null() {
            return Err(Failure::Unreadable);
        }
        let result = read_first_image(lib, tif, limits);
        (lib.close)(tif);
        result
    }
}

/// # Safety
/// `tif` is an open libtiff handle.
unsafe fn read_first_image(
    lib: &LibTiff,
    tif: *mut c_void,
    limits: &DecodeLimits,
) -> Result<DynamicImage, Failure> {
    let (mut width, mut height) = (0u32, 0u32);
    let known = unsafe {
        (lib.get_field)(tif, TAG_IMAGE_WIDTH, &raw mut width) == 1
            && (lib.get_field)(tif, TAG_IMAGE_LENGTH, &raw mut height) == 1
    };
    if !known || width == 0 || height == 0 {
        return Err(Failure::Unreadable);
    }
    let words = u64::from(width) * u64::from(height);
    if let Some(limit) = limits.exceeded(width, height, words * 4) {
        return Err(Failure::TooLarge(width, height, limit));
    }
    let mut raster = vec![0u32; words as usize];
    let ok = unsafe {
        (lib.read_rgba)(
            tif,
            width,
            height,
            raster.as_mut_ptr(),
            ORIENTATION_TOPLEFT,
            1,
        )
    };
    if ok != 1 {
        return Err(Failure::Unreadable);
    }
    // Each word is A<<24 | B<<16 | G<<8 | R (libtiff's TIFFGetR/G/B/A).
    let opaque = raster.iter().all(|&p| p >> 24 == 0xff);
    Ok(if opaque {
        let pixels = raster
            .iter()
            .flat_map(|&p| [p as u8, (p >> 8) as u8, (p >> 16) as u8]);
        DynamicImage::ImageRgb8(
            RgbImage::from_vec(width, height, pixels.collect()).ok_or(Failure::Unreadable)?,
        )
    } else {
        // libtiff's RGBA interface hands out premultiplied (associated) alpha, whatever the
        // file stores; the rest of the pipeline expects straight alpha, as Pillow's RGBA.
        let pixels = raster.iter().flat_map(|&p| {
            let [r, g, b, a] = p.to_le_bytes();
            let straight = |c: u8| match a {
                0 | 255 => c,
                a => ((u32::from(c) * 255 + u32::from(a) / 2) / u32::from(a)).min(255) as u8,
            };
            [straight(r), straight(g), straight(b), a]
        });
        DynamicImage::ImageRgba8(
            RgbaImage::from_vec(width, height, pixels.collect()).ok_or(Failure::Unreadable)?,
        )
    })
}
