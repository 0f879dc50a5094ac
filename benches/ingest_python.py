#!/usr/bin/env python3
"""The plain-Python ingest pipeline a user would write (issue 17, item 2): Pillow with
`draft()`, open_clip's transform, onnxruntime on the RN50 image tower, a batch at a time.

    /work/venv/bin/python benches/ingest_python.py PHOTOS [--threads 2] [--batch 8]

For every `*.jpg` under PHOTOS (sorted), batch by batch: `Image.open`, `draft("RGB", (224,
224))` (libjpeg-turbo decodes at the smallest 1/2, 1/4 or 1/8 scale keeping both sides >= 224),
`open_clip.image_transform(224, is_train=False)` (bicubic resize, centre crop, RGB, ToTensor,
Normalize), then one `InferenceSession.run` per batch, and L2-normalised embeddings. Threads:
onnxruntime's intra-op pool and torch's (the transform) get --threads; decoding runs on the
main thread, one photo after another, as such a script does.

The model is the ONNX export of `benches/reference_bench.py` (the deterministic RN50 weights of
`fixtures/parity/rn50`, cached under target/reference-bench/, exported on first use). Prints
one JSON line on stdout: images, seconds from the first photo opened to the last batch
embedded ("loop": imports and session creation before it), and the versions used. The
driver, `benches/ingest_bench.py`, also times the whole process.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ONNX = ROOT / "target" / "reference-bench" / "rn50_image_scheme.onnx"


def export_if_missing(threads: int) -> Path:
    """The image tower's ONNX graph, exported by reference_bench.py's code when not cached."""
    if ONNX.exists():
        return ONNX
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import reference_bench

    model, _, torch = reference_bench.build_model(random_init=False)
    torch.set_num_threads(threads)
    return reference_bench.export_onnx(
        model.visual, torch.randn(1, 3, 224, 224), ONNX, True, torch
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)

    import numpy as np
    import onnxruntime as ort
    import open_clip
    import PIL
    import torch
    from PIL import Image

    torch.set_num_threads(args.threads)
    onnx = export_if_missing(args.threads)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(onnx), opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    transform = open_clip.image_transform(224, is_train=False)
    paths = sorted(args.photos.glob("*.jpg"))
    if not paths:
        raise SystemExit(f"{args.photos}: no *.jpg files (make them with benches/make_photos.py)")

    loop_start = time.perf_counter()
    embeddings = []
    for i in range(0, len(paths), args.batch):
        tensors = []
        for path in paths[i : i + args.batch]:
            with Image.open(path) as image:
                image.draft("RGB", (224, 224))
                tensors.append(transform(image))
        batch = torch.stack(tensors).numpy()
        out = session.run(None, {name: batch})[0]
        embeddings.append(out / np.linalg.norm(out, axis=1, keepdims=True))
    end = time.perf_counter()
    count = sum(len(e) for e in embeddings)
    assert count == len(paths), (count, len(paths))
    print(json.dumps({
        "images": count,
        "loop": end - loop_start,
        "threads": args.threads,
        "batch": args.batch,
        "versions": {
            "pillow": PIL.__version__,
            "open_clip": open_clip.__version__,
            "onnxruntime": ort.__version__,
            "torch": torch.__version__,
        },
    }))


if __name__ == "__main__":
    main()
