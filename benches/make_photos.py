"""Real-size test photos for the ingest benchmarks (issue 4): 4000x3000 JPEGs, quality 90,
4:2:0 chroma (Pillow's defaults), gradients, rings and stripes plus sensor-like noise, so that
the entropy-coded data is the size of a real 12 MP photo's (about 2.9 MB), not the few hundred
KB a smooth synthetic picture compresses to.

    /work/venv/bin/python benches/make_photos.py DIR [COUNT]

Writes DIR/photo-0000.jpg ... (COUNT, default 64), skipping files already there. Photo `i`
has its rings centred by seed `i`; the same seed always gives the same bytes.
"""

import sys
from pathlib import Path

import numpy as np
from PIL import Image


def make_photo(path: Path, seed: int = 0, width: int = 4000, height: int = 3000) -> None:
    rng = np.random.default_rng(seed + 4)
    cx, cy = (0.3, 0.6) if seed == 0 else rng.uniform(0.1, 0.9, 2)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    fx, fy = x / width, y / height
    ring = np.sin(np.hypot((fx - cx) * width / height, fy - cy) * 40.0) * 0.5 + 0.5
    stripe = np.sin((x + 2 * y) / 37.0) * 0.5 + 0.5
    rgb = np.stack(
        [150 * fx + 90 * ring, 120 * fy + 100 * stripe, 60 + 120 * ring * stripe], axis=-1
    )
    rgb += rng.normal(0.0, 6.0, rgb.shape).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(path, quality=90)


def main() -> None:
    if len(sys.argv) not in (2, 3):
        raise SystemExit(__doc__)
    folder = Path(sys.argv[1])
    count = int(sys.argv[2]) if len(sys.argv) == 3 else 64
    for i in range(count):
        path = folder / f"photo-{i:04d}.jpg"
        if not path.exists():
            make_photo(path, seed=i)


if __name__ == "__main__":
    main()
