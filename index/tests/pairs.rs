//! Similar pairs and the neighbours of a stored record, on the writer and on a reader, through
//! the exact path and through the graphs, against an all-pairs oracle.

use xsearch_index::{Entry, Id, Index, IndexOptions, IndexSpec, Pair, Reader};

const DIM: usize = 32;
const POINTS: usize = 400;
/// Points `PLANTED_FROM..` are near-duplicates of the point `NEAR_OFFSET` before them.
const PLANTED_FROM: usize = 380;
const NEAR_OFFSET: usize = 200;
const MIN_SCORE: f32 = 0.95;

/// Keys and their vectors.
type Points = Vec<(Vec<u8>, Vec<f32>)>;

fn spec() -> IndexSpec {
    IndexSpec {
        model: "pairs-test".into(),
        dim: DIM,
    }
}

/// splitmix64, for vectors that look random but are the same on every run.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn normalised(v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / norm).collect()
}

/// 380 random unit vectors, then 20 near-duplicates of points 180..200 (a small nudge), and
/// point 7's vector stored again under two more keys (copies of one file).
fn vectors() -> Points {
    let mut state = 11;
    let mut points: Vec<Vec<f32>> = (0..PLANTED_FROM)
        .map(|_| {
            normalised(
                (0..DIM)
                    .map(|_| (next(&mut state) >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
                    .collect(),
            )
        })
        .collect();
    for i in PLANTED_FROM..POINTS {
        let nudged = points[i - NEAR_OFFSET]
            .iter()
            .enumerate()
            .map(|(j, x)| x + if j == i % DIM { 0.15 } else { 0.0 })
            .collect();
        points.push(normalised(nudged));
    }
    let mut keyed: Points = points
        .into_iter()
        .enumerate()
        .map(|(i, v)| (format!("/p/{i:04}.jpg").into_bytes(), v))
        .collect();
    for copy in ["/p/copy-a.jpg", "/p/copy-b.jpg"] {
        keyed.push((copy.as_bytes().to_vec(), keyed[7].1.clone()));
    }
    keyed
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Every pair at `MIN_SCORE` or above, by key, scored in the test: the oracle.
fn oracle(points: &[(Vec<u8>, Vec<f32>)]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut pairs = Vec::new();
    for (i, (a, va)) in points.iter().enumerate() {
        for (b, vb) in &points[i + 1..] {
            if dot(va, vb) >= MIN_SCORE {
                pairs.push(ordered(a.clone(), b.clone()));
            }
        }
    }
    pairs.sort();
    pairs
}

fn ordered(a: Vec<u8>, b: Vec<u8>) -> (Vec<u8>, Vec<u8>) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

fn by_key(pairs: &[Pair], key_of: impl Fn(Id) -> Vec<u8>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut keyed: Vec<_> = pairs
        .iter()
        .map(|p| ordered(key_of(p.a), key_of(p.b)))
        .collect();
    keyed.sort();
    keyed
}

fn options(exact_threshold: usize) -> IndexOptions {
    IndexOptions {
        exact_threshold,
        // Several segments: pairs across segments must be found too.
        segment_points: 150,
        ..IndexOptions::default()
    }
}

fn build(dir: &std::path::Path, exact_threshold: usize) -> (Index, Points) {
    let points = vectors();
    let index = Index::open_with(dir, &spec(), options(exact_threshold)).unwrap();
    for batch in points.chunks(64) {
        let entries = batch
            .iter()
            .map(|(key, vector)| Entry {
                key: key.clone(),
                file: None,
                vector: vector.clone(),
                meta: None,
            })
            .collect();
        index.images().upsert_batch(entries).unwrap();
    }
    index.checkpoint().unwrap();
    (index, points)
}

#[test]
fn similar_pairs_match_the_oracle_exactly_and_through_the_graphs() {
    for exact_threshold in [5_000, 0] {
        let dir = tempfile::tempdir().unwrap();
        let (index, points) = build(dir.path(), exact_threshold);
        let expected = oracle(&points);
        // The 20 planted pairs and the three copies of point 7 (three pairs), at least.
        assert!(expected.len() >= 23, "{}", expected.len());
        assert!(expected.contains(&(b"/p/0007.jpg".to_vec(), b"/p/copy-a.jpg".to_vec())));
        assert!(expected.contains(&(b"/p/0180.jpg".to_vec(), b"/p/0380.jpg".to_vec())));

        let key_of = |id| {
            index
                .images()
                .iter()
                .map(Result::unwrap)
                .find(|(_, r)| r.id == id)
                .unwrap()
                .0
        };
        let written = index.images().similar_pairs(MIN_SCORE, None).unwrap();
        assert!(written.iter().all(|p| p.a < p.b && p.score >= MIN_SCORE));
        assert!(written
            .windows(2)
            .all(|w| (w[0].a, w[0].b) < (w[1].a, w[1].b)));
        assert_eq!(by_key(&written, key_of), expected, "{exact_threshold}");

        let reader = Reader::open_with(dir.path(), options(exact_threshold)).unwrap();
        let read = reader.images().similar_pairs(MIN_SCORE, None).unwrap();
        let reader_key = |id| {
            reader
                .images()
                .iter()
                .find(|(_, r)| r.id == id)
                .unwrap()
                .0
                .to_vec()
        };
        assert_eq!(by_key(&read, reader_key), expected, "{exact_threshold}");
        let scores = |pairs: &[Pair]| pairs.iter().map(|p| p.score).collect::<Vec<_>>();
        for (w, r) in scores(&written).iter().zip(scores(&read)) {
            assert!((w - r).abs() < 1e-5, "{w} {r}");
        }

        // A filter keeps both ends of every pair among the accepted records.
        let bound: &[u8] = b"/p/0190.jpg";
        let low: Vec<Id> = points
            .iter()
            .filter(|(key, _)| key.as_slice() < bound)
            .map(|(key, _)| index.images().get(key).unwrap().unwrap().id)
            .collect();
        let accept = |id: Id| low.contains(&id);
        let filtered = index
            .images()
            .similar_pairs(MIN_SCORE, Some(&accept))
            .unwrap();
        let expected_low: Vec<_> = expected
            .iter()
            .filter(|(a, b)| a.as_slice() < bound && b.as_slice() < bound)
            .cloned()
            .collect();
        assert_eq!(by_key(&filtered, key_of), expected_low, "{exact_threshold}");
    }
}

#[test]
fn neighbours_of_a_stored_record_leave_it_out_and_keep_its_copies() {
    for exact_threshold in [5_000, 0] {
        let dir = tempfile::tempdir().unwrap();
        let (index, points) = build(dir.path(), exact_threshold);
        let id_of = |key: &[u8]| index.images().get(key).unwrap().unwrap().id;
        let reader = Reader::open_with(dir.path(), options(exact_threshold)).unwrap();

        // The exact ranking of point 180's neighbours, by the test's own scores.
        let query = &points[180].1;
        let mut ranked: Vec<(f32, &[u8])> = points
            .iter()
            .filter(|(key, _)| key.as_slice() != b"/p/0180.jpg")
            .map(|(key, v)| (dot(query, v), key.as_slice()))
            .collect();
        ranked.sort_by(|x, y| y.0.total_cmp(&x.0));
        let top: Vec<&[u8]> = ranked.iter().take(3).map(|(_, k)| *k).collect();
        assert_eq!(top[0], b"/p/0380.jpg");

        let written = index.images().neighbours(id_of(b"/p/0180.jpg"), 3).unwrap();
        let read = reader
            .images()
            .neighbours(id_of(b"/p/0180.jpg"), 3)
            .unwrap();
        for hits in [&written, &read] {
            let keys: Vec<&[u8]> = hits.iter().map(|h| h.key.as_slice()).collect();
            assert_eq!(keys, top, "{exact_threshold}");
        }

        // Point 7 and its two copies share one vector: each finds the other two first.
        let hits = reader
            .images()
            .neighbours(id_of(b"/p/copy-a.jpg"), 2)
            .unwrap();
        let mut keys: Vec<&[u8]> = hits.iter().map(|h| h.key.as_slice()).collect();
        keys.sort();
        assert_eq!(keys, [&b"/p/0007.jpg"[..], b"/p/copy-b.jpg"]);
        assert!(hits.iter().all(|h| h.score > 0.9999));

        // A stored vector is the vector that was given; an unknown id has none.
        let id = id_of(b"/p/0042.jpg");
        assert_eq!(reader.images().vector(id).unwrap(), points[42].1.as_slice());
        assert!(reader.images().vector(u64::MAX).is_none());
        assert!(index.images().neighbours(u64::MAX, 3).unwrap().is_empty());
    }
}
