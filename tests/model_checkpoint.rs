//! Strict checkpoint loading: missing, extra and misshapen tensors are typed errors; F16 and
//! BF16 checkpoints load as F32; each tower loads alone.

mod common;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use xsearch::model::config::OpenClipConfig;
use xsearch::model::{
    expected_tensors, verify_checkpoint, Error, ImageEncoder, ModelFiles, TextEncoder,
};

const SMALL: &str = r#"{
    "model_cfg": {
        "embed_dim": 24,
        "quick_gelu": true,
        "vision_cfg": {"image_size": 64, "layers": [1, 2, 1, 1], "width": 8, "head_width": 16},
        "text_cfg": {"context_length": 12, "vocab_size": 49408, "width": 32, "heads": 4, "layers": 2}
    }
}"#;

/// The small model's tensors, filled per the shared scheme, plus `logit_scale`.
fn scheme_tensors() -> HashMap<String, Tensor> {
    let config = OpenClipConfig::from_json(SMALL).unwrap();
    let mut keys = expected_tensors(&config.model_cfg).unwrap();
    keys.insert("logit_scale".to_string(), vec![]);
    keys.iter()
        .enumerate()
        .map(|(k, (name, shape))| {
            let values = common::scheme_values(k as u64, name, shape);
            (
                name.clone(),
                Tensor::from_vec(values, shape.as_slice(), &Device::Cpu).unwrap(),
            )
        })
        .collect()
}

fn write_model(dir: &Path, tensors: &HashMap<String, Tensor>) -> ModelFiles {
    std::fs::write(dir.join("open_clip_config.json"), SMALL).unwrap();
    candle_core::safetensors::save(tensors, dir.join("open_clip_model.safetensors")).unwrap();
    ModelFiles::from_dir(dir).unwrap()
}

fn embed_both(files: &ModelFiles) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let image = ImageEncoder::load(files).unwrap();
    let text = TextEncoder::load(files).unwrap();
    let pixels = common::scheme_pixels(2, image.image_size());
    let tokens = [
        vec![49406, 320, 1125, 539, 320, 2368, 49407],
        vec![49406, 49407],
    ];
    (
        image.embed(&pixels).unwrap().to_vec2().unwrap(),
        text.embed_tokens(&tokens).unwrap().to_vec2().unwrap(),
    )
}

#[test]
fn complete_checkpoint_loads_and_is_fully_consumed() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_model(dir.path(), &scheme_tensors());
    verify_checkpoint(&files).unwrap();
    let (images, texts) = embed_both(&files);
    for row in images.iter().chain(&texts) {
        assert_eq!(row.len(), 24);
        let norm: f32 = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
    }
    // The two images differ, so their embeddings must too.
    assert!(common::cosine(&images[0], &images[1]) < 0.9999);
}

#[test]
fn missing_tensor_is_named_with_its_shape() {
    let dir = tempfile::tempdir().unwrap();
    let mut tensors = scheme_tensors();
    tensors.remove("visual.layer2.0.bn2.running_var");
    let files = write_model(dir.path(), &tensors);
    let err = ImageEncoder::load(&files).err().unwrap();
    match &err {
        Error::MissingTensor { name, expected, .. } => {
            assert_eq!(name, "visual.layer2.0.bn2.running_var");
            assert_eq!(expected, &[16]);
        }
        other => panic!("unexpected error: {other}"),
    }
    assert!(err.to_string().contains("visual.layer2.0.bn2.running_var"));
    // The text tower does not read `visual.*`, so it still loads.
    TextEncoder::load(&files).unwrap();
}

#[test]
fn extra_tensor_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut tensors = scheme_tensors();
    let extra = Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap();
    tensors.insert("visual.layer9.0.conv1.weight".to_string(), extra.clone());
    tensors.insert("transformer.extra".to_string(), extra);
    // Allowed extras: BatchNorm counters (int64 in torch checkpoints).
    let counter = Tensor::new(0i64, &Device::Cpu).unwrap();
    tensors.insert("visual.bn1.num_batches_tracked".to_string(), counter);
    let files = write_model(dir.path(), &tensors);
    match ImageEncoder::load(&files) {
        Err(Error::UnexpectedTensors { names, .. }) => {
            assert_eq!(names, ["visual.layer9.0.conv1.weight"])
        }
        other => panic!("expected UnexpectedTensors, got {:?}", other.err()),
    }
    match TextEncoder::load(&files) {
        Err(Error::UnexpectedTensors { names, .. }) => assert_eq!(names, ["transformer.extra"]),
        other => panic!("expected UnexpectedTensors, got {:?}", other.err()),
    }
    assert!(
        matches!(verify_checkpoint(&files), Err(Error::UnexpectedTensors { names, .. }) if names.len() == 2)
    );
}

#[test]
fn misshapen_tensor_names_both_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let mut tensors = scheme_tensors();
    let wrong = Tensor::zeros((24, 32), DType::F32, &Device::Cpu).unwrap();
    tensors.insert("text_projection".to_string(), wrong);
    let files = write_model(dir.path(), &tensors);
    let err = TextEncoder::load(&files).err().unwrap();
    match &err {
        Error::ShapeMismatch {
            name,
            expected,
            found,
            ..
        } => {
            assert_eq!(name, "text_projection");
            assert_eq!(expected, &[32, 24]);
            assert_eq!(found, &[24, 32]);
        }
        other => panic!("unexpected error: {other}"),
    }
    ImageEncoder::load(&files).unwrap();
}

#[test]
fn half_precision_checkpoints_load_as_f32() {
    // The F32 reference holds the F16-rounded values, so both runs see identical weights.
    let rounded: HashMap<String, Tensor> = scheme_tensors()
        .into_iter()
        .map(|(k, t)| {
            (
                k,
                t.to_dtype(DType::F16)
                    .unwrap()
                    .to_dtype(DType::F32)
                    .unwrap(),
            )
        })
        .collect();
    let as_dtype = |dtype| -> HashMap<String, Tensor> {
        rounded
            .iter()
            .map(|(k, t)| (k.clone(), t.to_dtype(dtype).unwrap()))
            .collect()
    };
    let (d32, d16, dbf) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let reference = embed_both(&write_model(d32.path(), &rounded));
    assert_eq!(
        embed_both(&write_model(d16.path(), &as_dtype(DType::F16))),
        reference
    );
    // BF16 rounds the weights further: close, not identical.
    let (images, texts) = embed_both(&write_model(dbf.path(), &as_dtype(DType::BF16)));
    for (a, b) in images
        .iter()
        .chain(&texts)
        .zip(reference.0.iter().chain(&reference.1))
    {
        assert!(
            common::cosine(a, b) > 0.999,
            "bf16 cosine {}",
            common::cosine(a, b)
        );
    }
}

#[test]
fn fingerprint_is_stable_and_tells_checkpoints_apart() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let tensors = scheme_tensors();
    let fa = write_model(a.path(), &tensors).fingerprint();
    assert_eq!(fa.len(), 16);
    assert_eq!(write_model(b.path(), &tensors).fingerprint(), fa);
    let half: HashMap<String, Tensor> = tensors
        .iter()
        .map(|(k, t)| (k.clone(), t.to_dtype(DType::F16).unwrap()))
        .collect();
    assert_ne!(write_model(c.path(), &half).fingerprint(), fa);
}
