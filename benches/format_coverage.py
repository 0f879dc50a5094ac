#!/usr/bin/env python3
"""Coverage of xsearch's decoder on odd but valid images: of the files Pillow decodes in a
format xsearch claims (JPEG, PNG, WebP, GIF, BMP, TIFF), how many xsearch decodes too.

    python benches/format_coverage.py CORPUS_DIR [--formats TIFF,BMP]

CORPUS_DIR is searched recursively; the corpus we measure on is Pillow's own test images
(`Tests/images/` of the Pillow 11.3.0 sdist: `pip download --no-binary :all: --no-deps
pillow==11.3.0`). A file counts when Pillow identifies it as one of the formats and `load()`
succeeds. Each is then decoded by `examples/decode_check.rs` (a dev build: dependencies are optimised even there); the
script prints the coverage per format and every failure with xsearch's reason. With
`--compare`, every file xsearch decodes is also compared with Pillow's pixels (after
`exif_transpose`, as RGB or RGBA): files whose size differs or whose mean absolute difference
is above 4 levels are listed as DIFF (lossy JPEG-in-TIFF differs by decoder, by a level or two).

Pinned: Pillow==11.3.0 (the decoder that defines "valid" here), numpy==2.4.6 (for --compare).
"""

import argparse
import os
import subprocess
import sys
import tempfile
import warnings
from collections import Counter

import numpy as np
from PIL import Image, ImageOps

CLAIMED = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")


def pillow_decodes(path):
    """Pillow's format name for a file it opens and fully decodes, else None."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                fmt = im.format
                im.load()
                return fmt
    except Exception:
        return None


def compare(path, ours_png):
    """None when xsearch's pixels agree with Pillow's, else what differs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            ours = Image.open(ours_png)
            theirs = np.asarray(im.convert(ours.mode), dtype=np.int16)
    ours = np.asarray(ours, dtype=np.int16)
    if ours.shape != theirs.shape:
        return f"size {ours.shape} vs Pillow's {theirs.shape}"
    mean = float(np.abs(ours - theirs).mean())
    return f"mean difference {mean:.2f} levels" if mean > 4 else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus")
    ap.add_argument("--formats", default="TIFF,BMP", help="comma-separated Pillow format names")
    ap.add_argument("--compare", action="store_true", help="compare pixels with Pillow's")
    args = ap.parse_args()
    wanted = set(args.formats.upper().split(","))

    files = {}
    for root, _, names in os.walk(args.corpus):
        for name in sorted(names):
            path = os.path.join(root, name)
            fmt = pillow_decodes(path)
            if fmt in CLAIMED and fmt in wanted:
                files[os.path.abspath(path)] = fmt
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run(["cargo", "build", "--quiet", "--example", "decode_check"],
                   cwd=repo, check=True)
    exe = os.path.join(repo, "target", "debug", "examples", "decode_check")
    saved = tempfile.mkdtemp(prefix="format_coverage_") if args.compare else None
    run = subprocess.run([exe] + ([saved] if saved else []), input="\n".join(sorted(files)) + "\n",
                         capture_output=True, text=True, check=True)
    total, ok = Counter(), Counter()
    failures, diffs = [], []
    for n, line in enumerate(run.stdout.splitlines()):
        status, path, detail = line.split("\t", 2)
        fmt = files[path]
        total[fmt] += 1
        if status == "ok":
            ok[fmt] += 1
            if saved:
                diff = compare(path, os.path.join(saved, f"{n}.png"))
                if diff:
                    diffs.append((fmt, os.path.relpath(path, args.corpus), diff))
        else:
            failures.append((fmt, os.path.relpath(path, args.corpus), detail))
    for fmt, path, detail in sorted(failures):
        print(f"FAIL {fmt:4} {path}: {detail}")
    for fmt, path, detail in sorted(diffs):
        print(f"DIFF {fmt:4} {path}: {detail}")
    for fmt in sorted(total):
        print(f"{fmt}: {ok[fmt]}/{total[fmt]} ({100 * ok[fmt] / total[fmt]:.1f}%)")
    n, k = sum(total.values()), sum(ok.values())
    print(f"all: {k}/{n} ({100 * k / n:.1f}%)")
    if saved:
        print(f"pixels: {k - len(diffs)}/{k} decoded files within 4 levels of Pillow's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
