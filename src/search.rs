//! What a search asks for besides the query: how many hits, which images may answer (folder,
//! capture time, camera), the score floor and the order. The engine resolves the filters into
//! one set of ids ([`ImageFilter`]) that the index checks while it walks its graphs.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use xsearch_index::{CameraId, Conditions, IdSet, MetaFields, MetaTable, Taken};

use crate::keys::path_key;

/// Options of [`crate::Engine::search`] and [`crate::Engine::search_texts`].
///
/// Built from [`SearchOptions::default`] (10 hits, no filter, best first) or
/// [`SearchOptions::new`] and refined with setters; the struct is `#[non_exhaustive]`, so
/// options added later do not break callers:
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use xsearch::{SearchOptions, Sort};
///
/// let summer_2021 = SearchOptions::new(5)
///     .within("/photos")
///     .after(UNIX_EPOCH + Duration::from_secs(1_622_505_600)) // 2021-06-01 UTC
///     .before(UNIX_EPOCH + Duration::from_secs(1_630_454_400)) // 2021-09-01 UTC
///     .camera("iphone")
///     .min_score(0.2)
///     .sort(Sort::Date);
/// assert_eq!(summer_2021.k, 5);
/// ```
///
/// The filters (`within`, `after`, `before`, `camera`) apply to images only: texts have no
/// path or capture time. A filter that no image passes finds nothing, and so does a score
/// floor above every hit: a search may return fewer than `k` hits.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SearchOptions {
    /// How many hits to return at most.
    pub k: usize,
    /// Only images under this folder.
    pub within: Option<PathBuf>,
    /// Only images taken at or after this instant.
    pub after: Option<SystemTime>,
    /// Only images taken before this instant.
    pub before: Option<SystemTime>,
    /// Only images whose camera ("Make Model") contains this text, ignoring case.
    pub camera: Option<String>,
    /// Only hits scoring at least this.
    pub min_score: Option<f32>,
    /// The order of the hits.
    pub sort: Sort,
}

/// The order of a search's hits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Sort {
    /// Most similar first.
    #[default]
    Score,
    /// The `k` most similar, newest first (by capture time; images without one last, most
    /// similar first). It orders a page of the best matches by date, as photo apps do; it
    /// does not look for the newest images among all those that match.
    Date,
}

impl Default for SearchOptions {
    fn default() -> Self {
        Self::new(10)
    }
}

impl SearchOptions {
    /// At most `k` hits, no filter, most similar first.
    pub fn new(k: usize) -> Self {
        Self {
            k,
            within: None,
            after: None,
            before: None,
            camera: None,
            min_score: None,
            sort: Sort::Score,
        }
    }

    /// At most `k` hits.
    pub fn k(mut self, k: usize) -> Self {
        self.k = k;
        self
    }

    /// Only images under `dir` (made absolute against the current directory when searched).
    pub fn within(mut self, dir: impl Into<PathBuf>) -> Self {
        self.within = Some(dir.into());
        self
    }

    /// Only images taken at or after `instant` (inclusive).
    pub fn after(mut self, instant: SystemTime) -> Self {
        self.after = Some(instant);
        self
    }

    /// Only images taken before `instant` (exclusive).
    pub fn before(mut self, instant: SystemTime) -> Self {
        self.before = Some(instant);
        self
    }

    /// Only images whose camera ("Make Model", e.g. "Apple iPhone 12") contains `text`,
    /// ignoring case.
    pub fn camera(mut self, text: impl Into<String>) -> Self {
        self.camera = Some(text.into());
        self
    }

    /// Only hits scoring at least `score` (cosine similarity, -1 to 1).
    pub fn min_score(mut self, score: f32) -> Self {
        self.min_score = Some(score);
        self
    }

    /// The order of the hits.
    pub fn sort(mut self, sort: Sort) -> Self {
        self.sort = sort;
        self
    }

    /// The image filter these options describe, `None` when every image may answer.
    pub(crate) fn image_filter(&self) -> Option<ImageFilter> {
        let filter = ImageFilter {
            within: self.within.as_deref().map(folder_prefix),
            after: self.after.map(nanos),
            before: self.before.map(nanos),
            camera: self.camera.as_deref().map(str::to_lowercase),
        };
        (filter.within.is_some() || filter.needs_meta()).then_some(filter)
    }

    /// Applies the score floor and the order to hits found best first.
    pub(crate) fn finish<H>(
        &self,
        mut hits: Vec<H>,
        score: impl Fn(&H) -> f32,
        taken: impl Fn(&H) -> Option<Taken>,
    ) -> Vec<H> {
        if let Some(floor) = self.min_score {
            hits.retain(|hit| score(hit) >= floor);
        }
        if self.sort == Sort::Date {
            // Stable: images taken at the same second, and those without a date, stay in
            // score order.
            hits.sort_by_key(|hit| std::cmp::Reverse(taken(hit).map(|t| t.unix)));
        }
        hits
    }
}

/// A search's filters, resolved: the index key prefix of the folder, the time range in
/// nanoseconds since the epoch, the camera text in lower case.
#[derive(Debug, PartialEq)]
pub(crate) struct ImageFilter {
    within: Option<Vec<u8>>,
    after: Option<i128>,
    before: Option<i128>,
    camera: Option<String>,
}

impl ImageFilter {
    /// The key prefix every image under the folder has, if the search names a folder.
    pub(crate) fn key_prefix(&self) -> Option<&[u8]> {
        self.within.as_deref()
    }

    /// The same filter as values a server's index turns into its own query language.
    pub(crate) fn conditions(&self) -> Conditions {
        Conditions {
            key_prefix: self.within.clone(),
            after_ns: self.after,
            before_ns: self.before,
            camera: self.camera.clone(),
        }
    }

    /// Whether a filter needs each image's metadata (time or camera), beyond its path.
    pub(crate) fn needs_meta(&self) -> bool {
        self.after.is_some() || self.before.is_some() || self.camera.is_some()
    }

    /// The ids in `table` (an index's in-memory metadata) that pass the time and camera
    /// filters. An image with no capture time fails a time filter; one with no camera fails a
    /// camera filter; one without metadata (not yet backfilled) fails both.
    pub(crate) fn select(&self, table: &MetaTable) -> IdSet {
        let cameras = self.matching_cameras(table.cameras());
        table
            .iter()
            .filter(|(_, fields)| self.accepts(*fields, cameras.as_deref()))
            .map(|(id, _)| id)
            .collect()
    }

    /// The cameras the camera filter accepts, `None` without one: the text is looked for
    /// once per distinct camera, then candidates compare ids.
    fn matching_cameras<'a>(
        &self,
        cameras: impl Iterator<Item = (CameraId, &'a str)>,
    ) -> Option<Vec<CameraId>> {
        let text = self.camera.as_ref()?;
        Some(
            cameras
                .filter(|(_, name)| name.to_lowercase().contains(text))
                .map(|(id, _)| id)
                .collect(),
        )
    }

    /// Whether an image with `fields` passes the time filters and, with `cameras`, is taken
    /// by one of them.
    fn accepts(&self, fields: MetaFields, cameras: Option<&[CameraId]>) -> bool {
        let taken = fields.taken.map(|unix| i128::from(unix) * 1_000_000_000);
        let in_time = |bound: Option<i128>, pass: fn(i128, i128) -> bool| {
            bound.is_none_or(|bound| taken.is_some_and(|t| pass(t, bound)))
        };
        in_time(self.after, |t, after| t >= after)
            && in_time(self.before, |t, before| t < before)
            && cameras.is_none_or(|ok| fields.camera.is_some_and(|c| ok.contains(&c)))
    }
}

/// The key prefix of the images under `dir`: its absolute path, `.` components and trailing
/// slashes dropped, then one `/` (so `/a/b` holds `/a/b/c.jpg`, not `/a/bc.jpg`).
fn folder_prefix(dir: &std::path::Path) -> Vec<u8> {
    let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let normal: PathBuf = absolute.components().collect();
    let mut prefix = path_key(&normal);
    if !prefix.ends_with(std::path::MAIN_SEPARATOR_STR.as_bytes()) {
        prefix.extend_from_slice(std::path::MAIN_SEPARATOR_STR.as_bytes());
    }
    prefix
}

/// Nanoseconds since the Unix epoch (negative before it).
fn nanos(instant: SystemTime) -> i128 {
    match instant.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_nanos() as i128,
        Err(before) => -(before.duration().as_nanos() as i128),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// An image taken at `unix` by camera 0.
    fn at(unix: i64) -> MetaFields {
        MetaFields {
            taken: Some(unix),
            camera: Some(CameraId(0)),
        }
    }

    const UNKNOWN: MetaFields = MetaFields {
        taken: None,
        camera: None,
    };

    #[test]
    fn no_filter_by_default_and_within_is_an_absolute_folder_prefix() {
        assert!(SearchOptions::default().image_filter().is_none());
        assert_eq!(SearchOptions::default().k, 10);
        let filter = SearchOptions::new(3)
            .within("/a/b/./")
            .image_filter()
            .unwrap();
        assert_eq!(filter.key_prefix(), Some(&b"/a/b/"[..]));
        assert!(!filter.needs_meta());
        let root = SearchOptions::new(3).within("/").image_filter().unwrap();
        assert_eq!(root.key_prefix(), Some(&b"/"[..]));
        let relative = SearchOptions::new(3).within("x").image_filter().unwrap();
        let expected = path_key(&std::env::current_dir().unwrap().join("x/"));
        assert_eq!(relative.key_prefix(), Some(&expected[..]));
    }

    #[test]
    fn after_is_inclusive_and_before_exclusive_to_the_nanosecond() {
        let t = UNIX_EPOCH + Duration::from_secs(1_000);
        let filter = SearchOptions::new(3)
            .after(t)
            .before(t + Duration::from_secs(60));
        let filter = filter.image_filter().unwrap();
        assert!(filter.needs_meta() && filter.key_prefix().is_none());
        assert!(!filter.accepts(at(999), None));
        assert!(filter.accepts(at(1_000), None));
        assert!(filter.accepts(at(1_059), None));
        assert!(!filter.accepts(at(1_060), None));
        assert!(!filter.accepts(UNKNOWN, None), "no capture time");
        let just_after = SearchOptions::new(3).after(t + Duration::from_nanos(1));
        assert!(!just_after.image_filter().unwrap().accepts(at(1_000), None));
        let before_epoch = SearchOptions::new(3).before(UNIX_EPOCH - Duration::from_secs(5));
        assert!(before_epoch.image_filter().unwrap().accepts(at(-6), None));
        assert!(!before_epoch.image_filter().unwrap().accepts(at(-5), None));
    }

    #[test]
    fn camera_is_a_case_insensitive_substring_decided_once_per_camera() {
        let cameras = [
            (CameraId(0), "Apple iPhone 12"),
            (CameraId(1), "Canon EOS 5D"),
        ];
        let filter = |text| SearchOptions::new(3).camera(text).image_filter().unwrap();
        let matching = |text| filter(text).matching_cameras(cameras.into_iter());
        assert_eq!(matching("IPHONE"), Some(vec![CameraId(0)]));
        assert_eq!(matching("apple iphone 12"), Some(vec![CameraId(0)]));
        assert_eq!(matching("e"), Some(vec![CameraId(0), CameraId(1)]));
        assert_eq!(matching("pixel"), Some(vec![]));
        assert_eq!(
            SearchOptions::new(3)
                .after(UNIX_EPOCH)
                .image_filter()
                .unwrap()
                .matching_cameras(cameras.into_iter()),
            None
        );
        let iphone = filter("iphone");
        assert!(iphone.accepts(at(0), Some(&[CameraId(0)])));
        assert!(!iphone.accepts(at(0), Some(&[CameraId(1)])));
        assert!(!iphone.accepts(UNKNOWN, Some(&[CameraId(0)])), "no camera");
    }

    #[test]
    fn the_floor_drops_hits_and_date_order_is_newest_first_undated_last() {
        let hits = vec![
            (0.9, Some(10)),
            (0.8, None),
            (0.7, Some(30)),
            (0.6, Some(20)),
            (0.1, Some(99)),
        ];
        let taken = |h: &(f32, Option<i64>)| {
            h.1.map(|unix| Taken {
                unix,
                offset_minutes: None,
                source: xsearch_index::TakenSource::Exif,
            })
        };
        let options = SearchOptions::new(5).min_score(0.5).sort(Sort::Date);
        let sorted = options.finish(hits.clone(), |h| h.0, taken);
        assert_eq!(
            sorted,
            vec![
                (0.7, Some(30)),
                (0.6, Some(20)),
                (0.9, Some(10)),
                (0.8, None)
            ]
        );
        let by_score = SearchOptions::new(5)
            .min_score(0.75)
            .finish(hits, |h| h.0, taken);
        assert_eq!(by_score, vec![(0.9, Some(10)), (0.8, None)]);
    }
}
