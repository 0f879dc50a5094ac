//! Bounds on what one image may cost to decode, checked from the header before any pixel
//! buffer is allocated.

/// Bounds on what one image may cost to decode.
///
/// The defaults accept every real camera and phone photo (up to 268 megapixels, 65535 pixels on
/// a side) and refuse decompression bombs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest accepted width, in pixels. Default 65535 (the JPEG maximum).
    pub max_width: u32,
    /// Largest accepted height, in pixels. Default 65535.
    pub max_height: u32,
    /// Largest accepted `width * height`. Default 2^28 (268 megapixels).
    pub max_pixels: u64,
    /// Largest decoded buffer, and bound on the decoder's own allocations, in bytes.
    /// Default 2 GiB (268 megapixels of 8-bit RGB is 805 MB; 16-bit RGBA doubles it twice).
    pub max_alloc: u64,
    /// Largest accepted file, in bytes, checked from its size before it is read. Default
    /// 256 MiB: the largest camera files (100-megapixel TIFFs) are about half that, and
    /// anything larger is read into memory whole for nothing.
    pub max_file_bytes: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_width: 65_535,
            max_height: 65_535,
            max_pixels: 1 << 28,
            max_alloc: 2 << 30,
            max_file_bytes: 256 << 20,
        }
    }
}

impl DecodeLimits {
    pub(super) fn image_limits(&self) -> image::Limits {
        let mut limits = image::Limits::default();
        limits.max_image_width = Some(self.max_width);
        limits.max_image_height = Some(self.max_height);
        limits.max_alloc = Some(self.max_alloc);
        limits
    }

    /// Which limit, if any, an image of this size and decoded byte count exceeds.
    pub(super) fn exceeded(&self, width: u32, height: u32, bytes: u64) -> Option<String> {
        if width > self.max_width {
            Some(format!("width limit of {}", self.max_width))
        } else if height > self.max_height {
            Some(format!("height limit of {}", self.max_height))
        } else if u64::from(width) * u64::from(height) > self.max_pixels {
            Some(format!("limit of {} pixels", self.max_pixels))
        } else if bytes > self.max_alloc {
            Some(format!("memory limit of {} bytes", self.max_alloc))
        } else {
            None
        }
    }
}
