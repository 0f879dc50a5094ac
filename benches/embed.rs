//! Speed of the full-size CLIP RN50 towers: the image tower at batch 1, 8 and 32, the text
//! tower on a 5-token and a 77-token prompt.
//!
//!     RAYON_NUM_THREADS=2 cargo bench --bench embed
//!
//! The weights follow the deterministic scheme of `fixtures/parity/rn50` (speed does not depend
//! on the values); the 408 MB checkpoint is written once per run under the target directory.
//! `benches/reference_bench.py --xsearch run` runs this bench next to PyTorch and onnxruntime
//! with the same thread count and inputs, and prints the ratios.

// The shared helpers of the model tests; this bench uses only the RN50 scheme part of them.
#[path = "../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::time::Duration;

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use xsearch::model::tokenizer::Tokenizer;
use xsearch::model::{ImageEncoder, ModelFiles, TextEncoder};

/// Image batch sizes, as in `reference_bench.py`'s default `--batches`.
const BATCHES: [usize; 3] = [1, 8, 32];

/// Token count (START and END included) and prompt: the same as `PROMPTS` in
/// `reference_bench.py`. The long prompt is truncated to the full 77-token context.
fn prompts() -> [(usize, String); 2] {
    [
        (5, "sunset over sea".to_string()),
        (77, vec!["a very long caption about the sea"; 20].join(" ")),
    ]
}

/// The directory cargo builds into (`<target>/<profile>/deps/<bench>` is this executable), so
/// the big checkpoint lands on the build disk rather than in a small tmpfs.
fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(PathBuf::from))
        .unwrap_or_else(std::env::temp_dir)
}

fn bench_towers(c: &mut Criterion) {
    let root = target_dir();
    let dir = tempfile::Builder::new()
        .prefix("xsearch-bench-rn50-")
        .tempdir_in(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()));
    common::write_rn50_scheme_model(dir.path());
    let files = ModelFiles::from_dir(dir.path()).expect("the scheme model loads");

    let image = ImageEncoder::load(&files).expect("the image tower loads");
    let size = image.image_size();
    let mut group = c.benchmark_group("image_tower");
    // One pass at batch 32 takes seconds: one iteration per sample, ten samples.
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for batch in BATCHES {
        let pixels = common::scheme_pixels(batch, size);
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::new("batch", batch), &pixels, |b, pixels| {
            b.iter(|| image.embed(pixels).expect("the image tower runs"))
        });
    }
    group.finish();
    drop(image);

    let text = TextEncoder::load(&files).expect("the text tower loads");
    let tokenizer = Tokenizer::new();
    let mut group = c.benchmark_group("text_tower");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for (want, prompt) in prompts() {
        let tokens = vec![tokenizer.tokenize(&prompt, text.context_length())];
        assert_eq!(tokens[0].len(), want, "{prompt:?} tokenizes to {want} ids");
        group.bench_with_input(BenchmarkId::new("tokens", want), &tokens, |b, tokens| {
            b.iter(|| text.embed_tokens(tokens).expect("the text tower runs"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_towers);
criterion_main!(benches);
