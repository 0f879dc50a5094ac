//! JPEG XL through jxl-oxide, in pure Rust.
//!
//! - **Orientation, exactly once**: a JPEG XL codestream has its own orientation field, which
//!   jxl-oxide applies when it hands out pixels. An EXIF block in the container is ignored: the
//!   JPEG XL specification (ISO/IEC 18181-2) makes the codestream's field the only one that
//!   counts, and libjxl's encoder moves a JPEG's EXIF orientation there when converting.
//! - **Pixels**: the first frame (the whole image for stills), 8-bit when the image is 8-bit,
//!   16-bit otherwise (preprocessing scales to 8 bits with rounding, as for a 16-bit PNG); alpha
//!   is left in the image for preprocessing to composite like a PNG's. Colours are as coded, in
//!   the image's own colour space (no ICC conversion, as for every other format here). CMYK
//!   images are refused as unsupported.
//! - **Limits**: the width and height are read from the image header before any frame is
//!   rendered (a frame's pixels are only allocated then), and every allocation jxl-oxide makes
//!   while rendering counts against [`DecodeLimits::max_alloc`].

use image::{DynamicImage, ImageBuffer, Luma, LumaA, Pixel, Primitive, Rgb, Rgba};
use jxl_oxide::{
    AllocTracker, FrameBufferSample, ImageStream, InitializeResult, JxlImage, PixelFormat,
};

use super::{DecodeError, DecodeLimits};

/// Decodes a JPEG XL image (bare codestream or container), orientation applied. Errors name no
/// path: the caller adds it.
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<DynamicImage, DecodeError> {
    let tracker = AllocTracker::with_limit(usize::try_from(limits.max_alloc).unwrap_or(usize::MAX));
    let mut uninit = JxlImage::builder().alloc_tracker(tracker).build_uninit();
    uninit.feed_bytes(bytes).map_err(corrupt)?;
    // Initialising parses the image header and the frames' headers; no pixel buffer yet.
    let mut image = match uninit.try_init().map_err(corrupt)? {
        InitializeResult::Initialized(image) => image,
        InitializeResult::NeedMoreData(_) => {
            return Err(corrupt("the file ends inside the image header"))
        }
    };
    image.finalize().map_err(corrupt)?;
    // Sizes with the orientation applied: what the caller gets, and the same area either way.
    let (width, height) = (image.width(), image.height());
    let format = image.pixel_format();
    let channels: u64 = match format {
        PixelFormat::Gray => 1,
        PixelFormat::Graya => 2,
        PixelFormat::Rgb => 3,
        PixelFormat::Rgba => 4,
        PixelFormat::Cmyk | PixelFormat::Cmyka => {
            return Err(DecodeError::Unsupported {
                path: None,
                detail: "CMYK JPEG XL".to_owned(),
            })
        }
    };
    let wide = image.image_header().metadata.bit_depth.bits_per_sample() > 8;
    let sample_bytes = if wide { 2 } else { 1 };
    let bytes_out = u64::from(width) * u64::from(height) * channels * sample_bytes;
    if let Some(limit) = limits.exceeded(width, height, bytes_out) {
        return Err(DecodeError::TooLarge {
            path: None,
            width,
            height,
            limit,
        });
    }
    if image.num_loaded_keyframes() == 0 {
        return Err(corrupt("the file ends before the first frame"));
    }
    let render = image.render_frame(0).map_err(corrupt)?;
    // The stream applies the orientation and yields colour then alpha, interleaved.
    let mut stream = render.stream();
    if (stream.width(), stream.height()) != (width, height)
        || u64::from(stream.channels()) != channels
    {
        return Err(corrupt(
            "the rendered frame does not match the image header",
        ));
    }
    let len = usize::try_from(u64::from(width) * u64::from(height) * channels)
        .map_err(|_| corrupt("image too large for this platform"))?;
    if wide {
        interleaved::<u16>(&mut stream, format, width, height, len)
    } else {
        interleaved::<u8>(&mut stream, format, width, height, len)
    }
}

/// The stream's samples as `T`, in the `image` layout of `format` (grey, grey + alpha, RGB or
/// RGBA; CMYK was refused before).
fn interleaved<T>(
    stream: &mut ImageStream<'_>,
    format: PixelFormat,
    width: u32,
    height: u32,
    len: usize,
) -> Result<DynamicImage, DecodeError>
where
    T: FrameBufferSample + Primitive,
    Luma<T>: Pixel<Subpixel = T>,
    LumaA<T>: Pixel<Subpixel = T>,
    Rgb<T>: Pixel<Subpixel = T>,
    Rgba<T>: Pixel<Subpixel = T>,
    DynamicImage: From<ImageBuffer<Luma<T>, Vec<T>>>
        + From<ImageBuffer<LumaA<T>, Vec<T>>>
        + From<ImageBuffer<Rgb<T>, Vec<T>>>
        + From<ImageBuffer<Rgba<T>, Vec<T>>>,
{
    let mut buf = vec![T::default(); len];
    stream.write_to_buffer(&mut buf);
    fn wrap<P: Pixel>(
        width: u32,
        height: u32,
        buf: Vec<P::Subpixel>,
    ) -> Result<DynamicImage, DecodeError>
    where
        DynamicImage: From<ImageBuffer<P, Vec<P::Subpixel>>>,
    {
        ImageBuffer::<P, _>::from_raw(width, height, buf)
            .map(DynamicImage::from)
            .ok_or_else(|| corrupt("the rendered frame is shorter than its size"))
    }
    match format {
        PixelFormat::Gray => wrap::<Luma<T>>(width, height, buf),
        PixelFormat::Graya => wrap::<LumaA<T>>(width, height, buf),
        PixelFormat::Rgb => wrap::<Rgb<T>>(width, height, buf),
        _ => wrap::<Rgba<T>>(width, height, buf),
    }
}

fn corrupt(message: impl ToString) -> DecodeError {
    DecodeError::Corrupt {
        path: None,
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_without_an_image_is_corrupt() {
        // The bare codestream signature, then nothing: the header cannot be read.
        match decode(&[0xff, 0x0a], &DecodeLimits::default()) {
            Err(DecodeError::Corrupt { message, .. }) => {
                assert_eq!(message, "the file ends inside the image header")
            }
            other => panic!("{other:?}"),
        }
    }
}
