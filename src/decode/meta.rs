//! What an image file says about itself: capture time, camera, pixel size and position, read
//! from the bytes the decoder reads anyway (ingest reads each file once).
//!
//! - EXIF is found in every container that carries it: JPEG (APP1), TIFF and the TIFF-based
//!   RAW formats (DNG, CR2, NEF, ARW, PEF; ORF and RW2 through their TIFF body), PNG (`eXIf`),
//!   WebP (`EXIF`), HEIC and AVIF (the `Exif` item), all through `kamadak-exif`. A RAW whose
//!   container has none (RAF, CR3) is read through its largest JPEG preview. JPEG XL and PNG's
//!   older text chunks ("Raw profile type exif") are not read.
//! - The capture time is `DateTimeOriginal`, else `DateTimeDigitized`, else `DateTime`, with
//!   the matching `OffsetTime*` tag, else `OffsetTime`; seconds only (`SubSecTime*` is
//!   ignored). Without an offset the time is a wall-clock time, read in the zone the caller
//!   gives (ingest gives the machine's own); without any valid date it is the file's
//!   modification time, and [`TakenSource`] says which.
//! - The pixel size is the one the header states, as stored (before EXIF orientation), read
//!   without decoding: `image`'s header parser for the formats it reads, the largest preview
//!   for RAW files, EXIF's `PixelXDimension`/`PixelYDimension` for the others (0 when absent).
//! - Hostile metadata (truncated, looping, huge counts) leaves fields empty; a panic in the
//!   parser is contained like a decoder's ([`contain`]), and never fails the image.

use std::io::Cursor;
use std::path::Path;

use exif::{Exif, In, Tag, Value};
use image::ImageReader;
use jiff::civil;
use jiff::tz::{Offset, TimeZone};
use xsearch_index::{ImageMeta, Taken, TakenSource};

use super::{contain, raw, read_file, read_head, DecodeError, DecodeLimits};

/// How much of a JPEG [`read_file_meta`] reads first: its EXIF block (APP1, at most 64 KiB)
/// and frame header come before the picture data, after at most a few other segments.
const JPEG_HEAD: u64 = 256 << 10;

/// The metadata of the image file whose content is `bytes` (at `path`, for errors; modified at
/// `mtime_ns`, nanoseconds since the Unix epoch), reading EXIF times without an offset in
/// `zone`. Never fails: what cannot be read stays empty, and the capture time falls back to
/// the modification time.
pub fn read_meta(bytes: &[u8], path: Option<&Path>, mtime_ns: i64, zone: &TimeZone) -> ImageMeta {
    let mut meta =
        contain(path, "the metadata reader", || Ok(from_bytes(bytes, zone))).unwrap_or_default();
    if meta.taken.is_none() {
        meta.taken = Some(Taken {
            unix: mtime_ns.div_euclid(1_000_000_000),
            offset_minutes: None,
            source: TakenSource::Mtime,
        });
    }
    meta
}

/// [`read_meta`] for a file not otherwise read (an indexed file gaining its metadata): of a
/// JPEG only the head is read when it holds the frame header, as it does in camera files;
/// any other file is read whole (TIFF and WebP may keep their metadata at the end).
pub fn read_file_meta(
    path: &Path,
    limits: &DecodeLimits,
    mtime_ns: i64,
    zone: &TimeZone,
) -> Result<ImageMeta, DecodeError> {
    let head = read_head(path, limits, JPEG_HEAD)?;
    let whole = (head.len() as u64) < JPEG_HEAD;
    if whole || head.starts_with(&[0xFF, 0xD8]) {
        let meta = read_meta(&head, Some(path), mtime_ns, zone);
        if whole || meta.width > 0 {
            return Ok(meta);
        }
    }
    Ok(read_meta(
        &read_file(path, limits)?,
        Some(path),
        mtime_ns,
        zone,
    ))
}

fn from_bytes(bytes: &[u8], zone: &TimeZone) -> ImageMeta {
    let exif = exif_of(bytes);
    let (width, height) = pixel_size(bytes, exif.as_ref());
    let Some(exif) = exif else {
        return ImageMeta {
            width,
            height,
            ..ImageMeta::default()
        };
    };
    ImageMeta {
        taken: taken(&exif, zone),
        camera: camera(&exif),
        width,
        height,
        gps: gps(&exif),
    }
}

/// The EXIF block of any container that has one.
fn exif_of(bytes: &[u8]) -> Option<Exif> {
    let from_container =
        |bytes: &[u8]| parsed(exif_reader().read_from_container(&mut Cursor::new(bytes)));
    if !raw::is_raw(bytes) {
        return from_container(bytes);
    }
    // ORF ("IIRO", "IIRS", "MMOR") and RW2 ("IIU\0") are TIFF with their own magic number.
    let body = match bytes.get(..4) {
        Some(b"IIRO" | b"IIRS" | b"IIU\0") => {
            let mut tiff = bytes.to_vec();
            tiff[..4].copy_from_slice(b"II*\0");
            parsed(exif_reader().read_raw(tiff))
        }
        Some(b"MMOR") => {
            let mut tiff = bytes.to_vec();
            tiff[..4].copy_from_slice(b"MM\0*");
            parsed(exif_reader().read_raw(tiff))
        }
        _ => from_container(bytes),
    };
    // RAF and CR3 keep their EXIF where the container reader does not look; their preview
    // JPEG carries a copy (RAF's does).
    match body {
        Some(body) if taken_field(&body).is_some() => Some(body),
        body => raw::largest_preview(bytes)
            .ok()
            .and_then(|preview| from_container(preview.jpeg))
            .filter(|preview| taken_field(preview).is_some())
            .or(body),
    }
}

fn exif_reader() -> exif::Reader {
    let mut reader = exif::Reader::new();
    // A bad field or IFD loses that field, not the whole block.
    reader.continue_on_error(true);
    reader
}

fn parsed(result: Result<Exif, exif::Error>) -> Option<Exif> {
    match result {
        Ok(exif) => Some(exif),
        Err(exif::Error::PartialResult(partial)) => Some(partial.into_inner().0),
        Err(_) => None,
    }
}

/// The capture time tags, each with its offset tag, in order of preference.
const TIMES: [(Tag, Tag); 3] = [
    (Tag::DateTimeOriginal, Tag::OffsetTimeOriginal),
    (Tag::DateTimeDigitized, Tag::OffsetTimeDigitized),
    (Tag::DateTime, Tag::OffsetTime),
];

/// The first capture time tag present (whether valid or not).
fn taken_field(exif: &Exif) -> Option<&[u8]> {
    TIMES.iter().find_map(|&(tag, _)| ascii(exif, tag))
}

fn taken(exif: &Exif, zone: &TimeZone) -> Option<Taken> {
    TIMES.iter().find_map(|&(tag, offset_tag)| {
        let mut time = exif::DateTime::from_ascii(ascii(exif, tag)?).ok()?;
        let offset = ascii(exif, offset_tag).or_else(|| ascii(exif, Tag::OffsetTime));
        if let Some(offset) = offset {
            // A malformed offset is as good as none: the time is still a wall-clock time.
            if time.parse_offset(offset).is_err() {
                time.offset = None;
            }
        }
        instant(&time, zone)
    })
}

/// The instant of an EXIF time: at its offset when it has one, else in `zone`. `None` for a
/// date that does not exist ("0000:00:00 00:00:00", month 13) or an offset beyond ±18 h.
fn instant(time: &exif::DateTime, zone: &TimeZone) -> Option<Taken> {
    let civil = civil::DateTime::new(
        i16::try_from(time.year).ok()?,
        i8::try_from(time.month).ok()?,
        i8::try_from(time.day).ok()?,
        i8::try_from(time.hour).ok()?,
        i8::try_from(time.minute).ok()?,
        i8::try_from(time.second).ok()?,
        0,
    )
    .ok()?;
    // Year 0 parses, but no camera wrote it: it is an unset clock.
    if civil.year() < 1 {
        return None;
    }
    let offset_minutes = match time.offset {
        Some(minutes) if minutes.abs() <= 18 * 60 => Some(minutes),
        Some(_) => return None,
        None => None,
    };
    // A wall-clock time in a summer-time gap or fold resolves as RFC 5545 says (jiff's
    // "compatible"): a gap moves forward, a fold takes the earlier instant.
    let timestamp = match offset_minutes {
        Some(minutes) => Offset::from_seconds(i32::from(minutes) * 60)
            .ok()?
            .to_timestamp(civil)
            .ok()?,
        None => zone.to_timestamp(civil).ok()?,
    };
    Some(Taken {
        unix: timestamp.as_second(),
        offset_minutes,
        source: TakenSource::Exif,
    })
}

/// "Make Model", trimmed, NULs and repeated spaces removed, the make left out when the model
/// already starts with its first word ("Canon" + "Canon EOS 5D", "NIKON CORPORATION" +
/// "NIKON D750").
fn camera(exif: &Exif) -> Option<String> {
    let text = |tag| {
        let words: Vec<String> = String::from_utf8_lossy(ascii(exif, tag)?)
            .split(|c: char| c.is_whitespace() || c == '\0')
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect();
        (!words.is_empty()).then(|| words.join(" "))
    };
    match (text(Tag::Make), text(Tag::Model)) {
        (Some(make), Some(model)) => {
            let brand = make.split(' ').next().unwrap_or_default().to_lowercase();
            if model.to_lowercase().starts_with(&brand) {
                Some(model)
            } else {
                Some(format!("{make} {model}"))
            }
        }
        (make, model) => model.or(make),
    }
}

/// Latitude and longitude in signed degrees. `None` unless both are complete, within range,
/// with their N/S and E/W references; (0, 0) is how receivers without a fix fill the tags,
/// and is not a position.
fn gps(exif: &Exif) -> Option<(f64, f64)> {
    let coordinate = |tag, reference, positive: u8, negative: u8, limit: f64| {
        let Value::Rational(parts) = &exif.get_field(tag, In::PRIMARY)?.value else {
            return None;
        };
        if parts.len() < 3 || parts.iter().take(3).any(|r| r.denom == 0) {
            return None;
        }
        let degrees = parts[0].to_f64() + parts[1].to_f64() / 60.0 + parts[2].to_f64() / 3600.0;
        let sign = match ascii(exif, reference)?.first()?.to_ascii_uppercase() {
            b if b == positive => 1.0,
            b if b == negative => -1.0,
            _ => return None,
        };
        (degrees.is_finite() && degrees <= limit).then_some(sign * degrees)
    };
    let latitude = coordinate(Tag::GPSLatitude, Tag::GPSLatitudeRef, b'N', b'S', 90.0)?;
    let longitude = coordinate(Tag::GPSLongitude, Tag::GPSLongitudeRef, b'E', b'W', 180.0)?;
    (latitude != 0.0 || longitude != 0.0).then_some((latitude, longitude))
}

/// The first string of an ASCII field of the primary image.
fn ascii(exif: &Exif, tag: Tag) -> Option<&[u8]> {
    match &exif.get_field(tag, In::PRIMARY)?.value {
        Value::Ascii(strings) => strings.first().map(Vec::as_slice),
        _ => None,
    }
}

/// Width and height as the file's header states them, without decoding (0 when unknown).
fn pixel_size(bytes: &[u8], exif: Option<&Exif>) -> (u32, u32) {
    if raw::is_raw(bytes) {
        return raw::largest_preview(bytes)
            .map_or((0, 0), |p| (u32::from(p.width), u32::from(p.height)));
    }
    let header = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .ok()
        .filter(|reader| reader.format().is_some())
        .and_then(|reader| reader.into_dimensions().ok());
    header
        .or_else(|| {
            let exif = exif?;
            let size = |tag| exif.get_field(tag, In::PRIMARY)?.value.get_uint(0);
            Some((size(Tag::PixelXDimension)?, size(Tag::PixelYDimension)?))
        })
        .unwrap_or((0, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone() -> TimeZone {
        // Central European Time, with its summer time, independent of the machine's zone.
        TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap()
    }

    fn time(text: &str, offset: Option<i16>) -> exif::DateTime {
        let mut time = exif::DateTime::from_ascii(text.as_bytes()).unwrap();
        time.offset = offset;
        time
    }

    #[test]
    fn a_time_with_an_offset_is_that_instant() {
        // 2021-07-14 18:03:00 +02:00 is 16:03:00 UTC.
        let taken = instant(&time("2021:07:14 18:03:00", Some(120)), &zone()).unwrap();
        assert_eq!(taken.unix, 1_626_278_580);
        assert_eq!(taken.offset_minutes, Some(120));
        assert_eq!(taken.source, TakenSource::Exif);
    }

    #[test]
    fn a_wall_clock_time_is_read_in_the_given_zone_with_its_summer_time() {
        let summer = instant(&time("2021:07:14 18:03:00", None), &zone()).unwrap();
        assert_eq!((summer.unix, summer.offset_minutes), (1_626_278_580, None));
        let winter = instant(&time("2021:01:14 18:03:00", None), &zone()).unwrap();
        assert_eq!(winter.unix, 1_610_643_780); // 17:03 UTC
    }

    #[test]
    fn impossible_dates_and_offsets_are_no_time() {
        for (text, offset) in [
            ("0000:00:00 00:00:00", None),
            ("2021:13:01 00:00:00", None),
            ("2021:02:30 00:00:00", None),
            ("2021:01:01 25:00:00", None),
            ("2021:01:01 00:00:00", Some(19 * 60)),
        ] {
            assert_eq!(instant(&time(text, offset), &zone()), None, "{text}");
        }
    }
}
