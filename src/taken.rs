//! How a capture time reads: ISO 8601 with the offset it was taken at when the file says it,
//! else in this machine's zone (where an EXIF time without an offset was read at ingest, so
//! the wall-clock time the camera showed comes back).

use jiff::tz::{Offset, TimeZone};
use jiff::Timestamp;
use xsearch_index::Taken;

/// `taken` as ISO 8601 with its offset: `2021-07-14T18:03:00+02:00`. A time whose offset is
/// unknown (an EXIF time without one, a modification time) is shown in the local zone (`TZ`,
/// else the system's).
pub fn format_taken(taken: &Taken) -> String {
    format_in(taken, &TimeZone::system())
}

fn format_in(taken: &Taken, local: &TimeZone) -> String {
    // Out-of-range instants cannot come from a valid EXIF date or a file time; show the epoch
    // rather than fail a whole listing over one record.
    let instant = Timestamp::from_second(taken.unix).unwrap_or(Timestamp::UNIX_EPOCH);
    let zone = taken
        .offset_minutes
        .and_then(|minutes| Offset::from_seconds(i32::from(minutes) * 60).ok())
        .map_or_else(|| local.clone(), TimeZone::fixed);
    instant
        .to_zoned_datetime(zone)
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use xsearch_index::TakenSource;

    fn taken(unix: i64, offset_minutes: Option<i16>) -> Taken {
        Taken {
            unix,
            offset_minutes,
            source: TakenSource::Exif,
        }
    }

    #[test]
    fn a_known_offset_is_kept_and_an_unknown_one_is_the_local_zone_at_that_date() {
        let local = TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
        let cases = [
            (taken(1_626_278_580, Some(120)), "2021-07-14T18:03:00+02:00"),
            (
                taken(1_583_038_799, Some(-300)),
                "2020-02-29T23:59:59-05:00",
            ),
            (taken(1_626_278_580, Some(0)), "2021-07-14T16:03:00+00:00"),
            (taken(1_610_643_780, None), "2021-01-14T18:03:00+01:00"),
            (taken(1_626_278_580, None), "2021-07-14T18:03:00+02:00"),
        ];
        for (taken, text) in cases {
            assert_eq!(format_in(&taken, &local), text);
        }
    }
}
