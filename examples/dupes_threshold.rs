//! Chooses `xsearch dupes`'s default threshold by measurement: writes a near-duplicate set
//! (`xsearch_shapes::dupes`: base shots, their re-encodes, resizes, crops, brightness
//! changes, logo and 3-degree rotation, and distinct shots of the same scenes), indexes it with
//! the given model, runs `Engine::duplicates` at several thresholds, and prints, as Markdown,
//! the pairwise precision and recall of each, the recall of each kind of edit, and the
//! cosine of each kind of pair.
//!
//!     cargo run --example dupes_threshold -- [MODEL] [BASES] [SHOTS]
//!
//! MODEL defaults to `fixtures/models/shapes-tiny`; any model directory (or hub id) works, so
//! whoever has the real RN50 weights can rerun it. BASES (default 40) scenes, each with 12
//! files of the base shot and SHOTS (default 2) distinct shots.
//!
//! A pair of files is a true duplicate when both come from the same shot. Precision: of the
//! pairs inside the groups found, the share that are true; recall: of the true pairs, the
//! share found inside one group.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use xsearch::{DupesOptions, Engine, EngineOptions, OpenMode};
use xsearch_shapes::dupes::{write_set, DupFile, Variant};

const THRESHOLDS: [f32; 10] = [0.80, 0.85, 0.90, 0.93, 0.95, 0.96, 0.97, 0.98, 0.99, 0.995];
const SEED: u64 = 16;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model = args.first().cloned().unwrap_or_else(|| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/models/shapes-tiny").to_string()
    });
    let bases: u64 = args.get(1).map_or(Ok(40), |a| a.parse())?;
    let shots: u64 = args.get(2).map_or(Ok(2), |a| a.parse())?;

    let dir = tempfile::tempdir()?;
    let photos = std::path::absolute(dir.path().join("photos"))?;
    let files = write_set(&photos, bases, shots, SEED)?;
    let options = EngineOptions::new(&model)
        .index(dir.path().join("index"))
        .mode(OpenMode::Create);
    let engine = Engine::open(&options, None)?;
    let summary = engine.ingest(std::slice::from_ref(&photos), &())?;
    let by_path: HashMap<PathBuf, &DupFile> =
        files.iter().map(|f| (photos.join(&f.file), f)).collect();
    let all: Vec<&DupFile> = files.iter().collect();
    let true_pairs = pairs(&all).filter(|(a, b)| a.same_photo(b)).count();
    println!(
        "model `{model}`, {} files ({bases} scenes x (12 files of the base shot + {shots} distinct \
         shots)), {} indexed, {true_pairs} true pairs\n",
        files.len(),
        summary.added
    );

    println!("| threshold | groups | pairs found | true | precision | recall |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut edit_recall = Vec::new();
    for threshold in THRESHOLDS {
        let groups = engine.duplicates(&DupesOptions::default().threshold(threshold))?;
        let (mut found, mut right) = (0, 0);
        // Which files share a group with their base shot's original.
        let mut with_original: HashSet<(u64, Variant)> = HashSet::new();
        for group in &groups {
            let members: Vec<&DupFile> = group.paths.iter().map(|p| by_path[p]).collect();
            for (a, b) in pairs(&members) {
                found += 1;
                right += usize::from(a.same_photo(b));
                for (x, y) in [(a, b), (b, a)] {
                    if x.shot == 0 && y.variant == Variant::Original && y.same_photo(x) {
                        with_original.insert((x.base, x.variant));
                    }
                }
            }
        }
        println!(
            "| {threshold} | {} | {found} | {right} | {} | {:.3} |",
            groups.len(),
            if found == 0 {
                "-".to_string()
            } else {
                format!("{:.3}", right as f64 / found as f64)
            },
            right as f64 / true_pairs as f64
        );
        edit_recall.push((threshold, with_original));
    }

    println!("\nRecall of each edit (the edited file grouped with its original), by threshold:\n");
    print!("| edit |");
    THRESHOLDS.iter().for_each(|t| print!(" {t} |"));
    print!("\n| --- |");
    THRESHOLDS.iter().for_each(|_| print!(" ---: |"));
    println!();
    for edit in Variant::EDITS {
        print!("| {edit} |");
        for (_, with_original) in &edit_recall {
            let hits = (0..bases)
                .filter(|&base| with_original.contains(&(base, edit)))
                .count();
            print!(" {:.2} |", hits as f64 / bases as f64);
        }
        println!();
    }

    cosines(&engine, &photos, &files)?;
    Ok(())
}

/// The cosine of each edit with its original, and of distinct shots with the base original
/// and with other scenes' originals: where a threshold can fall.
fn cosines(
    engine: &Engine,
    photos: &Path,
    files: &[DupFile],
) -> Result<(), Box<dyn std::error::Error>> {
    let paths: Vec<PathBuf> = files.iter().map(|f| photos.join(&f.file)).collect();
    let embeddings = engine.embed_files(&paths)?;
    let mut vectors = HashMap::new();
    for (file, embedding) in files.iter().zip(embeddings) {
        vectors.insert((file.base, file.shot, file.variant), embedding?);
    }
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    let bases: Vec<u64> = files
        .iter()
        .filter(|f| f.shot == 0 && f.variant == Variant::Original)
        .map(|f| f.base)
        .collect();
    let mut rows: Vec<(String, Vec<f32>)> = Vec::new();
    for edit in Variant::EDITS {
        let scores = bases
            .iter()
            .filter_map(|&b| {
                let original = vectors.get(&(b, 0, Variant::Original))?;
                Some(dot(original, vectors.get(&(b, 0, edit))?))
            })
            .collect();
        rows.push((format!("{edit} vs its original"), scores));
    }
    let shots: Vec<&DupFile> = files.iter().filter(|f| f.shot > 0).collect();
    rows.push((
        "distinct shot vs the base shot".into(),
        shots
            .iter()
            .map(|f| {
                dot(
                    &vectors[&(f.base, f.shot, Variant::Original)],
                    &vectors[&(f.base, 0, Variant::Original)],
                )
            })
            .collect(),
    ));
    let originals: Vec<&DupFile> = files
        .iter()
        .filter(|f| f.variant == Variant::Original)
        .collect();
    rows.push((
        "originals of different scenes".into(),
        pairs(&originals)
            .filter(|(a, b)| a.base != b.base)
            .map(|(a, b)| {
                dot(
                    &vectors[&(a.base, a.shot, a.variant)],
                    &vectors[&(b.base, b.shot, b.variant)],
                )
            })
            .collect(),
    ));
    println!("\nCosine similarity of pairs (min / median / max):\n");
    println!("| pair | n | min | median | max |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (name, mut scores) in rows {
        scores.sort_by(f32::total_cmp);
        let n = scores.len();
        println!(
            "| {name} | {n} | {:.4} | {:.4} | {:.4} |",
            scores[0],
            scores[n / 2],
            scores[n - 1]
        );
    }
    Ok(())
}

/// Every pair of `items`, each once.
fn pairs<T: Copy>(items: &[T]) -> impl Iterator<Item = (T, T)> + '_ {
    items
        .iter()
        .enumerate()
        .flat_map(move |(i, &a)| items[i + 1..].iter().map(move |&b| (a, b)))
}
