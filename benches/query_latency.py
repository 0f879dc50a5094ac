#!/usr/bin/env python3
"""Fresh-process latency: `xsearch query` over a 100k-vector index with the full-size RN50
text tower, against a Python process that loads open_clip RN50 from the same safetensors and
encodes one prompt; also `xsearch status` on the same index. Medians of 5, in one run.

    /work/venv/bin/python index/benches/hnsw_vs_hnswlib.py generate target/bench
    cargo build --release --bin xsearch --example rn50_bench_index
    target/release/examples/rn50_bench_index target/bench/rn50 target/bench/rn50-index \
        target/bench/points.f32
    /work/venv/bin/python benches/query_latency.py target/bench/rn50 target/bench/rn50-index

Both sides get 2 threads (RAYON_NUM_THREADS, torch.set_num_threads). The Python process
does the least a Python CLIP search must do: import, build the model, load the weights,
tokenize, encode (no index search at all), so the ratio flatters Python.
"""

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# XSEARCH_BIN overrides the binary (e.g. target/debug/xsearch when no release build exists).
XSEARCH = Path(os.environ.get("XSEARCH_BIN", ROOT / "target" / "release" / "xsearch"))
PROMPT = "sunset over sea"
REPEATS = 5
THREADS = 2

PYTHON_QUERY = """
import sys, torch, open_clip
torch.set_num_threads({threads})
# The checkpoint's config sets quick_gelu, as OpenAI's weights do: hence RN50-quickgelu.
model, _, _ = open_clip.create_model_and_transforms("RN50-quickgelu", pretrained=sys.argv[1])
tokens = open_clip.get_tokenizer("RN50-quickgelu")([{prompt!r}])
with torch.no_grad():
    print(model.encode_text(tokens, normalize=True).shape)
""".format(threads=THREADS, prompt=PROMPT)


def median_wall(argv, env):
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            sys.exit(f"{argv[0]} failed ({done.returncode}):\n{done.stderr}")
    return statistics.median(times), done.stdout


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: query_latency.py MODEL_DIR INDEX_DIR")
    model, index = (Path(a).resolve() for a in sys.argv[1:])
    env = dict(os.environ, RAYON_NUM_THREADS=str(THREADS), OMP_NUM_THREADS=str(THREADS))
    common = ["--index", str(index), "--model", str(model)]

    status, out = median_wall([str(XSEARCH), "status", *common], env)
    print(f"xsearch status_s {status:.3f}")
    query, out = median_wall([str(XSEARCH), "query", PROMPT, "--json", *common], env)
    hits = out.count("\n")
    if hits != 10:
        sys.exit(f"xsearch query printed {hits} lines, expected 10:\n{out}")
    print(f"xsearch query_s {query:.3f}")
    weights = model / "open_clip_model.safetensors"
    python, _ = median_wall([sys.executable, "-c", PYTHON_QUERY, str(weights)], env)
    print(f"python open_clip encode_s {python:.3f}")
    print(f"ratio xsearch/python {query / python:.3f}")


if __name__ == "__main__":
    main()
