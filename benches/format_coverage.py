#!/usr/bin/env python3
"""Coverage of xsearch's decoder on odd but valid images: of the files Pillow decodes in a
format xsearch claims (JPEG, PNG, WebP, GIF, BMP, TIFF), how many xsearch decodes too.

    python benches/format_coverage.py CORPUS_DIR [--formats TIFF,BMP]

CORPUS_DIR is searched recursively; the corpus we measure on is Pillow's own test images
(`Tests/images/` of the Pillow 11.3.0 sdist: `pip download --no-binary :all: --no-deps
pillow==11.3.0`). A file counts when Pillow identifies it as one of the formats and `load()`
succeeds. Each is then decoded by `examples/decode_check.rs` (a dev build: dependencies are optimised even there); the
script prints the coverage per format and every failure with xsearch's reason.

Pinned: Pillow==11.3.0 (the decoder that defines "valid" here).
"""

import argparse
import os
import subprocess
import sys
import warnings
from collections import Counter

from PIL import Image

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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus")
    ap.add_argument("--formats", default="TIFF,BMP", help="comma-separated Pillow format names")
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
    run = subprocess.run([exe], input="\n".join(sorted(files)) + "\n", capture_output=True,
                         text=True, check=True)
    total, ok = Counter(), Counter()
    failures = []
    for line in run.stdout.splitlines():
        status, path, detail = line.split("\t", 2)
        fmt = files[path]
        total[fmt] += 1
        if status == "ok":
            ok[fmt] += 1
        else:
            failures.append((fmt, os.path.relpath(path, args.corpus), detail))
    for fmt, path, detail in sorted(failures):
        print(f"FAIL {fmt:4} {path}: {detail}")
    for fmt in sorted(total):
        print(f"{fmt}: {ok[fmt]}/{total[fmt]} ({100 * ok[fmt] / total[fmt]:.1f}%)")
    n, k = sum(total.values()), sum(ok.values())
    print(f"all: {k}/{n} ({100 * k / n:.1f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
