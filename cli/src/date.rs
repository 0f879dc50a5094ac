//! The dates of `--after` and `--before`: ISO 8601 dates or date-times, in the local time zone
//! unless they name one.

use std::time::SystemTime;

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// A date argument: the text as given (for messages) and the instant it names.
#[derive(Debug, Clone, PartialEq)]
pub struct DateArg {
    pub text: String,
    pub instant: SystemTime,
}

/// What a bad date is told, after clap's "invalid value 'X' for '--after <DATE>'".
const EXAMPLES: &str = "expected an ISO 8601 date or date-time, e.g. 2021-07-01, \
2021-07-01T18:00 or 2021-07-01T18:00+02:00";

/// clap's parser for `--after` and `--before`, in the system's time zone.
pub fn parse(text: &str) -> Result<DateArg, String> {
    let instant = instant(text, &TimeZone::system())
        .and_then(|t| SystemTime::try_from(t).ok())
        .ok_or_else(|| EXAMPLES.to_owned())?;
    Ok(DateArg {
        text: text.to_owned(),
        instant,
    })
}

/// The instant `text` names: a date is midnight at its start, a date-time without a zone is
/// wall-clock time in `zone`, and one with `Z` or an offset is that instant. A wall-clock time
/// that a daylight-saving change skips moves forward by the gap; one it repeats is its first
/// occurrence (jiff's "compatible" rule, as RFC 5545 and JavaScript's Temporal).
fn instant(text: &str, zone: &TimeZone) -> Option<Timestamp> {
    if let Ok(instant) = text.parse::<Timestamp>() {
        return Some(instant);
    }
    let local = match text.parse::<DateTime>() {
        Ok(datetime) if text.len() > "2021-07-01".len() => datetime,
        _ => text
            .parse::<Date>()
            .ok()?
            .to_datetime(jiff::civil::Time::midnight()),
    };
    zone.to_timestamp(local).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // POSIX TZ rules, so the tests need no time zone database on the machine.
    const UTC: &str = "UTC0";
    const PARIS: &str = "CET-1CEST,M3.5.0,M10.5.0/3";
    const NEW_YORK: &str = "EST5EDT,M3.2.0,M11.1.0";
    const TOKYO: &str = "JST-9";

    fn unix(text: &str, zone: &str) -> Option<i64> {
        let zone = TimeZone::posix(zone).unwrap();
        instant(text, &zone).map(|t| t.as_second())
    }

    #[test]
    fn dates_are_local_midnight_and_zones_are_honoured() {
        // 2021-07-01T00:00Z is 1625097600.
        assert_eq!(unix("2021-07-01", UTC), Some(1_625_097_600));
        assert_eq!(unix("2021-07-01", PARIS), Some(1_625_097_600 - 2 * 3600));
        assert_eq!(unix("2021-07-01", NEW_YORK), Some(1_625_097_600 + 4 * 3600));
        assert_eq!(
            unix("2021-07-01T18:00", PARIS),
            Some(1_625_097_600 + 16 * 3600)
        );
        assert_eq!(
            unix("2021-07-01T18:00:30", UTC),
            Some(1_625_097_600 + 18 * 3600 + 30)
        );
        // A zone in the text wins over the local one.
        assert_eq!(
            unix("2021-07-01T18:00Z", TOKYO),
            Some(1_625_097_600 + 18 * 3600)
        );
        assert_eq!(
            unix("2021-07-01T18:00+02:00", TOKYO),
            Some(1_625_097_600 + 16 * 3600)
        );
        // A time the spring change skips moves forward by the gap: 02:30 is 03:30 CEST.
        assert_eq!(unix("2021-03-28T02:30", PARIS), Some(1_616_889_600 + 5_400));
        // Winter: Paris is UTC+1.
        assert_eq!(unix("2021-01-01", PARIS), Some(1_609_459_200 - 3600));
    }

    #[test]
    fn bad_dates_are_refused_with_examples() {
        for bad in [
            "2021-13-01",
            "yesterday",
            "2021-07-01T25:00",
            "01/07/2021",
            "",
        ] {
            assert_eq!(unix(bad, UTC), None, "{bad}");
        }
        assert_eq!(parse("July").unwrap_err(), EXAMPLES);
    }
}
