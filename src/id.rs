//! `ImageId`: the opaque name of an indexed image, for callers that must refer to one without
//! its path (the server's URLs, "more like this").

use std::fmt;
use std::str::FromStr;

/// An indexed image's id: its index record's id. A file gets a new one each time it is indexed
/// again (changed, or moved and re-embedded) and ids are never reused, so an id names one
/// version of one file, or nothing once that version has left the index.
///
/// Written as lowercase hexadecimal without leading zeros; [`FromStr`] accepts only that
/// spelling, so every id has exactly one:
///
/// ```
/// let id: xsearch::ImageId = "2a".parse().unwrap();
/// assert_eq!(id, xsearch::ImageId(42));
/// assert_eq!(id.to_string(), "2a");
/// assert!("2A".parse::<xsearch::ImageId>().is_err());
/// assert!("02a".parse::<xsearch::ImageId>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageId(pub u64);

/// A string that is not an [`ImageId`]'s spelling.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an image id\n\nIds are the lowercase hexadecimal `id` of a search result.")]
pub struct ParseIdError(String);

impl fmt::Display for ImageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

impl FromStr for ImageId {
    type Err = ParseIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // `from_str_radix` alone would also take `+2a`, `2A` and `002a`.
        let canonical = !s.is_empty()
            && s.len() <= 16
            && (s == "0" || !s.starts_with('0'))
            && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let bad = || ParseIdError(s.chars().take(40).collect());
        if !canonical {
            return Err(bad());
        }
        u64::from_str_radix(s, 16).map(ImageId).map_err(|_| bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_id_round_trips_and_other_spellings_are_refused() {
        for id in [0, 1, 42, u64::MAX] {
            assert_eq!(ImageId(id).to_string().parse(), Ok(ImageId(id)));
        }
        assert_eq!(ImageId(u64::MAX).to_string(), "ffffffffffffffff");
        for bad in [
            "",
            "+1",
            "-1",
            "0x1",
            "1A",
            "01",
            "00",
            " 1",
            "1 ",
            "..",
            "%2e",
            "g",
            "10000000000000000",
            "/etc/passwd",
        ] {
            assert!(bad.parse::<ImageId>().is_err(), "{bad:?}");
        }
    }
}
