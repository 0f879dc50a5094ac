#!/usr/bin/env python3
"""The image tower against onnxruntime by CPU time, one thread each: a ratio that holds on a
machine other processes load (wall-clock runs there favour whichever side ran in a quieter
minute, and onnxruntime's spinning thread pool loses most when cores are oversubscribed).

    /work/venv/bin/python benches/tower_cpu_time.py [--batches 8,32] [--rounds 2]

Needs the ONNX export that `benches/reference_bench.py` caches under target/reference-bench/
(run that once) and a release build of `examples/tower_speed.rs`. Rounds alternate the two
sides; each side reports its best of 3 runs per batch (CPU seconds per batch).
"""

import argparse
import os
import re
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ONNX = ROOT / "target" / "reference-bench" / "rn50_image_scheme.onnx"


def onnxruntime_cpu(batches, reps=3):
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(str(ONNX), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    out = {}
    for b in batches:
        x = np.random.default_rng(0).standard_normal((b, 3, 224, 224), dtype=np.float32)
        sess.run(None, {name: x})
        best = float("inf")
        for _ in range(reps):
            start = time.process_time()
            sess.run(None, {name: x})
            best = min(best, time.process_time() - start)
        out[b] = best
    return out


def xsearch_cpu(batches, reps=3):
    env = dict(os.environ, RAYON_NUM_THREADS="1", XSEARCH_BENCH_CLOCK="cpu")
    cmd = [str(ROOT / "target" / "release" / "examples" / "tower_speed"), str(reps)]
    text = subprocess.run(cmd + [str(b) for b in batches], env=env, check=True,
                          capture_output=True, text=True).stdout
    return {int(b): float(ms) / 1e3 for b, ms in re.findall(r"batch\s+(\d+):\s+([\d.]+) ms", text)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", default="8,32")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    print(f"{time.strftime('%Y-%m-%d %H:%M %Z')}, load average {os.getloadavg()[0]:.2f}")
    for r in range(args.rounds):
        ort_s = onnxruntime_cpu(batches)
        xs_s = xsearch_cpu(batches)
        for b in batches:
            print(f"round {r + 1} batch {b:>3}: onnxruntime {b / ort_s[b]:6.2f} images/CPU-s, "
                  f"xsearch {b / xs_s[b]:6.2f}, xsearch/onnxruntime {ort_s[b] / xs_s[b]:.2f}x")
    print(f"{time.strftime('%Y-%m-%d %H:%M %Z')}, load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
