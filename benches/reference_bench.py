#!/usr/bin/env python3
"""Reference speeds for xsearch's CLIP RN50: PyTorch (open_clip) and onnxruntime, side by side
with the Rust criterion bench `embed`, all at the same thread count, in one run.

    /work/venv/bin/python benches/reference_bench.py [--threads 2] [--xsearch run|read|skip]

runs PyTorch, then onnxruntime, then `cargo bench --bench embed` (RAYON_NUM_THREADS = --threads)
and prints images/s at each batch size and text latencies, with xsearch's ratios to both.

Weights follow the deterministic scheme of fixtures/parity/rn50 (speed does not depend on the
values; --random-init skips the ~10 s it takes to generate them). The ONNX export is cached under
target/reference-bench/ (not committed). Parts whose tools are missing are skipped with a note.
Only compare numbers from one run on one machine: absolute speeds on a shared box mean little.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "target" / "reference-bench"
RN50_DIR = ROOT / "fixtures" / "parity" / "rn50"
# "sunset over sea" is 5 tokens with start and end; the long prompt fills the 77-token context.
PROMPTS = {5: "sunset over sea", 77: " ".join(["a very long caption about the sea"] * 20)}


def median_seconds(fn, repeats, warmup=1):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def build_model(random_init):
    import open_clip
    import torch

    torch.manual_seed(0)  # a cached ONNX export stays valid for the seeded random init too
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = open_clip.create_model(f"local-dir:{RN50_DIR}", load_weights=False)
    if not random_init:
        sys.path.insert(0, str(RN50_DIR.parent))
        sys.dont_write_bytecode = True  # no __pycache__ among the fixtures
        from make_parity import rn50_state

        _, state = rn50_state(model)
        model.load_state_dict(state, strict=True)
    model.eval()
    tokenizer = open_clip.get_tokenizer(f"local-dir:{RN50_DIR}")
    tokens = {n: tokenizer([p]) for n, p in PROMPTS.items()}
    for n, t in tokens.items():
        assert int((t != 0).sum()) == n, (n, t)
    return model, tokens, torch


def bench_pytorch(model, tokens, torch, batches, repeats):
    image, text = {}, {}
    with torch.inference_mode():
        for b in batches:
            x = torch.randn(b, 3, 224, 224)
            image[b] = b / median_seconds(lambda: model.encode_image(x), repeats)
        for n, t in tokens.items():
            # open_clip always runs the full 77-token context, whatever the prompt length.
            text[n] = median_seconds(lambda: model.encode_text(t), repeats * 4)
    return image, text


def text_module(model, torch):
    """encode_text as a module, so the text tower exports to ONNX like the image tower."""

    class Text(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, ids):
            return self.model.encode_text(ids)

    return Text()


def export_onnx(module, example, path, dynamic, torch):
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.onnx")
    kwargs = dict(input_names=["input"], output_names=["embedding"], opset_version=17)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                module, (example,), str(tmp), dynamo=False,
                dynamic_axes={"input": {0: "batch"}} if dynamic else None, **kwargs,
            )
        except Exception:  # newer torch: only the dynamo exporter remains
            batch = torch.export.Dim("batch", min=1, max=256)
            torch.onnx.export(
                module, (example,), str(tmp), dynamo=True, external_data=False,
                dynamic_shapes=({0: batch},) if dynamic else None, **kwargs,
            )
    tmp.rename(path)
    return path


def bench_onnxruntime(model, tokens, torch, threads, batches, repeats, weights):
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL

    def session(path):
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    image, text = {}, {}
    img_path = export_onnx(model.visual, torch.randn(1, 3, 224, 224), CACHE / f"rn50_image_{weights}.onnx", True, torch)
    sess = session(img_path)
    name = sess.get_inputs()[0].name
    # A cached or freshly exported graph must compute the same tower before it is timed.
    probe = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        want = model.encode_image(probe).numpy()
    got = sess.run(None, {name: probe.numpy()})[0]
    if not np.allclose(got, want, rtol=1e-3, atol=1e-4):
        raise SystemExit(f"{img_path}: onnxruntime output differs from pytorch; delete it to re-export")
    for b in batches:
        x = np.random.default_rng(0).standard_normal((b, 3, 224, 224), dtype=np.float32)
        image[b] = b / median_seconds(lambda: sess.run(None, {name: x}), repeats)
    try:
        txt_path = export_onnx(text_module(model, torch), tokens[5], CACHE / f"rn50_text_{weights}.onnx", False, torch)
        tsess = session(txt_path)
        tname = tsess.get_inputs()[0].name
        for n, t in tokens.items():
            ids = t.numpy()
            text[n] = median_seconds(lambda: tsess.run(None, {tname: ids}), repeats * 4)
    except Exception as e:  # the text tower is a bonus; the image tower is the comparison
        print(f"onnxruntime text tower skipped: {type(e).__name__}: {e}", file=sys.stderr)
    return image, text


# --- xsearch: the criterion bench `benches/embed.rs` ----------------------------------------
# Its ids are `image_tower/batch/<B>` and `text_tower/tokens/<N>`, with the same batch sizes,
# 224x224 inputs and prompts as above. With --xsearch run (the default) it runs in this process's
# run at the same thread count (RAYON_NUM_THREADS); with --xsearch read, earlier results under
# <target>/criterion are used.

def criterion_median_seconds(bench_id, target_dir, since):
    """Median time per iteration of a criterion benchmark id, in seconds, or None if absent or
    older than `since` (a stale result from an earlier run must not pass for this one's)."""
    path = Path(target_dir) / "criterion" / bench_id / "new" / "estimates.json"
    if not path.is_file() or path.stat().st_mtime < since:
        return None
    return json.loads(path.read_text())["median"]["point_estimate"] * 1e-9


def bench_xsearch(mode, threads, batches):
    target_dir = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    since = 0.0
    if mode == "run":
        env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
        # Build first so compiling never overlaps a measurement.
        build = ["cargo", "bench", "--bench", "embed", "--no-run"]
        print("running:", " ".join(build), file=sys.stderr)
        if subprocess.run(build, cwd=ROOT, env=env).returncode != 0:
            print("xsearch bench did not build; skipped", file=sys.stderr)
            return {}, {}
        since = time.time()
        cmd = ["cargo", "bench", "--bench", "embed", "--", "--output-format", "bencher"]
        print(f"running: RAYON_NUM_THREADS={threads}", " ".join(cmd), file=sys.stderr)
        if subprocess.run(cmd, cwd=ROOT, env=env).returncode != 0:
            print("xsearch bench failed; reporting what it finished", file=sys.stderr)
    image, text = {}, {}
    for b in batches:
        s = criterion_median_seconds(f"image_tower/batch/{b}", target_dir, since)
        if s is not None:
            image[b] = b / s
    for n in PROMPTS:
        s = criterion_median_seconds(f"text_tower/tokens/{n}", target_dir, since)
        if s is not None:
            text[n] = s
    return image, text


def machine():
    """What BENCHMARKS.md records with each run: CPU model, cores, SIMD flags, load, versions."""
    cpu, flags = "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                cpu = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    simd = [f for f in ("avx2", "fma", "avx512f") if f in flags] or ["none of avx2/fma/avx512f"]
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{cpu}, {os.cpu_count()} cores, {' '.join(simd)}; load average {load}"


def ratio(a, b):
    return f"{a / b:.2f}x" if a is not None and b else "-"


def fmt(v, spec):
    return format(v, spec) if v is not None else format("-", ">" + spec.split(".")[0])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="threads for every runtime (default 2)")
    parser.add_argument("--batches", default="1,8,32", help="image batch sizes (default 1,8,32)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per measurement (median)")
    parser.add_argument("--random-init", action="store_true", help="skip generating the scheme's weights")
    parser.add_argument("--skip-pytorch", action="store_true")
    parser.add_argument("--skip-onnxruntime", action="store_true")
    parser.add_argument(
        "--xsearch", choices=["run", "read", "skip"], default="run",
        help="run the criterion bench (default), read its earlier results, or skip it",
    )
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    os.environ["RAYON_NUM_THREADS"] = str(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)

    started = f"{time.strftime('%Y-%m-%d %H:%M %Z')}: {machine()}"
    print(started, file=sys.stderr)
    results = {}
    model = None
    if not (args.skip_pytorch and args.skip_onnxruntime):
        try:
            model, tokens, torch = build_model(args.random_init)
            torch.set_num_threads(args.threads)
            torch.set_num_interop_threads(1)
        except ImportError as e:
            print(f"pytorch/open_clip missing, skipping both Python runtimes: {e}", file=sys.stderr)
    if model is not None and not args.skip_pytorch:
        results["pytorch"] = bench_pytorch(model, tokens, torch, batches, args.repeats)
    if model is not None and not args.skip_onnxruntime:
        try:
            results["onnxruntime"] = bench_onnxruntime(
                model, tokens, torch, args.threads, batches, args.repeats,
                "random" if args.random_init else "scheme",
            )
        except ImportError as e:
            print(f"onnxruntime missing, skipped: {e}", file=sys.stderr)
    if args.xsearch != "skip":
        results["xsearch"] = bench_xsearch(args.xsearch, args.threads, batches)

    print(f"\nstart {started}\nend   {time.strftime('%Y-%m-%d %H:%M %Z')}: {machine()}")
    versions = []
    for name in ("torch", "open_clip", "onnxruntime"):
        module = sys.modules.get(name)
        if module is not None:
            versions.append(f"{name} {getattr(module, '__version__', '?')}")
    print(", ".join(versions) or "no python runtimes")

    def get(runtime, part, key):
        return results.get(runtime, ({}, {}))[part].get(key)

    print(f"\nimage tower, images/s ({args.threads} threads, median of {args.repeats})")
    print(f"{'batch':>6} {'pytorch':>9} {'onnxrt':>9} {'xsearch':>9} {'xs/ort':>8} {'xs/pt':>8}")
    for b in batches:
        pt, ort_, xs = (get(r, 0, b) for r in ("pytorch", "onnxruntime", "xsearch"))
        print(f"{b:>6} {fmt(pt, '9.2f')} {fmt(ort_, '9.2f')} {fmt(xs, '9.2f')} {ratio(xs, ort_):>8} {ratio(xs, pt):>8}")
    print("\ntext tower, ms per prompt (ratios of latency: lower is better; pytorch and")
    print("onnxruntime run all 77 positions whatever the prompt length)")
    print(f"{'tokens':>6} {'pytorch':>9} {'onnxrt':>9} {'xsearch':>9} {'xs/ort':>8} {'xs/pt':>8}")
    for n in PROMPTS:
        pt, ort_, xs = (get(r, 1, n) for r in ("pytorch", "onnxruntime", "xsearch"))
        ms = [None if v is None else v * 1e3 for v in (pt, ort_, xs)]
        print(f"{n:>6} {fmt(ms[0], '9.2f')} {fmt(ms[1], '9.2f')} {fmt(ms[2], '9.2f')} {ratio(xs, ort_):>8} {ratio(xs, pt):>8}")


if __name__ == "__main__":
    main()
