//! Retrieval quality with the shapes fixture model (`fixtures/models/shapes-tiny`), through the
//! same code a user runs: ingest into an index, then search it. The images are generated fresh
//! with a seed never used for training.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use xsearch::{Engine, EngineOptions, OpenMode, Query, SearchOptions, Term};
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
    let options = EngineOptions::new(model)
        .index(dir.join("index"))
        .mode(OpenMode::Create);
    let engine = Engine::open(&options, None).unwrap();
    let summary = engine.ingest(&[photos], &()).unwrap();
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
                .search(
                    &Query::text(format!("a {colour} {shape}")),
                    &SearchOptions::new(5),
                )
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
        .embed_files(&paths)
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let ranked = w.engine.tag(&embeddings, &labels).unwrap();
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
        let hits = w
            .engine
            .search(&Query::image(path), &SearchOptions::new(6))
            .unwrap();
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
    let hits = w.engine.search(&query, &SearchOptions::new(5)).unwrap();
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
        .search(
            &Query::text("a red circle"),
            &SearchOptions::new(10).within(&any),
        )
        .unwrap();
    assert_eq!(hits.len(), 10);
    let elsewhere = any.with_file_name("elsewhere");
    let none = w
        .engine
        .search(
            &Query::text("a red circle"),
            &SearchOptions::new(10).within(&elsewhere),
        )
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

    let options = EngineOptions::new(model.to_str().unwrap())
        .index(dir.path().join("index"))
        .mode(OpenMode::Create);
    let engine = Engine::open(&options, None).unwrap();
    let captions = ["a red square", "a blue circle", "a green triangle"].map(String::from);
    assert_eq!(engine.add_texts(&captions).unwrap(), 3);
    let hits = engine
        .search_texts(&Query::text("red square"), &SearchOptions::new(1))
        .unwrap();
    assert_eq!(hits[0].text, "a red square");
    assert!(engine
        .search(&Query::text("a red square"), &SearchOptions::new(5))
        .unwrap()
        .is_empty());

    let image = image::DynamicImage::new_rgb8(8, 8);
    let err = engine
        .search(
            &Query::default().with(1.0, Term::Image(image)),
            &SearchOptions::new(1),
        )
        .unwrap_err();
    assert!(err.to_string().contains("visual."), "{err}");

    // Status reads the index alone: no tower, so the missing image tower does not matter.
    let status = engine.status().unwrap();
    assert_eq!((status.images, status.texts, status.dim), (0, 3, 64));
    assert!(status.failures.is_empty());
}

/// One engine answers searches from several threads at once, each getting what a lone search
/// gets (the server shares one engine between its workers).
#[test]
fn one_engine_searches_from_several_threads_at_once() {
    let w = world();
    let queries: Vec<String> = Colour::ALL
        .iter()
        .map(|colour| format!("a {colour} circle"))
        .collect();
    let options = SearchOptions::new(5);
    let alone: Vec<_> = queries
        .iter()
        .map(|q| w.engine.search(&Query::text(q), &options).unwrap())
        .collect();
    let barrier = std::sync::Barrier::new(queries.len());
    let together: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = queries
            .iter()
            .map(|q| {
                let (engine, barrier, options) = (&w.engine, &barrier, &options);
                s.spawn(move || {
                    barrier.wait(); // all threads search at the same moment
                    engine.search(&Query::text(q), options).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(together, alone);
    assert!(together.iter().all(|hits| hits.len() == 5));
}

/// An engine opened without an index embeds and tags, and says so when asked to search.
#[test]
fn an_engine_without_an_index_embeds_but_does_not_search() {
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/models/shapes-tiny");
    let engine = Engine::open(&EngineOptions::new(model), None).unwrap();
    assert_eq!(engine.index_dir(), None);
    assert_eq!(engine.embed_texts(&["a red star"]).unwrap()[0].len(), 64);
    let err = engine
        .search(&Query::text("a red star"), &SearchOptions::default())
        .unwrap_err();
    assert!(matches!(err, xsearch::Error::NoIndexOpened), "{err}");
}

#[test]
fn an_indexed_image_is_named_by_its_id_and_searches_like_itself_as_a_term() {
    let w = world();
    let hits = w
        .engine
        .search(&Query::text("a green star"), &SearchOptions::new(3))
        .unwrap();
    for hit in &hits {
        assert_eq!(w.engine.image_path(hit.id).unwrap(), Some(hit.path.clone()));
        let like = w
            .engine
            .search(
                &Query::default().with(1.0, Term::Indexed(hit.id)),
                &SearchOptions::new(1),
            )
            .unwrap();
        assert_eq!((like[0].id, &like[0].path), (hit.id, &hit.path));
        assert!((like[0].score - 1.0).abs() < 1e-5, "{}", like[0].score);
    }
    let unknown = xsearch::ImageId(u64::MAX);
    assert_eq!(w.engine.image_path(unknown).unwrap(), None);
    let err = w
        .engine
        .search(
            &Query::default().with(1.0, Term::Indexed(unknown)),
            &SearchOptions::new(1),
        )
        .unwrap_err();
    assert!(matches!(err, xsearch::Error::UnknownImage { id } if id == unknown));
}

#[test]
fn a_read_only_engine_follows_what_its_writer_publishes_on_refresh() {
    let dir = tempfile::tempdir().unwrap();
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/models/shapes-tiny");
    let first = std::path::absolute(dir.path().join("first")).unwrap();
    let second = std::path::absolute(dir.path().join("second")).unwrap();
    xsearch_shapes::write_dataset(&first, 4, 1).unwrap();
    xsearch_shapes::write_dataset(&second, 5, 2).unwrap();
    let options = EngineOptions::new(model).index(dir.path().join("index"));
    let writer = Engine::open(&options.clone().mode(OpenMode::Create), None).unwrap();
    writer.ingest(&[first], &()).unwrap();
    let reader = Engine::open(&options.mode(OpenMode::Read), None).unwrap();
    assert_eq!(reader.image_count().unwrap(), 4);
    assert!(
        !reader.refresh().unwrap(),
        "nothing published since it opened"
    );
    writer.ingest(std::slice::from_ref(&second), &()).unwrap();
    assert_eq!(
        reader.image_count().unwrap(),
        4,
        "a reader sees what it opened"
    );
    assert!(reader.refresh().unwrap());
    assert_eq!(reader.image_count().unwrap(), 9);
    let within = reader
        .search(
            &Query::text("a shape"),
            &SearchOptions::new(9).within(&second),
        )
        .unwrap();
    assert_eq!(within.len(), 5);
    assert!(!reader.refresh().unwrap());
    assert!(!writer.refresh().unwrap(), "a writer sees its own changes");
}
