"""Decoding one 12 MP HEIC: xsearch (system libheif, loaded at run time) vs pillow-heif.

    /work/venv-heif/bin/python benches/heif_bench.py [--photo PATH] [--reps 15] [--rounds 3]

Unless --photo is given, writes target/bench-formats/photo_12mp.heic (4032x3024, an iPhone's
12 MP, made by `fixtures/formats/make_formats.py --photo`). Builds `examples/decode_speed` (the
dev profile, whose dependencies are optimised: the work is libheif's, a system library built
with the distribution's optimisation, and our side only copies rows) and runs it on the same file, interleaved with pillow-heif's timings, `--rounds`
times; prints the median of each side over all rounds and the ratio ours / pillow-heif's.

pillow-heif's side is what a Python user runs: `Image.open` then `load()` (decode to 8-bit RGB,
transforms applied), with pillow-heif's bundled libheif and libde265. Both sides decode with
libheif's default threads.
"""

import argparse
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pillow_heif
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def pillow_heif_ms(path: Path, reps: int) -> list[float]:
    times = []
    for i in range(reps + 1):
        start = time.perf_counter()
        with Image.open(path) as image:
            image.load()
            size = image.size
        elapsed = (time.perf_counter() - start) * 1e3
        assert size == (4032, 3024), size
        if i > 0:  # the first run warms up imports and caches
            times.append(elapsed)
    return times


def ours_ms(binary: Path, path: Path, reps: int) -> float:
    out = subprocess.run(
        [str(binary), str(path), str(reps)], check=True, capture_output=True, text=True
    ).stdout.split()
    assert out[1] == "4032x3024", out
    return float(out[0])


def cpu_model() -> str:
    for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path)
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    pillow_heif.register_heif_opener()
    photo = args.photo or ROOT / "target/bench-formats/photo_12mp.heic"
    if not photo.exists():
        sys.path.insert(0, str(ROOT / "fixtures/formats"))
        from make_formats import photo_12mp

        photo.parent.mkdir(parents=True, exist_ok=True)
        photo_12mp(photo.parent)
    subprocess.run(
        ["cargo", "build", "--example", "decode_speed"], cwd=ROOT, check=True
    )
    binary = ROOT / "target/debug/examples/decode_speed"
    ours, theirs = [], []
    for _ in range(args.rounds):
        ours.append(ours_ms(binary, photo, args.reps))
        theirs.extend(pillow_heif_ms(photo, args.reps))
    ours_median, theirs_median = statistics.median(ours), statistics.median(theirs)
    print(f"photo: {photo} ({photo.stat().st_size / 1e6:.2f} MB, 4032x3024)")
    print(f"cpu: {cpu_model()}; {time.strftime('%Y-%m-%d')}")
    print(f"pillow-heif {pillow_heif.__version__}: {pillow_heif.libheif_info()}")
    print(f"xsearch (system libheif) {ours_median:.1f} ms")
    print(f"pillow-heif              {theirs_median:.1f} ms")
    print(f"ratio ours / pillow-heif {ours_median / theirs_median:.2f}")


if __name__ == "__main__":
    main()
