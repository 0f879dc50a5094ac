//! What the read view costs: the time a checkpoint spends publishing it, its size, and the
//! time a reader takes to open it, for N records with paths and content hashes like a photo
//! library's, each with image metadata (capture time, camera, size, position) unless
//! `--no-meta` is given.
//!
//! `cargo run --release -p xsearch-index --example view_cost -- 100000 [--no-meta]`

use std::time::Instant;

use xsearch_index::{
    Entry, FileStamp, HnswParams, ImageMeta, Index, IndexOptions, IndexSpec, Reader, Taken,
    TakenSource,
};

const DIM: usize = 32;

fn main() -> Result<(), xsearch_index::IndexError> {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(100_000, |a| a.parse().expect("a number of records"));
    let with_meta = !std::env::args().any(|a| a == "--no-meta");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let spec = IndexSpec {
        model: "view-cost".into(),
        dim: DIM,
    };
    // Cheap graphs: the view's cost depends on the records, not on the graph.
    let options = IndexOptions {
        hnsw: HnswParams {
            max_connections: 8,
            ef_construction: 32,
        },
        ..IndexOptions::default()
    };
    let index = Index::open_with(dir.path(), &spec, options)?;
    for start in (0..n).step_by(10_000) {
        let batch = (start..(start + 10_000).min(n))
            .map(|i| Entry {
                key: format!(
                    "/home/someone/Pictures/2024/holiday-{:03}/IMG_{i:06}.jpg",
                    i % 997
                )
                .into_bytes(),
                file: Some(FileStamp {
                    size: 3_000_000 + i as u64,
                    mtime_ns: 1_700_000_000_000_000_000 + i as i64,
                    hash: (0..32).map(|j| (i * 31 + j) as u8).collect(),
                }),
                vector: (0..DIM)
                    .map(|j| ((i * 7 + j * 13) as f32 * 0.61).sin())
                    .collect(),
                meta: with_meta.then(|| ImageMeta {
                    taken: Some(Taken {
                        unix: 1_600_000_000 + i as i64 * 600,
                        offset_minutes: Some(120),
                        source: TakenSource::Exif,
                    }),
                    camera: Some(["Apple iPhone 12", "Canon EOS 5D", "NIKON D750"][i % 3].into()),
                    width: 4032,
                    height: 3024,
                    gps: Some((48.85 + i as f64 * 1e-5, 2.29)),
                }),
            })
            .collect();
        index.images().upsert_batch(batch)?;
    }
    index.checkpoint()?;
    // A checkpoint after one more record: a one-point seal, and the publish.
    index.texts().upsert_batch(vec![Entry {
        key: b"one more".to_vec(),
        file: None,
        vector: vec![0.5; DIM],
        meta: None,
    }])?;
    let started = Instant::now();
    index.checkpoint()?;
    let publish = started.elapsed();
    // With nothing new, the view is current and nothing is written.
    let started = Instant::now();
    index.checkpoint()?;
    let idle = started.elapsed();
    let size = std::fs::metadata(dir.path().join("view")).map_or(0, |m| m.len());
    let started = Instant::now();
    let reader = Reader::open(dir.path())?;
    let open = started.elapsed();
    assert_eq!(reader.images().len(), n);
    assert_eq!(
        reader.images().meta_table().len(),
        if with_meta { n } else { 0 }
    );
    println!(
        "{n} records (metadata: {with_meta}): checkpoint after one record (seal + publish) {:.0} ms, with nothing new {:.1} ms, view {:.1} MB, reader open {:.0} ms",
        publish.as_secs_f64() * 1e3,
        idle.as_secs_f64() * 1e3,
        size as f64 / 1e6,
        open.as_secs_f64() * 1e3
    );
    Ok(())
}
