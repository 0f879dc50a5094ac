//! Parity with open_clip (references made by `fixtures/parity/make_parity.py`): the small
//! RN50-family model in F32 and F16, and the full-size RN50 with the shared weight scheme.

mod common;

use std::path::Path;

use candle_core::{Device, Tensor};
use common::{cosine, f32s, fixture, read_json, u32s};
use xsearch::kernels::Isa;
use xsearch::model::resnet::ImageTower;
use xsearch::model::text::TextTower;
use xsearch::model::tokenizer::Tokenizer;
use xsearch::model::weights::{Checkpoint, TensorLoader};
use xsearch::model::{verify_checkpoint, ImageEncoder, ModelFiles, TextEncoder};

/// Each text, alone and all in one batch (padded to the longest), against the reference.
fn assert_text_parity(files: &ModelFiles, reference: &serde_json::Value, min_cosine: f64) {
    let encoder = TextEncoder::load(files).unwrap();
    assert_tokens_parity(reference, min_cosine, |batch| {
        encoder.embed_tokens(batch).unwrap()
    });
}

/// Each text's token ids through `embed`, alone and all in one batch, against the reference.
fn assert_tokens_parity(
    reference: &serde_json::Value,
    min_cosine: f64,
    embed: impl Fn(&[Vec<u32>]) -> Tensor,
) {
    let texts = reference["texts"].as_array().unwrap();
    let batch: Vec<Vec<u32>> = texts.iter().map(|t| u32s(&t["token_ids"])).collect();
    let together = embed(&batch).to_vec2::<f32>().unwrap();
    for (i, text) in texts.iter().enumerate() {
        let want = f32s(&text["embedding"]);
        let alone = embed(&batch[i..i + 1]).to_vec2::<f32>().unwrap();
        for (how, got) in [("alone", &alone[0]), ("batched", &together[i])] {
            let c = cosine(got, &want);
            assert!(c >= min_cosine, "{:?} {how}: cosine {c}", text["text"]);
        }
    }
}

/// The Pillow crop (RGB, model size) as open_clip's ToTensor + Normalize would give it.
fn normalised_crop(path: &Path, mean: [f32; 3], std: [f32; 3]) -> Tensor {
    let img = image::open(path).unwrap().to_rgb8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut chw = vec![0f32; 3 * w * h];
    for (x, y, px) in img.enumerate_pixels() {
        for c in 0..3 {
            let v = px.0[c] as f32 / 255.0;
            chw[c * w * h + y as usize * w + x as usize] = (v - mean[c]) / std[c];
        }
    }
    Tensor::from_vec(chw, (1, 3, h, w), &Device::Cpu).unwrap()
}

/// Every image's reference crop through `embed`, as one batch.
fn assert_embed_parity(
    files: &ModelFiles,
    reference: &serde_json::Value,
    min_cosine: f64,
    embed: impl Fn(&Tensor) -> Tensor,
) {
    let pre = &files.config.preprocess_cfg;
    let images = reference["images"].as_array().unwrap();
    let crops: Vec<Tensor> = images
        .iter()
        .map(|im| normalised_crop(&fixture(im["crop"].as_str().unwrap()), pre.mean, pre.std))
        .collect();
    let got = embed(&Tensor::cat(&crops, 0).unwrap())
        .to_vec2::<f32>()
        .unwrap();
    for (im, row) in images.iter().zip(&got) {
        let c = cosine(row, &f32s(&im["embedding"]));
        assert!(c >= min_cosine, "{}: cosine {c}", im["file"]);
    }
}

/// Every image's reference crop through the image encoder, as one batch.
fn assert_image_parity(files: &ModelFiles, reference: &serde_json::Value, min_cosine: f64) {
    let encoder = ImageEncoder::load(files).unwrap();
    assert_embed_parity(files, reference, min_cosine, |pixels| {
        encoder.embed(pixels).unwrap()
    });
}

#[test]
fn small_model_text_matches_open_clip() {
    let files = ModelFiles::from_dir(&fixture("model")).unwrap();
    assert_text_parity(&files, &read_json(&fixture("reference.json")), 0.99999);
}

#[test]
fn small_model_texts_through_the_tokenizer_match_open_clip() {
    let files = ModelFiles::from_dir(&fixture("model")).unwrap();
    let encoder = TextEncoder::load(&files).unwrap();
    let reference = read_json(&fixture("reference.json"));
    let entries = reference["texts"].as_array().unwrap();
    let texts: Vec<&str> = entries
        .iter()
        .map(|t| t["text"].as_str().unwrap())
        .collect();
    let got = encoder.embed(&texts).unwrap().to_vec2::<f32>().unwrap();
    for (entry, row) in entries.iter().zip(&got) {
        let c = cosine(row, &f32s(&entry["embedding"]));
        assert!(c >= 0.99999, "{:?}: cosine {c}", entry["text"]);
    }
}

#[test]
fn small_model_images_match_open_clip() {
    let files = ModelFiles::from_dir(&fixture("model")).unwrap();
    assert_image_parity(&files, &read_json(&fixture("reference.json")), 0.9999);
}

/// The whole tower on the portable kernels (no AVX2 or FMA), whatever this CPU has. The tower's
/// output is not normalised, which the cosine ignores.
#[test]
fn small_model_images_match_open_clip_on_portable_kernels() {
    let files = ModelFiles::from_dir(&fixture("model")).unwrap();
    let checkpoint = Checkpoint::open(&files.weights).unwrap();
    let loader = TensorLoader::new(&checkpoint);
    let tower = ImageTower::load_with_isa(
        loader.root().pp("visual"),
        &files.config.model_cfg,
        Isa::portable(),
    )
    .unwrap();
    let reference = read_json(&fixture("reference.json"));
    assert_embed_parity(&files, &reference, 0.9999, |pixels| {
        tower.forward(pixels).unwrap()
    });
}

/// The text tower on the portable kernels (no AVX2 or FMA), whatever this CPU has; its output
/// is not normalised, which the cosine ignores.
#[test]
fn small_model_text_matches_open_clip_on_portable_kernels() {
    let files = ModelFiles::from_dir(&fixture("model")).unwrap();
    let checkpoint = Checkpoint::open(&files.weights).unwrap();
    let loader = TensorLoader::new(&checkpoint);
    let tower =
        TextTower::load_with_isa(loader.root(), &files.config.model_cfg, Isa::portable()).unwrap();
    let reference = read_json(&fixture("reference.json"));
    assert_tokens_parity(&reference, 0.99999, |batch| tower.forward(batch).unwrap());
}

#[test]
fn f16_model_matches_its_reference() {
    let files = ModelFiles::from_dir(&fixture("model-f16")).unwrap();
    verify_checkpoint(&files).unwrap();
    let reference = read_json(&fixture("model-f16/reference.json"));
    assert_text_parity(&files, &reference, 0.99999);
    assert_image_parity(&files, &reference, 0.9999);
}

#[test]
fn weight_scheme_matches_the_python_probes() {
    assert_eq!(common::splitmix64(0), 0xE220_A839_7B1D_CDAF);
    let keys = common::rn50_keys();
    assert_eq!(keys.len(), 489);
    let reference = read_json(&fixture("rn50/reference.json"));
    for probe in reference["probes"].as_array().unwrap() {
        let k = probe["k"].as_u64().unwrap();
        let (name, shape) = &keys[k as usize];
        assert_eq!(name, probe["key"].as_str().unwrap());
        let i = probe["index"].as_u64().unwrap();
        // serde_json's default float parser is not correctly rounded (it may miss by an ulp),
        // so the f64 `u` is compared to a few ulps and the f32 weight exactly.
        let (u, want_u) = (common::u(k, i), probe["u"].as_f64().unwrap());
        assert!(
            (u - want_u).abs() <= 4.0 * f64::EPSILON,
            "{name}[{i}]: u {u} vs {want_u}"
        );
        let values = common::scheme_values(k, name, shape);
        assert_eq!(
            values[i as usize],
            probe["value"].as_f64().unwrap() as f32,
            "{name}[{i}]"
        );
    }
}

#[test]
fn rn50_keys_are_what_the_towers_read() {
    let config =
        xsearch::model::OpenClipConfig::from_file(&fixture("rn50/open_clip_config.json")).unwrap();
    let expected = xsearch::model::expected_tensors(&config.model_cfg).unwrap();
    let keys = common::rn50_keys();
    let mut extras = Vec::new();
    for (name, shape) in &keys {
        match expected.get(name) {
            Some(want) => assert_eq!(want, shape, "{name}"),
            None => extras.push(name.as_str()),
        }
    }
    assert_eq!(
        expected.len() + extras.len(),
        keys.len(),
        "a tower reads a key not in keys.json"
    );
    assert_eq!(extras.len(), 56); // logit_scale + 55 num_batches_tracked
    assert!(extras
        .iter()
        .all(|k| *k == "logit_scale" || k.ends_with(".num_batches_tracked")));
}

/// Full-size RN50 with the scheme's weights (408 MB written to a temp dir; about 15 s in debug).
#[test]
fn rn50_scheme_weights_match_open_clip() {
    let dir = tempfile::tempdir().unwrap();
    common::write_rn50_scheme_model(dir.path());
    let files = ModelFiles::from_dir(dir.path()).unwrap();
    verify_checkpoint(&files).unwrap();
    let reference = read_json(&fixture("rn50/reference.json"));

    let image = ImageEncoder::load(&files).unwrap();
    assert_eq!((image.image_size(), image.embed_dim()), (224, 1024));
    let got = image
        .embed(&common::scheme_pixels(2, 224))
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    for (i, want) in reference["image_embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        assert_eq!(got[i].len(), 1024);
        let c = cosine(&got[i], &f32s(want));
        assert!(c >= 0.9999, "image {i}: cosine {c}");
    }

    let text = TextEncoder::load(&files).unwrap();
    assert_eq!((text.context_length(), text.embed_dim()), (77, 1024));
    let tokens: Vec<Vec<u32>> = reference["token_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(u32s)
        .collect();
    // The texts include a mojibake caption, which open_clip's ftfy repairs first.
    let tokenizer = Tokenizer::new();
    for (text, ids) in reference["texts"].as_array().unwrap().iter().zip(&tokens) {
        assert_eq!(
            &tokenizer.tokenize(text.as_str().unwrap(), 77),
            ids,
            "{text}"
        );
    }
    let got = text
        .embed_tokens(&tokens)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    for (i, want) in reference["text_embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let c = cosine(&got[i], &f32s(want));
        assert!(c >= 0.9999, "text {:?}: cosine {c}", reference["texts"][i]);
    }
}
