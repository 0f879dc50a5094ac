#!/usr/bin/env python3
"""Ingest of 12 MP JPEGs end to end: `xsearch index` vs the plain-Python pipeline
(`ingest_python.py`), and vs our own image tower alone (`examples/ingest_speed.rs`), in one run
on the same folder (issue 17, item 2).

    /work/venv/bin/python benches/ingest_bench.py [--work target/ingest-bench] [--rounds 3]
        [--threads 2] [--batch 8]

1. Photos: WORK/photos/ gets `make_photos.py`'s 64 photos (4000x3000, 2.9 MB) unless there.
2. Builds (release) the `xsearch` binary and `examples/ingest_speed`, and runs the example
   (`ROUNDS` rounds at batch `--batch`): ingest vs the tower alone, paired in each round. It
   also writes the full-size RN50 model with the deterministic weights of `tests/common` to
   WORK/rn50/ on first use.
3. Alternates, `--rounds` times (the order swapped every round), whole processes on the same
   folder: `xsearch index PHOTOS --index FRESH_TEMP_DIR --model WORK/rn50 --threads N` and
   `ingest_python.py PHOTOS --threads N --batch B`. One unmeasured run of each first (the
   ONNX export, page cache). Both are timed from process start to exit: model loading and
   imports included. The Python script also reports its loop alone (model already loaded),
   against which the ratio is stricter for us (`xsearch` still pays its start-up).

Ratios are images/s of xsearch over Python's, per round, then their median. Load average and
CPU model are printed: on a shared machine only ratios taken within a round mean anything.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from make_photos import make_photo  # noqa: E402


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            return value.strip()
    return "unknown"


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run(cmd: list[str], env: dict | None = None) -> tuple[float, str]:
    """Runs `cmd` to completion, failing loudly; returns wall seconds and stdout."""
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return wall, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=ROOT / "target" / "ingest-bench")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--count", type=int, default=64, help="photos in the folder")
    args = parser.parse_args()
    work = args.work.resolve()
    photos = work / "photos"
    for i in range(args.count):
        path = photos / f"photo-{i:04d}.jpg"
        if not path.exists():
            make_photo(path, i)
    count = len(list(photos.glob("*.jpg")))
    print(f"start {time.strftime('%Y-%m-%d %H:%M %Z')}: {cpu_model()}, {os.cpu_count()} cores, "
          f"load {load()}; {count} photos", flush=True)

    cargo = ["cargo", "build", "--release", "-q", "--bin", "xsearch", "--example", "ingest_speed"]
    subprocess.run(cargo, cwd=ROOT, check=True)
    xsearch = ROOT / "target" / "release" / "xsearch"
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
    b = str(args.batch)
    _, tower = run([str(ROOT / "target/release/examples/ingest_speed"), str(work), str(args.rounds), b, b], env)
    print(f"\n== ingest vs the tower alone (examples/ingest_speed), load {load()}\n{tower}", flush=True)

    model = work / "rn50"
    python = [sys.executable, str(HERE / "ingest_python.py"), str(photos),
              "--threads", str(args.threads), "--batch", b]

    def ours() -> float:
        index = Path(tempfile.mkdtemp(prefix="index-", dir=work))
        try:
            wall, _ = run([str(xsearch), "index", str(photos), "--index", str(index), "--model",
                           str(model), "--threads", str(args.threads), "--quiet"], env)
            _, status = run([str(xsearch), "status", "--index", str(index), "--json"], env)
            images = json.loads(status)["images"]
            if images != count:
                raise SystemExit(f"xsearch indexed {images} of {count} photos")
        finally:
            shutil.rmtree(index)
        return wall

    def theirs() -> tuple[float, dict]:
        wall, out = run(python, env)
        report = json.loads(out.strip().splitlines()[-1])
        assert report["images"] == count, report
        return wall, report

    ours()
    _, report = theirs()
    print(f"== xsearch index vs Python ({args.threads} threads, batch {b}); "
          f"{json.dumps(report['versions'])}")
    print(f"{'round':>5} {'load':>5} {'xsearch':>8} {'python':>8} {'py loop':>8} "
          f"{'/python':>8} {'/py loop':>8}   (images/s; ratios xsearch / python)")
    per_round = []
    for r in range(args.rounds):
        if r % 2 == 0:
            wall = ours()
            py_wall, py = theirs()
        else:
            py_wall, py = theirs()
            wall = ours()
        rates = (count / wall, count / py_wall, count / py["loop"])
        per_round.append((rates[0] / rates[1], rates[0] / rates[2]))
        print(f"{r + 1:>5} {os.getloadavg()[0]:>5.2f} {rates[0]:>8.2f} {rates[1]:>8.2f} "
              f"{rates[2]:>8.2f} {per_round[-1][0]:>7.2f}x {per_round[-1][1]:>7.2f}x", flush=True)
    whole = statistics.median(r[0] for r in per_round)
    loop = statistics.median(r[1] for r in per_round)
    print(f"median: {whole:.2f}x the Python process, {loop:.2f}x its loop alone")
    print(f"end {time.strftime('%Y-%m-%d %H:%M %Z')}: load {load()}")


if __name__ == "__main__":
    main()
