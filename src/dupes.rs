//! Duplicates: groups of byte-identical files (the content hash every record keeps) and of
//! near-duplicates (embeddings at least a threshold apart in cosine, found through the index's
//! graphs), each with a suggested keeper. Nothing here deletes or moves a file.
//!
//! The rules are on [`DupGroup`].

use std::cmp::{Ordering, Reverse};
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use xsearch_index::{Id, IdFilter, ImageMeta, Pair, Record, TakenSource};

use crate::keys::key_path;
use crate::{Error, ImageId};

/// The default cosine similarity at or above which two images are near-duplicates, chosen on
/// the near-duplicate set of `examples/dupes_threshold.rs` (see `BENCHMARKS.md`, "Duplicates":
/// measured with the shapes-tiny fixture model, as no other weights are reachable here).
pub const DEFAULT_THRESHOLD: f32 = 0.99;

/// Options of [`crate::Engine::duplicates`]: [`DupesOptions::default`] refined with setters;
/// `#[non_exhaustive]`, so options added later do not break callers.
///
/// ```
/// let options = xsearch::DupesOptions::default().threshold(0.97).within("/photos/2024");
/// assert_eq!(options.threshold, 0.97);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct DupesOptions {
    /// Cosine similarity at or above which two images are near-duplicates, in (0, 1].
    pub threshold: f32,
    /// Only images under this folder (both files of every pair).
    pub within: Option<PathBuf>,
}

impl Default for DupesOptions {
    fn default() -> Self {
        Self {
            threshold: DEFAULT_THRESHOLD,
            within: None,
        }
    }
}

impl DupesOptions {
    /// Near-duplicates at cosine `threshold` or above.
    pub fn threshold(mut self, threshold: f32) -> Self {
        self.threshold = threshold;
        self
    }

    /// Only images under `dir` (made absolute against the current directory).
    pub fn within(mut self, dir: impl Into<PathBuf>) -> Self {
        self.within = Some(dir.into());
        self
    }
}

/// How the files of a [`DupGroup`] are alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DupKind {
    /// Byte for byte the same.
    Exact,
    /// Embeddings at or above the threshold, every pair of the group.
    Near,
}

/// A group of duplicates, from [`crate::Engine::duplicates`].
///
/// How groups are made:
/// - **Exact** groups: files with the same content hash (BLAKE3 of the bytes), score 1.
/// - **Near** groups: built from the pairs at or above the threshold by complete linkage:
///   pairs are taken most similar first, and two groups join only when *every* pair across
///   them reaches the threshold. So a chain of small steps (A like B, B like C, A not like C)
///   never becomes one group, and a group's `score`, its lowest pairwise similarity (all its
///   pairs are scored exactly), is never under the threshold.
/// - A file of an exact group takes part in near groups only through that group's keeper:
///   its copies are reported once, in the exact group, and a near group names the keeper.
/// - The keeper: the most pixels, then the most metadata (an EXIF capture time, a camera, a
///   GPS position: one point each), then the oldest (its EXIF capture time, else its
///   modification time), then the largest file (the least compressed), then the shortest path,
///   then the path's order.
#[derive(Debug, Clone, PartialEq)]
pub struct DupGroup {
    /// Exact or near.
    pub kind: DupKind,
    /// The lowest cosine similarity between two files of the group (1 for exact groups).
    pub score: f32,
    /// The files, absolute, sorted.
    pub paths: Vec<PathBuf>,
    /// Their images' ids, in the order of `paths`.
    pub ids: Vec<ImageId>,
    /// The suggested keeper, one of `paths` (see above).
    pub keep: PathBuf,
    /// The keeper's id.
    pub keep_id: ImageId,
}

/// One indexed image, as the keeper rule and the grouping see it.
#[derive(Debug, Clone)]
pub(crate) struct Image {
    pub id: Id,
    pub path: PathBuf,
    pub record: Record,
    /// What the file says about itself (all unknown when not captured yet).
    pub meta: ImageMeta,
}

/// What finding duplicates needs of an index (the writer or a reader).
pub(crate) trait DupSource {
    /// Every live image.
    fn images(&self) -> Result<Vec<Image>, Error>;
    /// See [`xsearch_index::Collection::similar_pairs`].
    fn similar_pairs(
        &self,
        min_score: f32,
        accept: Option<IdFilter<'_>>,
    ) -> Result<Vec<Pair>, Error>;
    /// The embedding of a live image.
    fn vector(&self, id: Id) -> Result<Option<Vec<f32>>, Error>;
}

impl Image {
    pub(crate) fn new(key: &[u8], record: Record, meta: Option<ImageMeta>) -> Image {
        Image {
            id: record.id,
            path: key_path(key),
            record,
            meta: meta.unwrap_or_default(),
        }
    }

    /// The keeper order (see [`DupGroup`]): the best keeper first.
    fn keeper_order(&self, other: &Image) -> Ordering {
        let rank = |image: &Image| {
            let meta = &image.meta;
            let (size, mtime_ns) = image
                .record
                .file
                .as_ref()
                .map_or((0, i64::MAX), |f| (f.size, f.mtime_ns));
            let exif_taken = meta.taken.filter(|t| t.source == TakenSource::Exif);
            let described = usize::from(exif_taken.is_some())
                + usize::from(meta.camera.is_some())
                + usize::from(meta.gps.is_some());
            // Capture time when the file says it; a file that does not is as old as its
            // modification time.
            let taken_ns = exif_taken.map_or(mtime_ns, |t| t.unix.saturating_mul(1_000_000_000));
            (
                Reverse(u64::from(meta.width) * u64::from(meta.height)),
                Reverse(described),
                taken_ns,
                mtime_ns,
                Reverse(size),
                image.path.as_os_str().len(),
                image.path.clone(),
            )
        };
        rank(self).cmp(&rank(other))
    }
}

/// The duplicates among `source`'s images, as [`crate::Engine::duplicates`] describes.
pub(crate) fn find(source: &dyn DupSource, options: &DupesOptions) -> Result<Vec<DupGroup>, Error> {
    let threshold = options.threshold;
    if !(threshold > 0.0 && threshold <= 1.0) {
        return Err(Error::BadThreshold { threshold });
    }
    let within = options
        .within
        .as_ref()
        .map(|dir| std::path::absolute(dir).unwrap_or_else(|_| dir.clone()));
    let images: Vec<Image> = source
        .images()?
        .into_iter()
        .filter(|image| {
            within
                .as_deref()
                .is_none_or(|dir| image.path.starts_with(dir))
        })
        .collect();

    let mut groups = exact_groups(&images);
    // Near-duplicates are looked for among one file per content: the exact groups' keepers
    // and the files without a copy.
    let copies: HashSet<Id> = groups
        .iter()
        .flat_map(|group| group.members[1..].iter().map(|image| image.id))
        .collect();
    let candidates: HashSet<Id> = images
        .iter()
        .map(|image| image.id)
        .filter(|id| !copies.contains(id))
        .collect();
    let accept = |id: Id| candidates.contains(&id);
    let pairs = source.similar_pairs(threshold, Some(&accept))?;
    let by_id: HashMap<Id, &Image> = images.iter().map(|image| (image.id, image)).collect();
    groups.extend(near_groups(source, &pairs, threshold, &by_id)?);

    let mut found: Vec<DupGroup> = groups.into_iter().map(Group::into_public).collect();
    found.sort_by(|x, y| {
        y.paths
            .len()
            .cmp(&x.paths.len())
            .then(y.score.total_cmp(&x.score))
            .then_with(|| x.paths.cmp(&y.paths))
    });
    Ok(found)
}

/// A group being built: its members, the keeper first.
struct Group<'a> {
    kind: DupKind,
    score: f32,
    members: Vec<&'a Image>,
}

impl Group<'_> {
    fn new(kind: DupKind, score: f32, mut members: Vec<&Image>) -> Group<'_> {
        members.sort_by(|x, y| x.keeper_order(y));
        Group {
            kind,
            score,
            members,
        }
    }

    fn into_public(self) -> DupGroup {
        let keeper = self.members[0];
        let mut members = self.members;
        members.sort_by(|x, y| x.path.cmp(&y.path));
        DupGroup {
            kind: self.kind,
            score: self.score,
            paths: members.iter().map(|m| m.path.clone()).collect(),
            ids: members.iter().map(|m| ImageId(m.id)).collect(),
            keep: keeper.path.clone(),
            keep_id: ImageId(keeper.id),
        }
    }
}

/// Files sharing a content hash.
fn exact_groups(images: &[Image]) -> Vec<Group<'_>> {
    let mut by_hash: HashMap<&[u8], Vec<&Image>> = HashMap::new();
    for image in images {
        // An empty hash is no content hash (a record without a file's stamp).
        if let Some(file) = image.record.file.as_ref().filter(|f| !f.hash.is_empty()) {
            by_hash.entry(&file.hash).or_default().push(image);
        }
    }
    by_hash
        .into_values()
        .filter(|members| members.len() > 1)
        .map(|members| Group::new(DupKind::Exact, 1.0, members))
        .collect()
}

/// Complete linkage over `pairs` (see the module's rules): the groups of two or more whose
/// every pair is at or above `threshold`.
fn near_groups<'a>(
    source: &dyn DupSource,
    pairs: &[Pair],
    threshold: f32,
    images: &HashMap<Id, &'a Image>,
) -> Result<Vec<Group<'a>>, Error> {
    let mut vectors: HashMap<Id, Vec<f32>> = HashMap::new();
    for pair in pairs {
        for id in [pair.a, pair.b] {
            if let Entry::Vacant(slot) = vectors.entry(id) {
                if let Some(vector) = source.vector(id)? {
                    slot.insert(vector);
                }
            }
        }
    }
    let mut edges: Vec<&Pair> = pairs
        .iter()
        .filter(|p| vectors.contains_key(&p.a) && vectors.contains_key(&p.b))
        .collect();
    edges.sort_by(|x, y| {
        y.score
            .total_cmp(&x.score)
            .then((x.a, x.b).cmp(&(y.a, y.b)))
    });

    // Each id's cluster; each cluster's members and lowest pairwise similarity so far.
    let mut cluster_of: HashMap<Id, usize> = HashMap::new();
    let mut clusters: Vec<(Vec<Id>, f32)> = Vec::new();
    for edge in edges {
        let a = *cluster_of.entry(edge.a).or_insert_with(|| {
            clusters.push((vec![edge.a], 1.0));
            clusters.len() - 1
        });
        let b = *cluster_of.entry(edge.b).or_insert_with(|| {
            clusters.push((vec![edge.b], 1.0));
            clusters.len() - 1
        });
        if a == b {
            continue;
        }
        let mut lowest = clusters[a].1.min(clusters[b].1);
        let joins = clusters[a].0.iter().all(|x| {
            clusters[b].0.iter().all(|y| {
                let score = cosine(&vectors[x], &vectors[y]);
                lowest = lowest.min(score);
                score >= threshold
            })
        });
        if joins {
            let (keep, gone) = (a.min(b), a.max(b));
            let moved = std::mem::take(&mut clusters[gone].0);
            for id in &moved {
                cluster_of.insert(*id, keep);
            }
            clusters[keep].0.extend(moved);
            clusters[keep].1 = lowest;
        }
    }
    Ok(clusters
        .into_iter()
        .filter(|(members, _)| members.len() > 1)
        .map(|(members, score)| {
            let members = members.iter().map(|id| images[id]).collect();
            Group::new(DupKind::Near, score, members)
        })
        .collect())
}

/// The dot product of two embeddings (both L2-normalised: their cosine), capped at 1 so that
/// rounding never reports more than identical.
fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>().min(1.0)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use xsearch_index::FileStamp;

    use super::*;

    /// Images with hand-made 2-d embeddings; pairs are scored exactly, as the index does for
    /// small collections.
    struct Fake(Vec<(Image, Vec<f32>)>);

    impl Fake {
        fn new(items: &[(&str, u64, i64, &str, f32)]) -> Fake {
            Fake(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, &(path, size, mtime_ns, hash, degrees))| {
                        let record = Record {
                            id: i as Id,
                            file: Some(FileStamp {
                                size,
                                mtime_ns,
                                hash: hash.as_bytes().to_vec(),
                            }),
                        };
                        let angle = degrees.to_radians();
                        let image = Image::new(path.as_bytes(), record, None);
                        (image, vec![angle.cos(), angle.sin()])
                    })
                    .collect(),
            )
        }
    }

    impl DupSource for Fake {
        fn images(&self) -> Result<Vec<Image>, Error> {
            Ok(self.0.iter().map(|(image, _)| image.clone()).collect())
        }

        fn similar_pairs(
            &self,
            min_score: f32,
            accept: Option<IdFilter<'_>>,
        ) -> Result<Vec<Pair>, Error> {
            let accepted = |id| accept.is_none_or(|accept| accept(id));
            let mut pairs = Vec::new();
            for (i, (a, va)) in self.0.iter().enumerate() {
                for (b, vb) in &self.0[i + 1..] {
                    let score = cosine(va, vb);
                    if accepted(a.id) && accepted(b.id) && score >= min_score {
                        pairs.push(Pair::new(a.id, b.id, score));
                    }
                }
            }
            Ok(pairs)
        }

        fn vector(&self, id: Id) -> Result<Option<Vec<f32>>, Error> {
            Ok(self.0.get(id as usize).map(|(_, v)| v.clone()))
        }
    }

    fn paths(group: &DupGroup) -> Vec<&str> {
        group.paths.iter().map(|p| p.to_str().unwrap()).collect()
    }

    #[test]
    fn a_chain_of_small_steps_is_split_and_the_score_is_the_lowest_pair() {
        // cos 10 degrees = 0.9848, cos 20 degrees = 0.9397: a-b and b-c pass 0.95, a-c not.
        let fake = Fake::new(&[
            ("/p/a.jpg", 10, 0, "a", 0.0),
            ("/p/b.jpg", 10, 0, "b", 10.0),
            ("/p/c.jpg", 10, 0, "c", 20.0),
            ("/p/far.jpg", 10, 0, "far", 90.0),
        ]);
        let groups = find(&fake, &DupesOptions::default().threshold(0.95)).unwrap();
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].kind, DupKind::Near);
        assert_eq!(paths(&groups[0]), ["/p/a.jpg", "/p/b.jpg"]);
        assert!((groups[0].score - 10f32.to_radians().cos()).abs() < 1e-6);

        // Lower, the chain is one group whose score is its weakest pair, a to c.
        let groups = find(&fake, &DupesOptions::default().threshold(0.9)).unwrap();
        assert_eq!(paths(&groups[0]), ["/p/a.jpg", "/p/b.jpg", "/p/c.jpg"]);
        assert!((groups[0].score - 20f32.to_radians().cos()).abs() < 1e-6);
    }

    #[test]
    fn copies_form_an_exact_group_and_only_its_keeper_joins_a_near_group() {
        let mut fake = Fake::new(&[
            // Three copies of one file: alike in all but age and name, so the oldest, then
            // the shortest path.
            ("/p/copies/long-name.jpg", 500, 100, "same", 0.0),
            ("/p/copies/old.jpg", 500, 50, "same", 0.0),
            ("/p/copies/x.jpg", 500, 100, "same", 0.0),
            // A half-size re-encode of it, and an unrelated image.
            ("/p/small.jpg", 200, 10, "small", 3.0),
            ("/p/other.jpg", 900, 10, "other", 60.0),
        ]);
        for (image, _) in &mut fake.0 {
            let half = image.path.ends_with("small.jpg");
            (image.meta.width, image.meta.height) = if half { (200, 150) } else { (400, 300) };
        }
        let groups = find(&fake, &DupesOptions::default()).unwrap();
        assert_eq!(groups.len(), 2, "{groups:?}");
        assert_eq!(groups[0].kind, DupKind::Exact);
        assert_eq!(groups[0].score, 1.0);
        assert_eq!(
            paths(&groups[0]),
            [
                "/p/copies/long-name.jpg",
                "/p/copies/old.jpg",
                "/p/copies/x.jpg"
            ]
        );
        assert_eq!(groups[0].keep, Path::new("/p/copies/old.jpg"));
        // The ids in the order of the paths (the fake's ids are the items' places).
        assert_eq!(groups[0].ids, [ImageId(0), ImageId(1), ImageId(2)]);
        assert_eq!(groups[0].keep_id, ImageId(1));
        assert_eq!(groups[1].kind, DupKind::Near);
        assert_eq!(paths(&groups[1]), ["/p/copies/old.jpg", "/p/small.jpg"]);
        assert_eq!(groups[1].ids, [ImageId(1), ImageId(3)]);
        // The one with more pixels is kept, though the smaller is older.
        assert_eq!(groups[1].keep, Path::new("/p/copies/old.jpg"));
        assert_eq!(groups[1].keep_id, ImageId(1));

        // Among equals in size and age, the shorter path is kept.
        let copies = Fake::new(&[
            ("/p/long-name.jpg", 500, 100, "same", 0.0),
            ("/p/x.jpg", 500, 100, "same", 0.0),
        ]);
        let groups = find(&copies, &DupesOptions::default()).unwrap();
        assert_eq!(groups[0].keep, Path::new("/p/x.jpg"));
    }

    #[test]
    fn the_keeper_has_the_most_pixels_then_metadata_then_age() {
        let taken = |unix| {
            Some(xsearch_index::Taken {
                unix,
                offset_minutes: None,
                source: TakenSource::Exif,
            })
        };
        let keeper = |metas: [ImageMeta; 2]| {
            // b is the larger and older file, so only metadata can make a keep.
            let mut fake = Fake::new(&[
                ("/p/a.jpg", 100, 2_000_000_000_000_000_000, "a", 0.0),
                ("/p/b.jpg", 900, 1_000_000_000_000_000_000, "b", 0.5),
            ]);
            for ((image, _), meta) in fake.0.iter_mut().zip(metas) {
                image.meta = meta;
            }
            let groups = find(&fake, &DupesOptions::default()).unwrap();
            assert_eq!(groups.len(), 1);
            groups[0].keep.display().to_string()
        };
        let sized = |width, height| ImageMeta {
            width,
            height,
            ..ImageMeta::default()
        };
        // Without metadata: the older file.
        assert_eq!(
            keeper([ImageMeta::default(), ImageMeta::default()]),
            "/p/b.jpg"
        );
        // More pixels first.
        assert_eq!(keeper([sized(4000, 3000), sized(2000, 1500)]), "/p/a.jpg");
        // Then more metadata: a camera.
        let camera = ImageMeta {
            camera: Some("Apple iPhone 12".into()),
            ..sized(2000, 1500)
        };
        assert_eq!(keeper([camera.clone(), sized(2000, 1500)]), "/p/a.jpg");
        // Then the earlier capture time, whatever the modification times say.
        let shot = |unix| ImageMeta {
            taken: taken(unix),
            ..camera.clone()
        };
        assert_eq!(
            keeper([shot(1_500_000_000), shot(1_600_000_000)]),
            "/p/a.jpg"
        );
        // Same capture time: the older file, then the larger (it is both here).
        assert_eq!(
            keeper([shot(1_500_000_000), shot(1_500_000_000)]),
            "/p/b.jpg"
        );
    }

    #[test]
    fn groups_sort_by_size_then_score_then_first_path_and_within_filters_both_ends() {
        let fake = Fake::new(&[
            ("/q/a.jpg", 1, 0, "1", 0.0),
            ("/q/b.jpg", 1, 0, "2", 1.0),
            ("/q/c.jpg", 1, 0, "3", 2.0),
            ("/p/d.jpg", 1, 0, "4", 40.0),
            ("/p/e.jpg", 1, 0, "5", 41.0),
            ("/p/f.jpg", 1, 0, "6", 80.0),
            ("/q/g.jpg", 1, 0, "7", 80.5),
        ]);
        let groups = find(&fake, &DupesOptions::default()).unwrap();
        let all: Vec<Vec<&str>> = groups.iter().map(paths).collect();
        assert_eq!(
            all,
            [
                vec!["/q/a.jpg", "/q/b.jpg", "/q/c.jpg"],
                // cos 0.5 degrees beats cos 1 degree.
                vec!["/p/f.jpg", "/q/g.jpg"],
                vec!["/p/d.jpg", "/p/e.jpg"],
            ]
        );
        let within = find(&fake, &DupesOptions::default().within("/p")).unwrap();
        let all: Vec<Vec<&str>> = within.iter().map(paths).collect();
        assert_eq!(all, [vec!["/p/d.jpg", "/p/e.jpg"]]);
    }

    #[test]
    fn a_threshold_outside_zero_to_one_is_refused() {
        let fake = Fake::new(&[]);
        for threshold in [0.0, -0.5, 1.01, f32::NAN] {
            let err = find(&fake, &DupesOptions::default().threshold(threshold)).unwrap_err();
            assert!(matches!(err, Error::BadThreshold { .. }), "{err}");
        }
        assert!(find(&fake, &DupesOptions::default().threshold(1.0))
            .unwrap()
            .is_empty());
    }
}
