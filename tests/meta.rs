//! Metadata read from each container (`xsearch::decode::read_meta`), with exact values.
//! Fixtures: `fixtures/meta/make_meta.py` (the values below are the ones it writes) and the
//! RAW samples of `fixtures/formats/make_raw.py`.

use std::path::Path;

use jiff::tz::TimeZone;
use xsearch::decode::{read_file_meta, read_meta, DecodeLimits};
use xsearch_index::{ImageMeta, Taken, TakenSource};

/// 2023-11-14 22:13:20.123456789 UTC: the modification time the tests pass.
const MTIME_NS: i64 = 1_700_000_000_123_456_789;

/// Central European Time with its summer time: EXIF times without an offset are read in it,
/// whatever the zone of the machine running the tests.
fn zone() -> TimeZone {
    TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap()
}

fn meta_of(relative: &str) -> ImageMeta {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(relative);
    let bytes = std::fs::read(&path).unwrap();
    read_meta(&bytes, Some(&path), MTIME_NS, &zone())
}

fn exif(unix: i64, offset_minutes: Option<i16>) -> Option<Taken> {
    Some(Taken {
        unix,
        offset_minutes,
        source: TakenSource::Exif,
    })
}

fn mtime() -> Option<Taken> {
    Some(Taken {
        unix: 1_700_000_000,
        offset_minutes: None,
        source: TakenSource::Mtime,
    })
}

fn degrees(d: f64, m: f64, s: f64) -> f64 {
    d + m / 60.0 + s / 3600.0
}

/// 2021-07-14 18:03:00 +02:00, by Canon's "Canon EOS 5D", in Paris.
fn offset_jpeg() -> ImageMeta {
    ImageMeta {
        taken: exif(1_626_278_580, Some(120)),
        camera: Some("Canon EOS 5D".into()),
        width: 64,
        height: 48,
        gps: Some((degrees(48.0, 51.0, 30.12), degrees(2.0, 17.0, 40.13))),
    }
}

#[test]
fn jpeg_with_an_offset() {
    assert_eq!(meta_of("meta/offset.jpg"), offset_jpeg());
}

#[test]
fn heic_exif_item() {
    // The same EXIF block, copied by heif-enc; the size comes from EXIF's PixelX/YDimension.
    assert_eq!(meta_of("meta/offset.heic"), offset_jpeg());
}

#[test]
fn jpeg_without_an_offset_is_local_time_and_its_size_as_stored() {
    // 18:03 in January in Central Europe is 17:03 UTC; orientation 6 does not swap the size.
    assert_eq!(
        meta_of("meta/local.jpg"),
        ImageMeta {
            taken: exif(1_610_643_780, None),
            camera: Some("Apple iPhone 12".into()),
            width: 48,
            height: 64,
            gps: None,
        }
    );
}

#[test]
fn jpeg_without_exif_falls_back_to_the_modification_time() {
    assert_eq!(
        meta_of("meta/plain.jpg"),
        ImageMeta {
            taken: mtime(),
            camera: None,
            width: 32,
            height: 32,
            gps: None,
        }
    );
}

#[test]
fn png_exif_chunk_with_the_generic_offset_and_southern_gps() {
    assert_eq!(
        meta_of("meta/exif.png"),
        ImageMeta {
            taken: exif(1_583_038_799, Some(-300)),
            camera: Some("NIKON D750".into()),
            width: 40,
            height: 30,
            gps: Some((-degrees(33.0, 51.0, 35.9), degrees(151.0, 12.0, 40.0))),
        }
    );
}

#[test]
fn webp_exif_chunk_with_only_datetime() {
    assert_eq!(
        meta_of("meta/exif.webp"),
        ImageMeta {
            taken: exif(1_577_802_600, Some(540)),
            camera: Some("FUJIFILM X-T3".into()),
            width: 30,
            height: 20,
            gps: None,
        }
    );
}

#[test]
fn tiff_with_only_datetime_digitized_and_a_padded_make() {
    // 12:00 in June in Central Europe (summer time) is 10:00 UTC.
    assert_eq!(
        meta_of("meta/exif.tif"),
        ImageMeta {
            taken: exif(1_527_847_200, None),
            camera: Some("SONY ILCE-7M3".into()),
            width: 20,
            height: 10,
            gps: None,
        }
    );
}

#[test]
fn raw_files_give_their_exif_and_their_preview_size() {
    // The CR2 states DateTimeOriginal 2026:12:06 10:00:00 (09:00 UTC in winter) and "Canon".
    assert_eq!(
        meta_of("formats/raw/sample.cr2"),
        ImageMeta {
            taken: exif(1_796_547_600, None),
            camera: Some("Canon".into()),
            width: 256,
            height: 192,
            gps: None,
        }
    );
    // ORF is TIFF under another magic number; its Make is all it says.
    assert_eq!(
        meta_of("formats/raw/sample.orf"),
        ImageMeta {
            taken: mtime(),
            camera: Some("OLYMPUS".into()),
            width: 256,
            height: 192,
            gps: None,
        }
    );
}

#[test]
fn hostile_exif_blocks_leave_fields_empty_and_never_panic() {
    let plain = |taken, camera: Option<&str>| ImageMeta {
        taken,
        camera: camera.map(str::to_owned),
        width: 16,
        height: 16,
        gps: None,
    };
    // Fields pointing past the block's end are dropped; the rest of the block still counts.
    assert_eq!(meta_of("meta/hostile_truncated.jpg"), plain(mtime(), None));
    assert_eq!(
        meta_of("meta/hostile_loop.jpg"),
        plain(mtime(), Some("Foo"))
    );
    // A Make claiming 2^32-1 characters is dropped; the DateTime beside it is read.
    assert_eq!(
        meta_of("meta/hostile_huge.jpg"),
        plain(exif(1_626_278_580, None), None)
    );
    // Zero denominators and an unknown reference: no position.
    assert_eq!(meta_of("meta/hostile_gps.jpg"), plain(mtime(), None));
}

#[test]
fn random_bytes_have_no_metadata_but_their_modification_time() {
    assert_eq!(
        read_meta(b"not an image at all", None, MTIME_NS, &zone()),
        ImageMeta {
            taken: mtime(),
            ..ImageMeta::default()
        }
    );
}

#[test]
fn a_file_read_for_its_metadata_alone_gives_the_same_answers() {
    // Padded past the head a JPEG is read by: its head is enough. The TIFF is read whole.
    let dir = tempfile::tempdir().unwrap();
    for (name, expected) in [
        ("offset.jpg", offset_jpeg()),
        ("exif.tif", meta_of("meta/exif.tif")),
    ] {
        let mut bytes = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("fixtures/meta")
                .join(name),
        )
        .unwrap();
        bytes.resize(bytes.len() + 400_000, 0);
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let meta = read_file_meta(&path, &DecodeLimits::default(), MTIME_NS, &zone()).unwrap();
        assert_eq!(meta, expected, "{name}");
    }
    let small = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/meta/exif.png");
    assert_eq!(
        read_file_meta(&small, &DecodeLimits::default(), MTIME_NS, &zone()).unwrap(),
        meta_of("meta/exif.png")
    );
}
