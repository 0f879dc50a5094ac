//! HEIC/HEIF and AVIF through the system's libheif, opened at run time.
//!
//! - **Loaded, not linked**: `libheif.so.1` (or the macOS `libheif.1.dylib`, Homebrew's prefixes
//!   included) is opened with `libloading` on first use, once per process, so building needs no
//!   `-dev` package and a machine without libheif still runs: such files are then reported as
//!   unsupported, with the package to install. The few C declarations used are written here by
//!   hand from libheif's `heif.h`; every one of them exists since libheif 1.12 (Ubuntu 22.04),
//!   which is the oldest version accepted (checked at load).
//! - **Threads**: `heif_init` is called once, at load. libheif's contexts are independent, so
//!   each decode gets its own context and any number of threads decode at once.
//! - **Orientation, exactly once**: libheif applies the HEIF transforms (`irot`, `imir`, `clap`)
//!   while decoding. HEIF files also often carry an EXIF orientation (iPhones write both; so do
//!   pillow-heif and heif-enc when converting a rotated JPEG) that restates those transforms:
//!   it is ignored, never applied again. This is the HEIF specification's rule (ISO/IEC
//!   23008-12: metadata such as EXIF is descriptive, the transformative properties decide), and
//!   what pillow-heif does (1.9.0 resets the EXIF tag to 1 after decoding, keeping the old value
//!   as `original_orientation`), so a file is upright once, as in the phone's own viewer.
//! - **Pixels**: the primary image, decoded to 8-bit interleaved RGB or RGBA: libheif converts
//!   10- and 12-bit images down (`convert_hdr_to_8bit`, as pillow-heif asks), and alpha is left
//!   in the image for preprocessing to composite like a PNG's.
//! - **Limits**: the width and height from the image's header are checked against
//!   [`DecodeLimits`] before anything is decoded, and libheif's own size limit is lowered to
//!   ours where ours is lower.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::ptr;
use std::sync::OnceLock;

use image::{DynamicImage, RgbImage, RgbaImage};
use libloading::Library;

use super::{dylib, DecodeError, DecodeLimits};

/// The two families libheif reads, for messages: which codec plugin a file needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeifKind {
    /// HEVC-coded HEIF (`.heic`, `.heif`): libheif's libde265 plugin.
    Heic,
    /// AV1-coded (`.avif`): libheif's dav1d or aom plugin.
    Avif,
}

impl HeifKind {
    fn name(self) -> &'static str {
        match self {
            Self::Heic => "HEIC",
            Self::Avif => "AVIF",
        }
    }

    fn plugin_hint(self) -> &'static str {
        match self {
            Self::Heic => "libheif-plugin-libde265",
            Self::Avif => "libheif-plugin-dav1d",
        }
    }
}

/// Decodes the primary image of a HEIF/AVIF file: HEIF transforms applied by libheif, EXIF
/// orientation ignored (see the module's notes), 8-bit RGB or RGBA. Errors name no path: the
/// caller adds it.
pub fn decode(
    bytes: &[u8],
    limits: &DecodeLimits,
    kind: HeifKind,
) -> Result<DynamicImage, DecodeError> {
    let api = Api::get().map_err(|why| {
        unsupported(format!(
            "{} needs libheif ({why}; install it, for example `apt install libheif1`)",
            kind.name()
        ))
    })?;
    let context = Context::new(api)?;
    // libheif checks its own size limit while parsing the boxes, so tiles and hidden images are
    // bounded too, not only the primary image that our check below sees. Ours may only lower
    // it: libheif's default (32768 on a side) stays the ceiling.
    let side = limits
        .max_width
        .max(limits.max_height)
        .min(LIBHEIF_DEFAULT_SIDE);
    // SAFETY: `context.raw` is a live context.
    unsafe { (api.set_maximum_image_size_limit)(context.raw, clamp_c_int(side)) };
    // SAFETY: `bytes` outlives the context, which `read_from_memory_without_copy` requires:
    // `context` is dropped at the end of this function.
    check(kind, unsafe {
        (api.read_from_memory_without_copy)(
            context.raw,
            bytes.as_ptr().cast(),
            bytes.len(),
            ptr::null(),
        )
    })?;
    let handle = Handle::primary(&context, kind)?;
    // SAFETY: `handle.raw` is a live handle.
    let (width, height, alpha) = unsafe {
        (
            (api.handle_get_width)(handle.raw),
            (api.handle_get_height)(handle.raw),
            (api.handle_has_alpha_channel)(handle.raw) != 0,
        )
    };
    let (width, height) = match (u32::try_from(width), u32::try_from(height)) {
        (Ok(w), Ok(h)) if w > 0 && h > 0 => (w, h),
        _ => return Err(corrupt(format!("image size {width}x{height}"))),
    };
    let channels: u32 = if alpha { 4 } else { 3 };
    let bytes_out = u64::from(width) * u64::from(height) * u64::from(channels);
    if let Some(limit) = limits.exceeded(width, height, bytes_out) {
        return Err(DecodeError::TooLarge {
            path: None,
            width,
            height,
            limit,
        });
    }
    let image = handle.decode(alpha, kind)?;
    image.to_dynamic(width, height, alpha)
}

/// The functions used, resolved once from the library, which stays loaded for the process.
struct Api {
    _library: Library,
    context_alloc: unsafe extern "C" fn() -> *mut c_void,
    context_free: unsafe extern "C" fn(*mut c_void),
    read_from_memory_without_copy:
        unsafe extern "C" fn(*mut c_void, *const c_void, usize, *const c_void) -> RawError,
    set_maximum_image_size_limit: unsafe extern "C" fn(*mut c_void, c_int),
    get_primary_image_handle: unsafe extern "C" fn(*mut c_void, *mut *mut c_void) -> RawError,
    handle_release: unsafe extern "C" fn(*mut c_void),
    handle_get_width: unsafe extern "C" fn(*const c_void) -> c_int,
    handle_get_height: unsafe extern "C" fn(*const c_void) -> c_int,
    handle_has_alpha_channel: unsafe extern "C" fn(*const c_void) -> c_int,
    decoding_options_alloc: unsafe extern "C" fn() -> *mut DecodingOptions,
    decoding_options_free: unsafe extern "C" fn(*mut DecodingOptions),
    decode_image: unsafe extern "C" fn(
        *const c_void,
        *mut *mut c_void,
        c_int,
        c_int,
        *const DecodingOptions,
    ) -> RawError,
    image_get_width: unsafe extern "C" fn(*const c_void, c_int) -> c_int,
    image_get_height: unsafe extern "C" fn(*const c_void, c_int) -> c_int,
    image_get_plane_readonly: unsafe extern "C" fn(*const c_void, c_int, *mut c_int) -> *const u8,
    image_release: unsafe extern "C" fn(*const c_void),
}

/// `struct heif_error`: `code` 0 is success; `message` is always a valid C string.
#[repr(C)]
#[derive(Clone, Copy)]
struct RawError {
    code: c_int,
    subcode: c_int,
    message: *const c_char,
}

/// The leading fields of `struct heif_decoding_options` (versions 1 and 2) as `heif.h` lays
/// them out. Only ever used through the pointer libheif allocates, which is as long as that
/// version of libheif needs: later versions append fields.
#[repr(C)]
struct DecodingOptions {
    version: u8,
    ignore_transformations: u8,
    start_progress: *const c_void,
    on_progress: *const c_void,
    end_progress: *const c_void,
    progress_user_data: *mut c_void,
    convert_hdr_to_8bit: u8,
}

// `heif.h`'s enum values.
const HEIF_ERROR_UNSUPPORTED_FEATURE: c_int = 4;
const HEIF_ERROR_DECODER_PLUGIN_ERROR: c_int = 7;
const HEIF_SUBERROR_UNSUPPORTED_CODEC: c_int = 3000;
const HEIF_COLORSPACE_RGB: c_int = 1;
const HEIF_CHROMA_INTERLEAVED_RGB: c_int = 10;
const HEIF_CHROMA_INTERLEAVED_RGBA: c_int = 11;
const HEIF_CHANNEL_INTERLEAVED: c_int = 10;

/// libheif's default size limit, on a side (1.15) or squared in pixels (1.19 and later).
const LIBHEIF_DEFAULT_SIDE: u32 = 32_768;

/// The oldest libheif accepted: every function above exists from it on.
const MIN_VERSION: (c_int, c_int) = (1, 12);

/// Where libheif may be: the dynamic loader's search first, then Homebrew's prefixes, which
/// the macOS loader does not search.
/// The library, as errors name it.
const LIBRARY: &str = "libheif";

const CANDIDATES: &[&str] = if cfg!(target_os = "macos") {
    &[
        "libheif.1.dylib",
        "/opt/homebrew/lib/libheif.1.dylib",
        "/usr/local/lib/libheif.1.dylib",
        "/opt/local/lib/libheif.1.dylib",
    ]
} else if cfg!(windows) {
    &["heif.dll", "libheif.dll"]
} else {
    &["libheif.so.1", "libheif.so"]
};

// SAFETY: the function pointers are plain addresses in a library that is never unloaded (it
// lives in a static); libheif's functions used here may be called from any thread as long as
// each context is used by one thread at a time, which `decode` guarantees.
unsafe impl Send for Api {}
unsafe impl Sync for Api {}

impl Api {
    /// The loaded library, or why it cannot be used (said once, then remembered).
    fn get() -> Result<&'static Api, String> {
        static API: OnceLock<Result<Api, String>> = OnceLock::new();
        API.get_or_init(Api::load).as_ref().map_err(Clone::clone)
    }

    fn load() -> Result<Api, String> {
        let library = dylib::open_first(CANDIDATES, LIBRARY)?;
        // SAFETY (every `sym` below): each name is looked up with the signature `heif.h`
        // gives it, and the library outlives the copied pointers (both live in `API`).
        unsafe {
            let major: unsafe extern "C" fn() -> c_int =
                dylib::sym(&library, LIBRARY, b"heif_get_version_number_major\0")?;
            let minor: unsafe extern "C" fn() -> c_int =
                dylib::sym(&library, LIBRARY, b"heif_get_version_number_minor\0")?;
            let version = (major(), minor());
            if version < MIN_VERSION {
                return Err(format!(
                    "libheif {}.{} is older than {}.{}",
                    version.0, version.1, MIN_VERSION.0, MIN_VERSION.1
                ));
            }
            // heif_init (1.13+) loads the codec plugins of libheif builds that have them; older
            // versions initialise themselves. Its reference is held for the whole process.
            if let Ok(init) = dylib::sym::<unsafe extern "C" fn(*mut c_void) -> RawError>(
                &library,
                LIBRARY,
                b"heif_init\0",
            ) {
                let error = init(ptr::null_mut());
                if error.code != 0 {
                    return Err(format!("heif_init failed: {}", message(&error)));
                }
            }
            Ok(Api {
                context_alloc: dylib::sym(&library, LIBRARY, b"heif_context_alloc\0")?,
                context_free: dylib::sym(&library, LIBRARY, b"heif_context_free\0")?,
                read_from_memory_without_copy: dylib::sym(
                    &library,
                    LIBRARY,
                    b"heif_context_read_from_memory_without_copy\0",
                )?,
                set_maximum_image_size_limit: dylib::sym(
                    &library,
                    LIBRARY,
                    b"heif_context_set_maximum_image_size_limit\0",
                )?,
                get_primary_image_handle: dylib::sym(
                    &library,
                    LIBRARY,
                    b"heif_context_get_primary_image_handle\0",
                )?,
                handle_release: dylib::sym(&library, LIBRARY, b"heif_image_handle_release\0")?,
                handle_get_width: dylib::sym(&library, LIBRARY, b"heif_image_handle_get_width\0")?,
                handle_get_height: dylib::sym(
                    &library,
                    LIBRARY,
                    b"heif_image_handle_get_height\0",
                )?,
                handle_has_alpha_channel: dylib::sym(
                    &library,
                    LIBRARY,
                    b"heif_image_handle_has_alpha_channel\0",
                )?,
                decoding_options_alloc: dylib::sym(
                    &library,
                    LIBRARY,
                    b"heif_decoding_options_alloc\0",
                )?,
                decoding_options_free: dylib::sym(
                    &library,
                    LIBRARY,
                    b"heif_decoding_options_free\0",
                )?,
                decode_image: dylib::sym(&library, LIBRARY, b"heif_decode_image\0")?,
                image_get_width: dylib::sym(&library, LIBRARY, b"heif_image_get_width\0")?,
                image_get_height: dylib::sym(&library, LIBRARY, b"heif_image_get_height\0")?,
                image_get_plane_readonly: dylib::sym(
                    &library,
                    LIBRARY,
                    b"heif_image_get_plane_readonly\0",
                )?,
                image_release: dylib::sym(&library, LIBRARY, b"heif_image_release\0")?,
                _library: library,
            })
        }
    }
}

fn message(error: &RawError) -> String {
    if error.message.is_null() {
        return format!("libheif error {}.{}", error.code, error.subcode);
    }
    // SAFETY: libheif's messages are NUL-terminated static or context-owned strings, read
    // before the context is freed.
    unsafe { CStr::from_ptr(error.message) }
        .to_string_lossy()
        .into_owned()
}

/// `Ok` for success, else the failure: a missing codec plugin is unsupported (with the
/// package to install), anything else corrupt.
fn check(kind: HeifKind, error: RawError) -> Result<(), DecodeError> {
    if error.code == 0 {
        return Ok(());
    }
    let text = message(&error);
    let missing_codec = error.code == HEIF_ERROR_DECODER_PLUGIN_ERROR
        || (error.code == HEIF_ERROR_UNSUPPORTED_FEATURE
            && error.subcode == HEIF_SUBERROR_UNSUPPORTED_CODEC);
    Err(if missing_codec {
        unsupported(format!(
            "{} needs a libheif with its decoder ({text}; install it, for example `apt install {}`)",
            kind.name(),
            kind.plugin_hint()
        ))
    } else {
        corrupt(text)
    })
}

fn unsupported(detail: String) -> DecodeError {
    DecodeError::Unsupported { path: None, detail }
}

fn corrupt(message: impl Into<String>) -> DecodeError {
    DecodeError::Corrupt {
        path: None,
        message: message.into(),
    }
}

fn clamp_c_int(value: u32) -> c_int {
    c_int::try_from(value).unwrap_or(c_int::MAX)
}

/// A `heif_context`, freed on drop.
struct Context {
    api: &'static Api,
    raw: *mut c_void,
}

impl Context {
    fn new(api: &'static Api) -> Result<Self, DecodeError> {
        // SAFETY: no preconditions.
        let raw = unsafe { (api.context_alloc)() };
        if raw.is_null() {
            return Err(corrupt("libheif could not allocate a context"));
        }
        Ok(Self { api, raw })
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: allocated by `heif_context_alloc`, freed once; its handles are released
        // before (they borrow the context).
        unsafe { (self.api.context_free)(self.raw) }
    }
}

/// A `heif_image_handle` of a context, released on drop.
struct Handle<'c> {
    context: &'c Context,
    raw: *mut c_void,
}

impl<'c> Handle<'c> {
    fn primary(context: &'c Context, kind: HeifKind) -> Result<Self, DecodeError> {
        let api = context.api;
        let mut raw = ptr::null_mut();
        // SAFETY: a live context and a valid out-pointer.
        check(kind, unsafe {
            (api.get_primary_image_handle)(context.raw, &mut raw)
        })?;
        Ok(Self { context, raw })
    }

    /// The pixels, HEIF transforms applied, as 8-bit interleaved RGB or RGBA.
    fn decode(&self, alpha: bool, kind: HeifKind) -> Result<Image, DecodeError> {
        let api = self.context.api;
        // SAFETY: options come from libheif's allocator and are freed right after the call;
        // field 2 (`convert_hdr_to_8bit`) is only written when the struct has it.
        let (error, raw) = unsafe {
            let options = (api.decoding_options_alloc)();
            if !options.is_null() && (*options).version >= 2 {
                (*options).convert_hdr_to_8bit = 1;
            }
            let chroma = if alpha {
                HEIF_CHROMA_INTERLEAVED_RGBA
            } else {
                HEIF_CHROMA_INTERLEAVED_RGB
            };
            let mut raw = ptr::null_mut();
            let error =
                (api.decode_image)(self.raw, &mut raw, HEIF_COLORSPACE_RGB, chroma, options);
            if !options.is_null() {
                (api.decoding_options_free)(options);
            }
            (error, raw)
        };
        check(kind, error)?;
        Ok(Image { api, raw })
    }
}

impl Drop for Handle<'_> {
    fn drop(&mut self) {
        // SAFETY: obtained from the context, released once.
        unsafe { (self.context.api.handle_release)(self.raw) }
    }
}

/// A decoded `heif_image`, released on drop.
struct Image {
    api: &'static Api,
    raw: *mut c_void,
}

impl Image {
    /// Copies the interleaved plane into an `image` buffer, checking that libheif produced the
    /// size the header announced (the limits were checked on that size).
    fn to_dynamic(
        &self,
        width: u32,
        height: u32,
        alpha: bool,
    ) -> Result<DynamicImage, DecodeError> {
        let api = self.api;
        let channels: usize = if alpha { 4 } else { 3 };
        let mut stride: c_int = 0;
        // SAFETY: a live image; the plane pointer stays valid until the image is released.
        let (w, h, plane) = unsafe {
            (
                (api.image_get_width)(self.raw, HEIF_CHANNEL_INTERLEAVED),
                (api.image_get_height)(self.raw, HEIF_CHANNEL_INTERLEAVED),
                (api.image_get_plane_readonly)(self.raw, HEIF_CHANNEL_INTERLEAVED, &mut stride),
            )
        };
        let row = width as usize * channels;
        let stride = usize::try_from(stride).unwrap_or(0);
        if plane.is_null()
            || i64::from(w) != i64::from(width)
            || i64::from(h) != i64::from(height)
            || stride < row
        {
            return Err(corrupt(format!(
                "libheif decoded {w}x{h} (stride {stride}) for a {width}x{height} image"
            )));
        }
        let mut pixels = Vec::with_capacity(row * height as usize);
        for y in 0..height as usize {
            // SAFETY: the plane holds `height` rows of `stride` bytes, `row` <= `stride`.
            pixels.extend_from_slice(unsafe {
                std::slice::from_raw_parts(plane.add(y * stride), row)
            });
        }
        let image = if alpha {
            RgbaImage::from_raw(width, height, pixels).map(DynamicImage::ImageRgba8)
        } else {
            RgbImage::from_raw(width, height, pixels).map(DynamicImage::ImageRgb8)
        };
        image.ok_or_else(|| corrupt("libheif's plane is shorter than its size"))
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        // SAFETY: obtained from `heif_decode_image`, released once.
        unsafe { (self.api.image_release)(self.raw) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw_error(code: c_int, subcode: c_int, message: &'static CStr) -> RawError {
        RawError {
            code,
            subcode,
            message: message.as_ptr(),
        }
    }

    #[test]
    fn a_missing_codec_is_unsupported_and_names_the_plugin() {
        let error = raw_error(
            HEIF_ERROR_UNSUPPORTED_FEATURE,
            HEIF_SUBERROR_UNSUPPORTED_CODEC,
            c"Unsupported codec",
        );
        match check(HeifKind::Heic, error) {
            Err(DecodeError::Unsupported { detail, .. }) => assert_eq!(
                detail,
                "HEIC needs a libheif with its decoder (Unsupported codec; install it, for \
                 example `apt install libheif-plugin-libde265`)"
            ),
            other => panic!("{other:?}"),
        }
        let error = raw_error(HEIF_ERROR_DECODER_PLUGIN_ERROR, 0, c"no AV1 decoder");
        match check(HeifKind::Avif, error) {
            Err(DecodeError::Unsupported { detail, .. }) => {
                assert!(
                    detail.contains("`apt install libheif-plugin-dav1d`"),
                    "{detail}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn other_libheif_errors_are_corrupt_data() {
        let error = raw_error(2, 100, c"Invalid input: No 'ftyp' box");
        match check(HeifKind::Heic, error) {
            Err(DecodeError::Corrupt { message, .. }) => {
                assert_eq!(message, "Invalid input: No 'ftyp' box")
            }
            other => panic!("{other:?}"),
        }
        assert!(check(HeifKind::Heic, raw_error(0, 0, c"Success")).is_ok());
    }
}
