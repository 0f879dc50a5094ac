#!/usr/bin/env python3
"""How long `xsearch index --watch` takes to bring a change to readers: from the moment a file
is written (or renamed, or deleted) to the moment the watcher has committed and published it
(its `--json` record for the change set is printed after the checkpoint, so a `xsearch query`
in another process sees the change from then on). Also how long SIGTERM takes to stop it.
Python standard library only.

    cargo build --release --bin xsearch -p xsearch-cli && cargo build --release -p xsearch-shapes
    python3 benches/watch_latency.py [PHOTOS]    # default 2000 photos of the shapes world

With the fixture model `shapes-tiny`, so the figures are the watcher's own costs (the debounce,
1 s by default, the walk of the changed paths, hashing, the checkpoint that publishes the view)
plus a tiny model's embedding: with RN50 add the decoding and embedding of each new or changed
photo, and nothing to a renamed one (its vector is reused).
"""

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# XSEARCH_BIN / SHAPES_BIN override the binaries (e.g. target/debug/... without a release build).
XSEARCH = Path(os.environ.get("XSEARCH_BIN", ROOT / "target" / "release" / "xsearch"))
SHAPES = Path(os.environ.get("SHAPES_BIN", ROOT / "target" / "release" / "xsearch-shapes"))
MODEL = ROOT / "fixtures" / "models" / "shapes-tiny"
ROUNDS = 5


def main():
    photos_n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    work = Path(tempfile.mkdtemp(prefix="watch-latency-"))
    try:
        photos, spare = work / "photos", work / "spare"
        quiet = {"check": True, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        subprocess.run([SHAPES, photos, str(photos_n), "--seed", "7"], **quiet)
        subprocess.run([SHAPES, spare, str(ROUNDS), "--seed", "8"], **quiet)
        spares = sorted(p for p in spare.iterdir() if p.suffix in (".png", ".jpg"))
        watcher = subprocess.Popen(
            [XSEARCH, "--json", "--model", MODEL, "--index", work / "index", "index", "--watch",
             photos],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        started = time.monotonic()
        initial = json.loads(watcher.stdout.readline())
        print(f"initial pass: {initial['added']} photos in {time.monotonic() - started:.1f} s "
              f"(the pass itself: {initial['seconds']:.1f} s)")

        def timed(change):
            t0 = time.monotonic()
            change()
            record = json.loads(watcher.stdout.readline())
            return time.monotonic() - t0, record

        for name, change in [
            ("new file", lambda i: shutil.copy(spares[i], photos / f"new-{i}{spares[i].suffix}")),
            ("rename", lambda i: os.rename(photos / f"new-{i}{spares[i].suffix}",
                                           photos / f"renamed-{i}{spares[i].suffix}")),
            ("delete", lambda i: os.remove(photos / f"renamed-{i}{spares[i].suffix}")),
        ]:
            latencies, passes = [], []
            for i in range(ROUNDS):
                latency, record = timed(lambda: change(i))
                assert record["pass"] == "changes", record
                latencies.append(latency)
                passes.append(record["seconds"])
                counts = {k: record[k] for k in ("added", "reused", "removed")}
            print(f"{name}: change to published {statistics.median(latencies):.2f} s median "
                  f"(min {min(latencies):.2f}, max {max(latencies):.2f}); the pass itself "
                  f"{statistics.median(passes) * 1000:.0f} ms median; last counts {counts}")
        t0 = time.monotonic()
        watcher.send_signal(signal.SIGTERM)
        code = watcher.wait()
        print(f"SIGTERM to exit: {time.monotonic() - t0:.2f} s, exit status {code}")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
