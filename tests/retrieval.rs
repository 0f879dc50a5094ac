//! Retrieval quality with the shapes fixture model (`fixtures/models/shapes-tiny`), through the
//! same code a user runs: ingest into an index, then search it. The images are generated fresh
//! with a seed never used for training.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use xsearch::ingest::pipeline::IngestOptions;
use xsearch::{Clip, Engine, Query, Term};
use xsearch_shapes::{Colour, Scene, Shape};

const HELD_OUT_SEED: u64 = 1001;
const IMAGES: u64 = 480;

struct World {
    engine: Engine,
    scenes: HashMap<PathBuf, Scene>,
}

/// One indexed world shared by the tests of this file (indexing it is the slow part). It lives
/// under cargo's per-target scratch directory, made afresh by each run.
fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(build_world)
}

fn build_world() -> World {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("retrieval");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).unwrap();
    }
    let photos = dir.join("photos");
    let items = xsearch_shapes::write_dataset(&photos, IMAGES, HELD_OUT_SEED).unwrap();
    let photos = std::path::absolute(&photos).unwrap();
    let scenes = items
        .into_iter()
        .map(|item| (photos.join(&item.file), item.scene))
        .collect();
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/models/shapes-tiny");
    let clip = Clip::open(model, None).unwrap();
    let engine = Engine::with_clip(clip, &dir.join("index")).unwrap();
    let summary = engine
        .ingest(&[photos], &IngestOptions::default(), &())
        .unwrap();
    assert_eq!(summary.added, IMAGES as usize, "{summary:?}");
    World { engine, scenes }
}

fn same_class(a: &Scene, b: &Scene) -> bool {
    a.colour == b.colour && a.shape == b.shape
}

#[test]
fn shapes_model_retrieves_text_to_image_image_to_text_and_image_to_image() {
    let w = world();

    // text -> image: precision@5 of "a {colour} {shape}", averaged over the 32 queries.
    let mut precision = 0.0;
    for colour in Colour::ALL {
        for shape in Shape::ALL {
            let hits = w
                .engine
                .search(&Query::text(format!("a {colour} {shape}")), 5, None)
                .unwrap();
            assert_eq!(hits.len(), 5);
            let right = hits
                .iter()
                .filter(|h| {
                    let s = &w.scenes[&h.path];
                    s.colour == colour && s.shape == shape
                })
                .count();
            precision += right as f64 / 5.0;
        }
    }
    precision /= 32.0;

    // image -> text: top-1 over the 32 captions "a {colour} {shape}".
    let captions: Vec<(Colour, Shape, String)> = Colour::ALL
        .iter()
        .flat_map(|&c| {
            Shape::ALL
                .iter()
                .map(move |&s| (c, s, format!("a {c} {s}")))
        })
        .collect();
    let labels: Vec<&str> = captions.iter().map(|(_, _, t)| t.as_str()).collect();
    let paths: Vec<PathBuf> = w.scenes.keys().cloned().collect();
    let embeddings: Vec<_> = w
        .engine
        .clip()
        .embed_files(&paths)
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let ranked = xsearch::tag(w.engine.clip(), &embeddings, &labels).unwrap();
    let top1 = paths
        .iter()
        .zip(&ranked)
        .filter(|(path, scores)| {
            let (c, s, _) = &captions[scores[0].label];
            let scene = &w.scenes[*path];
            scene.colour == *c && scene.shape == *s
        })
        .count() as f64
        / paths.len() as f64;

    // image -> image: the 5 nearest other images share colour and shape.
    let mut shared = 0;
    let probes = &paths[..120];
    for path in probes {
        let hits = w.engine.search(&Query::image(path), 6, None).unwrap();
        let others: Vec<_> = hits.iter().filter(|h| &h.path != path).take(5).collect();
        assert_eq!(others.len(), 5);
        shared += others
            .iter()
            .filter(|h| same_class(&w.scenes[&h.path], &w.scenes[path]))
            .count();
    }
    let neighbours = shared as f64 / (5 * probes.len()) as f64;

    eprintln!(
        "text->image P@5 {precision:.4}, image->text top-1 {top1:.4}, image->image {neighbours:.4}"
    );
    assert!(precision >= 0.9, "text->image precision@5 {precision:.4}");
    assert!(top1 >= 0.9, "image->text top-1 {top1:.4}");
    assert!(
        neighbours >= 0.9,
        "image->image 5-NN agreement {neighbours:.4}"
    );
}

#[test]
fn combined_query_swaps_a_colour() {
    let w = world();
    let (blue_square, _) = w
        .scenes
        .iter()
        .find(|(_, s)| s.colour == Colour::Blue && s.shape == Shape::Square)
        .expect("the held-out set has a blue square");
    let query = Query::image(blue_square)
        .with(1.0, Term::Text("red".into()))
        .with(-1.0, Term::Text("blue".into()));
    let hits = w.engine.search(&query, 5, None).unwrap();
    let red_squares = hits
        .iter()
        .filter(|h| {
            let s = &w.scenes[&h.path];
            s.colour == Colour::Red && s.shape == Shape::Square
        })
        .count();
    assert!(red_squares >= 4, "{hits:?}");
}

#[test]
fn search_within_a_folder_only_returns_its_images() {
    let w = world();
    let any = w
        .scenes
        .keys()
        .next()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let hits = w
        .engine
        .search(&Query::text("a red circle"), 10, Some(&any))
        .unwrap();
    assert_eq!(hits.len(), 10);
    let elsewhere = any.with_file_name("elsewhere");
    let none = w
        .engine
        .search(&Query::text("a red circle"), 10, Some(&elsewhere))
        .unwrap();
    assert!(none.is_empty(), "{none:?}");
}

/// A text query must not load the image tower (that is what makes `xsearch query` instant):
/// with every `visual.*` tensor removed from the checkpoint, text search still answers, while
/// anything that needs the image tower names the missing tensor.
#[test]
fn text_queries_never_load_the_image_tower() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("text-only");
    std::fs::create_dir(&model).unwrap();
    let shapes = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/models/shapes-tiny");
    std::fs::copy(
        shapes.join("open_clip_config.json"),
        model.join("open_clip_config.json"),
    )
    .unwrap();
    let tensors = candle_core::safetensors::load(
        shapes.join("open_clip_model.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let text_only: HashMap<String, candle_core::Tensor> = tensors
        .into_iter()
        .filter(|(name, _)| !name.starts_with("visual."))
        .collect();
    candle_core::safetensors::save(&text_only, model.join("open_clip_model.safetensors")).unwrap();

    let clip = Clip::open(model.to_str().unwrap(), None).unwrap();
    let engine = Engine::with_clip(clip, &dir.path().join("index")).unwrap();
    let captions = ["a red square", "a blue circle", "a green triangle"].map(String::from);
    assert_eq!(engine.add_texts(&captions).unwrap(), 3);
    let hits = engine.search_texts(&Query::text("red square"), 1).unwrap();
    assert_eq!(hits[0].text, "a red square");
    assert!(engine
        .search(&Query::text("a red square"), 5, None)
        .unwrap()
        .is_empty());

    let image = image::DynamicImage::new_rgb8(8, 8);
    let err = engine
        .search(&Query::default().with(1.0, Term::Image(image)), 1, None)
        .unwrap_err();
    assert!(err.to_string().contains("visual."), "{err}");
}
