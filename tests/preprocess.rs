//! Pillow / open_clip parity of `Preprocessor` on the generated cases in `fixtures/preprocess`
//! (made by `fixtures/preprocess/make_cases.py`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use image::DynamicImage;
use serde::Deserialize;
use xsearch::decode::{decode_file, DecodeLimits};
use xsearch::model::preprocess::Preprocessor;

const OPENAI_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
const OPENAI_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

#[derive(Deserialize)]
struct Manifest {
    sizes: Vec<usize>,
    cases: Vec<Case>,
    tensor: TensorCase,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    mode: String,
    width: u32,
    height: u32,
    file: String,
    crops: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct TensorCase {
    case: String,
    size: usize,
    file: String,
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/preprocess")
}

fn manifest() -> Manifest {
    let text = std::fs::read_to_string(dir().join("cases.json")).expect("read cases.json");
    serde_json::from_str(&text).expect("parse cases.json")
}

fn load(file: &str) -> DynamicImage {
    decode_file(&dir().join(file), &DecodeLimits::default()).expect("decode fixture")
}

/// Describe how two equally long byte buffers differ, or `None` if they are equal.
fn diff(actual: &[u8], expected: &[u8], width: usize) -> Option<String> {
    let differing: Vec<usize> = (0..expected.len())
        .filter(|&i| actual[i] != expected[i])
        .collect();
    let &first = differing.first()?;
    let max = differing
        .iter()
        .map(|&i| actual[i].abs_diff(expected[i]))
        .max()
        .unwrap_or(0);
    Some(format!(
        "{} of {} bytes differ (max {max}); first at x={} y={} channel {}: {} instead of {}",
        differing.len(),
        expected.len(),
        first / 3 % width,
        first / 3 / width,
        first % 3,
        actual[first],
        expected[first],
    ))
}

#[test]
fn resize_crop_matches_pillow_on_every_case() {
    let manifest = manifest();
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in &manifest.cases {
        let image = load(&case.file);
        assert_eq!((image.width(), image.height()), (case.width, case.height));
        let expected_kind = match case.mode.as_str() {
            "L" => image::ColorType::L8,
            "LA" => image::ColorType::La8,
            "RGB" => image::ColorType::Rgb8,
            "RGBA" => image::ColorType::Rgba8,
            other => panic!("{}: unexpected mode {other}", case.name),
        };
        assert_eq!(image.color(), expected_kind, "{}", case.name);
        for &size in &manifest.sizes {
            let crop_file = &case.crops[&size.to_string()];
            // Grey crops are stored as one channel; `to_rgb8` replicates it like `convert("RGB")`.
            let expected = load(crop_file).to_rgb8();
            let actual = Preprocessor::new(size, OPENAI_MEAN, OPENAI_STD).resize_crop(&image);
            assert_eq!(actual.dimensions(), (size as u32, size as u32));
            checked += 1;
            if let Some(why) = diff(actual.as_raw(), expected.as_raw(), size) {
                failures.push(format!("{} at {size}: {why}", case.name));
            }
        }
    }
    assert!(checked >= 50, "only {checked} crops checked");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn pixels_match_open_clip_tensor_bit_for_bit() {
    let manifest = manifest();
    let case = &manifest.tensor;
    let image = load(&format!("{}.png", case.case));
    let bytes = std::fs::read(dir().join(&case.file)).expect("read tensor");
    let expected: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let pre = Preprocessor::new(case.size, OPENAI_MEAN, OPENAI_STD);
    let actual = pre.pixels(&image);
    assert_eq!(actual.len(), expected.len());
    let mismatches = actual
        .iter()
        .zip(&expected)
        .filter(|(a, e)| a.to_bits() != e.to_bits())
        .count();
    assert_eq!(mismatches, 0, "values differing from torch's tensor");
}

#[test]
fn write_batch_lays_images_out_nchw() {
    let manifest = manifest();
    let images: Vec<DynamicImage> = manifest.cases[..5].iter().map(|c| load(&c.file)).collect();
    let pre = Preprocessor::new(64, OPENAI_MEAN, OPENAI_STD);
    let mut batch = vec![f32::NAN; images.len() * pre.pixel_len()];
    pre.write_batch(&images, &mut batch);
    for (image, slot) in images.iter().zip(batch.chunks_exact(pre.pixel_len())) {
        assert_eq!(pre.pixels(image), slot);
    }
}
