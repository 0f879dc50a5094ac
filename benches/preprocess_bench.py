"""Preprocessing one 12 MP JPEG: xsearch vs Pillow `draft()` + open_clip's transform (issue 4).

    /work/venv/bin/python benches/preprocess_bench.py [--photo PATH] [--reps 15] [--rounds 3]

Unless --photo is given, writes target/bench/photo-12mp.jpg (`make_photos.py`'s photo 0:
4000x3000, quality 90, 4:2:0, 2.9 MB). Builds `examples/preprocess_speed` (release) and runs it on the
same file with 1 and 2 threads, and with 1 thread without libjpeg-turbo (`XSEARCH_TURBOJPEG=0`:
jpeg-decoder), interleaved with the Pillow timings, `--rounds` times; prints the median of each
side over all rounds and the ratio ours / Pillow's, for our reduced-DCT path (what ingest
does), its decoding alone, and, for comparison, our full-size decode.

Pillow's side is what open_clip users run: `Image.open`, `draft("RGB", (size, size))` (libjpeg
decodes at the smallest 1/2, 1/4 or 1/8 scale that keeps both sides >= size), then
`open_clip.image_transform(size, is_train=False)` (bicubic resize, centre crop, RGB, ToTensor,
Normalize). Ours keeps twice the size on the short side (see `min_source_side`), so at 12 MP it
decodes at 1/4 where Pillow decodes at 1/8.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

from make_photos import make_photo

ROOT = Path(__file__).resolve().parent.parent


def pillow_ms(path: Path, size: int, reps: int) -> list[float]:
    import open_clip
    import torch

    torch.set_num_threads(1)
    transform = open_clip.image_transform(size, is_train=False)
    times = []
    for i in range(reps + 1):
        start = time.perf_counter()
        with Image.open(path) as image:
            image.draft("RGB", (size, size))
            tensor = transform(image)
        elapsed = (time.perf_counter() - start) * 1e3
        assert tuple(tensor.shape) == (3, size, size)
        if i > 0:  # the first run warms up imports and caches
            times.append(elapsed)
    return times


def ours_ms(binary: Path, path: Path, size: int, reps: int, threads: int, turbo: bool = True) -> dict[str, float]:
    """Median ms of the example's `scaled` (what ingest does), `full` (no DCT scaling) and
    `decode` (the scaled path's decoding alone) paths; `turbo=False` turns libjpeg-turbo off."""
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    if not turbo:
        env["XSEARCH_TURBOJPEG"] = "0"
    out = subprocess.run(
        [str(binary), str(path), str(reps), str(size)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    times = {line.split()[0]: float(line.split()[1]) for line in out.splitlines()}
    if set(times) != {"scaled", "full", "decode"}:
        raise SystemExit(f"unexpected output from the example:\n{out}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, default=ROOT / "target/bench/photo-12mp.jpg")
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()

    if not args.photo.exists():
        make_photo(args.photo)
    with Image.open(args.photo) as image:
        print(f"photo: {args.photo} {image.size[0]}x{image.size[1]}, "
              f"{args.photo.stat().st_size / 1e6:.2f} MB", file=sys.stderr)
    subprocess.run(
        ["cargo", "build", "--release", "--quiet", "--example", "preprocess_speed"],
        cwd=ROOT,
        check=True,
    )
    binary = ROOT / "target/release/examples/preprocess_speed"

    pillow, ours, rust = [], {1: [], 2: []}, []
    for _ in range(args.rounds):
        pillow.append(statistics.median(pillow_ms(args.photo, args.size, args.reps)))
        for threads, runs in ours.items():
            runs.append(ours_ms(binary, args.photo, args.size, args.reps, threads))
        rust.append(ours_ms(binary, args.photo, args.size, args.reps, 1, turbo=False))
    pillow_median = statistics.median(pillow)
    print(f"load average (1 min): {os.getloadavg()[0]:.2f}")
    print(f"pillow draft + open_clip transform: {pillow_median:.2f} ms "
          f"(median over {args.rounds} rounds of {args.reps}; rounds: "
          f"{', '.join(f'{t:.1f}' for t in pillow)})")
    for threads, runs in [*ours.items(), ("1 (XSEARCH_TURBOJPEG=0)", rust)]:
        for path, label in (("scaled", "reduced decode + preprocess"), ("decode", "reduced decode alone"),
                            ("full", "full-size decode + preprocess")):
            times = [run[path] for run in runs]
            median = statistics.median(times)
            print(f"xsearch {label}, {threads} thread(s): {median:.2f} ms "
                  f"(rounds: {', '.join(f'{t:.1f}' for t in times)}), "
                  f"ratio {median / pillow_median:.2f}x pillow")


if __name__ == "__main__":
    main()
