//! Config parsing and tower shapes with zero weights, for a small config and the full RN50.

use candle_core::{Device, Tensor};
use xsearch::model::config::OpenClipConfig;
use xsearch::model::expected_tensors;
use xsearch::model::resnet::{tower_convs, ImageTower, TowerConv};
use xsearch::model::text::TextTower;
use xsearch::model::weights::TensorLoader;
use xsearch::model::Error;

/// `open_clip_config.json` of `timm/resnet50_clip.openai`, as open_clip writes it.
const RN50: &str = r#"{
    "model_cfg": {
        "embed_dim": 1024,
        "quick_gelu": true,
        "vision_cfg": {"image_size": 224, "layers": [3, 4, 6, 3], "width": 64, "patch_size": null},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12}
    },
    "preprocess_cfg": {
        "mean": [0.48145466, 0.4578275, 0.40821073],
        "std": [0.26862954, 0.26130258, 0.27577711]
    }
}"#;

const SMALL: &str = r#"{
    "model_cfg": {
        "embed_dim": 24,
        "vision_cfg": {"image_size": 64, "layers": [1, 2, 1, 1], "width": 8, "head_width": 16},
        "text_cfg": {"context_length": 12, "vocab_size": 49408, "width": 32, "heads": 4, "layers": 2}
    }
}"#;

#[test]
fn rn50_config_parses_with_every_size() {
    let config = OpenClipConfig::from_json(RN50).unwrap();
    let m = &config.model_cfg;
    assert_eq!(m.embed_dim, 1024);
    assert!(m.quick_gelu);
    assert_eq!(m.image_size(), 224);
    assert_eq!(m.stage_blocks(), &[3, 4, 6, 3]);
    assert_eq!(m.vision_cfg.head_width, 64);
    assert_eq!(m.mlp_width(), 2048);
    assert_eq!(config.preprocess_cfg.interpolation, "bicubic");
    assert_eq!(config.preprocess_cfg.resize_mode, "shortest");
}

/// The layer table benchmarks use, derived from the config: RN50's 55 convolutions (3 stem,
/// 16 bottlenecks x 3, 4 downsamples) and 10.734 GFLOP per image, as counted by hand.
#[test]
fn rn50_layer_table_follows_the_config() {
    let config = OpenClipConfig::from_json(RN50).unwrap();
    let convs = tower_convs(&config.model_cfg).unwrap();
    assert_eq!(convs.iter().map(|c| c.count).sum::<usize>(), 55);
    let gflop: f64 = convs
        .iter()
        .map(|c| c.shape.flops(1, c.size, c.size) * c.count as f64)
        .sum::<f64>()
        / 1e9;
    assert!((10.734..10.735).contains(&gflop), "{gflop} GFLOP");
    let names: Vec<(&str, usize, usize)> = convs
        .iter()
        .map(|c| (c.name.as_str(), c.size, c.count))
        .collect();
    assert_eq!(
        names[..3],
        [
            ("stem.conv1", 224, 1),
            ("stem.conv2", 112, 1),
            ("stem.conv3", 112, 1)
        ]
    );
    // layer1.0's expand and downsample are the same 1x1 conv at the same size: one row, twice.
    assert_eq!(
        names[3..7],
        [
            ("layer1.0", 56, 1),
            ("layer1.0", 56, 1),
            ("layer1.0", 56, 2),
            ("layer1.1-2", 56, 2)
        ]
    );
    let last = convs.last().unwrap();
    assert_eq!(
        (last.name.as_str(), last.size, last.count, last.shape.out_c),
        ("layer4.1-2", 7, 2, 2048)
    );
    // A smaller config gives its own table, not RN50's.
    let small = OpenClipConfig::from_json(SMALL).unwrap();
    let convs: Vec<TowerConv> = tower_convs(&small.model_cfg).unwrap();
    assert_eq!(convs[0].size, 64);
    assert_eq!(convs.iter().map(|c| c.count).sum::<usize>(), 3 + 5 * 3 + 4);
}

#[test]
fn missing_preprocess_cfg_defaults_to_openai_mean_and_std() {
    let config = OpenClipConfig::from_json(SMALL).unwrap();
    assert_eq!(
        config.preprocess_cfg.mean,
        [0.481_454_66, 0.457_827_5, 0.408_210_73]
    );
    // The written-out std has more digits than f32 holds; the RN50 fixture config spells it.
    let rn50 = OpenClipConfig::from_json(RN50).unwrap();
    assert_eq!(config.preprocess_cfg.std, rn50.preprocess_cfg.std);
    assert!(!config.model_cfg.quick_gelu);
}

#[test]
fn vit_and_malformed_resnet_configs_are_rejected() {
    let vit = RN50.replace(
        r#""layers": [3, 4, 6, 3], "width": 64"#,
        r#""layers": 12, "width": 768"#,
    );
    let err = OpenClipConfig::from_json(&vit).unwrap_err();
    assert!(
        matches!(&err, Error::UnsupportedModel { reason, .. } if reason.contains("ViT")),
        "{err}"
    );
    let three = RN50.replace("[3, 4, 6, 3]", "[3, 4, 6]");
    let err = OpenClipConfig::from_json(&three).unwrap_err();
    assert!(
        matches!(&err, Error::UnsupportedModel { reason, .. } if reason.contains("3 stages")),
        "{err}"
    );
    let odd = RN50.replace("\"image_size\": 224", "\"image_size\": 200");
    assert!(matches!(
        OpenClipConfig::from_json(&odd),
        Err(Error::UnsupportedModel { .. })
    ));
    assert!(matches!(
        OpenClipConfig::from_json("{"),
        Err(Error::ConfigParse { .. })
    ));
}

#[test]
fn rn50_expects_the_open_clip_keys() {
    let config = OpenClipConfig::from_json(RN50).unwrap();
    let keys = expected_tensors(&config.model_cfg).unwrap();
    // 489 hub tensors = these 433 + logit_scale + 55 BatchNorm num_batches_tracked.
    assert_eq!(keys.len(), 433);
    let shape = |k: &str| keys.get(k).cloned().unwrap_or_else(|| panic!("no {k}"));
    assert_eq!(shape("visual.conv1.weight"), [32, 3, 3, 3]);
    assert_eq!(
        shape("visual.layer1.0.downsample.0.weight"),
        [256, 64, 1, 1]
    );
    assert_eq!(shape("visual.layer4.0.downsample.1.running_var"), [2048]);
    assert_eq!(shape("visual.attnpool.positional_embedding"), [50, 2048]);
    assert_eq!(shape("visual.attnpool.c_proj.weight"), [1024, 2048]);
    assert_eq!(
        shape("transformer.resblocks.11.attn.in_proj_weight"),
        [1536, 512]
    );
    assert_eq!(
        shape("transformer.resblocks.0.mlp.c_fc.weight"),
        [2048, 512]
    );
    assert_eq!(shape("text_projection"), [512, 1024]);
    assert_eq!(shape("token_embedding.weight"), [49408, 512]);
    assert!(!keys.contains_key("visual.layer1.1.downsample.0.weight"));
}

#[test]
fn small_towers_give_embed_dim_rows() {
    let config = OpenClipConfig::from_json(SMALL).unwrap();
    let loader = TensorLoader::zeros();
    let image = ImageTower::load(loader.root().pp("visual"), &config.model_cfg).unwrap();
    let pixels = Tensor::zeros((2, 3, 64, 64), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert_eq!(image.forward(&pixels).unwrap().dims(), &[2, 24]);
    let text = TextTower::load(loader.root(), &config.model_cfg).unwrap();
    let out = text
        .forward(&[vec![49406, 320, 49407], vec![49406, 49407]])
        .unwrap();
    assert_eq!(out.dims(), &[2, 24]);
}

#[test]
fn rn50_towers_give_1024_wide_rows() {
    let config = OpenClipConfig::from_json(RN50).unwrap();
    let loader = TensorLoader::zeros();
    let image = ImageTower::load(loader.root().pp("visual"), &config.model_cfg).unwrap();
    let pixels = Tensor::zeros((1, 3, 224, 224), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert_eq!(image.forward(&pixels).unwrap().dims(), &[1, 1024]);
    let text = TextTower::load(loader.root(), &config.model_cfg).unwrap();
    assert_eq!(text.context_length(), 77);
    assert_eq!(
        text.forward(&[vec![49406, 49407]]).unwrap().dims(),
        &[1, 1024]
    );
}

#[test]
fn text_input_is_checked() {
    let config = OpenClipConfig::from_json(SMALL).unwrap();
    let loader = TensorLoader::zeros();
    let text = TextTower::load(loader.root(), &config.model_cfg).unwrap();
    let too_long = vec![1u32; 13];
    assert!(matches!(
        text.forward(&[too_long]),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        text.forward(&[vec![49408]]),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(text.forward(&[]), Err(Error::InvalidInput(_))));
}

#[test]
fn encoders_can_be_shared_across_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<xsearch::model::ImageEncoder>();
    send_sync::<xsearch::model::TextEncoder>();
    send_sync::<xsearch::model::ModelFiles>();
}
