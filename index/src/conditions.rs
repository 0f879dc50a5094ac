//! A search's filters on images, as values any backend can apply: the embedded index turns them
//! into a set of ids, Milvus into a boolean expression ([`crate::Milvus`]).

/// Which images may answer a search; every condition present must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conditions {
    /// The key of the image starts with this (a folder's path and a separator).
    pub key_prefix: Option<Vec<u8>>,
    /// Taken at or after this instant, in nanoseconds since the Unix epoch.
    pub after_ns: Option<i128>,
    /// Taken before this instant, in nanoseconds since the Unix epoch.
    pub before_ns: Option<i128>,
    /// The camera's name contains this text, in lower case (the name is compared lowered).
    pub camera: Option<String>,
}

impl Conditions {
    /// Whether a condition needs each image's metadata (time or camera), beyond its key.
    pub fn needs_meta(&self) -> bool {
        self.after_ns.is_some() || self.before_ns.is_some() || self.camera.is_some()
    }

    /// The first whole second at or after `ns`: capture times are whole seconds, so
    /// `second * 1e9 >= ns` exactly when `second >= ceil_seconds(ns)`.
    pub fn ceil_seconds(ns: i128) -> i64 {
        let seconds = -((-ns).div_euclid(1_000_000_000));
        seconds.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceil_seconds_rounds_up_on_both_sides_of_the_epoch() {
        assert_eq!(Conditions::ceil_seconds(0), 0);
        assert_eq!(Conditions::ceil_seconds(1), 1);
        assert_eq!(Conditions::ceil_seconds(1_000_000_000), 1);
        assert_eq!(Conditions::ceil_seconds(1_000_000_001), 2);
        assert_eq!(Conditions::ceil_seconds(-1), 0);
        assert_eq!(Conditions::ceil_seconds(-5_000_000_000), -5);
        assert_eq!(Conditions::ceil_seconds(-5_000_000_001), -5);
        assert_eq!(Conditions::ceil_seconds(i128::MAX), i64::MAX);
    }
}
