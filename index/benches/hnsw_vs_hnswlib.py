"""hnswlib's side of the HNSW benchmark, and the shared data set.

    /work/venv/bin/python index/benches/hnsw_vs_hnswlib.py generate target/bench
    RAYON_NUM_THREADS=2 cargo bench -p xsearch-index --bench hnsw_vs_hnswlib -- target/bench
    /work/venv/bin/python index/benches/hnsw_vs_hnswlib.py hnswlib target/bench

`generate DIR [POINTS] [hard|easy]` writes, under DIR, raw little-endian f32 files (row-major, no
header) and the exact ground truth, deterministically (numpy PCG64, seed 2026):

    points.f32   POINTS (default 100_000) x 1024 unit vectors
    queries.f32    1_000 x 1024 unit vectors (same distribution, not in `points`)
    truth.u32      1_000 x 10 indices into `points`, exact top 10 by dot product

The points are clustered, with a low intrinsic dimension as CLIP embeddings have: 1000 cluster
centres in a latent space (64-d or 12-d, below), gaussian offsets around them, lifted to 1024-d by a random
orthonormal map, plus small isotropic 1024-d noise, then normalised. (Isotropic noise alone
in 1024-d makes every neighbour equally far and no graph index useful.)

Two kinds of set share that recipe. `hard` (the default) spreads each cluster over all 64 latent
dimensions: a point's neighbours are many and nearly equidistant, and hnswlib needs ef ~416 for
recall@10 0.95 on 100k. `easy` keeps the clusters in 12 latent dimensions, where neighbourhoods
are well separated, as real CLIP embeddings are: hnswlib reaches recall@10 0.98 around ef 32.

`hnswlib DIR [EF,EF,...]` builds hnswlib's index (space "ip", M 16, ef_construction 200, or
`EF_CONSTRUCTION` from the environment, which the Rust side reads too: set it to 150, xsearch's
default, for both to build at the same one) with 2 threads and saves it as
DIR/hnswlib-M16-ef<EF_CONSTRUCTION>.bin (a later run loads that file instead, so query sweeps
can be interleaved with xsearch's: delete it to time the build again), then sweeps ef (all of
EFS, or the ones given) over the same 1000 queries with 2 threads, 3 repetitions each, and
prints one `key value` line per figure (median query wall time).
"""
import os
import sys
import time
from pathlib import Path

import numpy as np

POINTS, QUERIES, DIM, CLUSTERS, K = 100_000, 1_000, 1024, 1_000, 10
# Latent dimensions of the clusters, per kind of set.
LATENT = {"hard": 64, "easy": 12}
# The Rust side sweeps the same values (`EFS` in hnsw_vs_hnswlib.rs): fine steps at the low end,
# where the easy set crosses recall 0.95 and 0.98.
EFS = (10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352,
       384, 416, 448, 480, 512)
THREADS = 2


def generate(out: Path, count: int, kind: str):
    dims = LATENT[kind]
    rng = np.random.default_rng(2026)
    lift, _ = np.linalg.qr(rng.normal(size=(DIM, dims)))  # orthonormal columns
    centres = rng.normal(size=(CLUSTERS, dims))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)

    def sample(n):
        latent = centres[rng.integers(0, CLUSTERS, n)] + 0.25 * rng.normal(size=(n, dims))
        x = latent @ lift.T + 0.005 * rng.normal(size=(n, DIM))
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    points, queries = sample(count), sample(QUERIES)
    truth = np.empty((QUERIES, K), dtype=np.uint32)
    for start in range(0, QUERIES, 100):
        scores = queries[start : start + 100] @ points.T
        top = np.argpartition(-scores, K, axis=1)[:, :K]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
        truth[start : start + 100] = np.take_along_axis(top, order, axis=1)
    out.mkdir(parents=True, exist_ok=True)
    points.tofile(out / "points.f32")
    queries.tofile(out / "queries.f32")
    truth.tofile(out / "truth.u32")
    print(f"wrote {count} {kind} points, {QUERIES} queries and their exact top {K} to {out}")


def load(out: Path):
    points = np.fromfile(out / "points.f32", dtype=np.float32).reshape(-1, DIM)
    queries = np.fromfile(out / "queries.f32", dtype=np.float32).reshape(QUERIES, DIM)
    truth = np.fromfile(out / "truth.u32", dtype=np.uint32).reshape(QUERIES, K)
    return points, queries, truth


def bench_hnswlib(out: Path, efs=EFS):
    import hnswlib

    points, queries, truth = load(out)
    index = hnswlib.Index(space="ip", dim=DIM)
    ef_construction = int(os.environ.get("EF_CONSTRUCTION", "200"))
    saved = out / f"hnswlib-M16-ef{ef_construction}.bin"
    if saved.exists():
        index.load_index(str(saved), max_elements=len(points))
        print(f"hnswlib loaded {saved}", flush=True)
    else:
        index.init_index(max_elements=len(points), M=16, ef_construction=ef_construction, random_seed=1)
        index.set_num_threads(THREADS)
        start = time.perf_counter()
        index.add_items(points, np.arange(len(points)), num_threads=THREADS)
        seconds = time.perf_counter() - start
        print(f"hnswlib points {len(points)} ef_construction {ef_construction} build_s {seconds:.3f}",
              flush=True)
        index.save_index(str(saved))
    for ef in efs:
        index.set_ef(ef)
        times = []
        for _ in range(3):
            start = time.perf_counter()
            labels, _ = index.knn_query(queries, k=K, num_threads=THREADS)
            times.append(time.perf_counter() - start)
        recall = np.mean([len(set(a) & set(b)) / K for a, b in zip(labels, truth)])
        seconds = float(np.median(times))
        print(f"hnswlib ef {ef} recall {recall:.4f} qps {QUERIES / seconds:.1f}", flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["generate"] and len(sys.argv) in (3, 4, 5):
        kind = sys.argv[4] if len(sys.argv) == 5 else "hard"
        if kind not in LATENT:
            sys.exit(f"{kind}: not a kind of set\n\nUse hard or easy.")
        generate(Path(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) >= 4 else POINTS, kind)
    elif sys.argv[1:2] == ["hnswlib"] and len(sys.argv) in (3, 4):
        efs = tuple(int(e) for e in sys.argv[3].split(",")) if len(sys.argv) == 4 else EFS
        bench_hnswlib(Path(sys.argv[2]), efs)
    else:
        sys.exit("usage: hnsw_vs_hnswlib.py generate DIR [POINTS] [hard|easy] | hnswlib DIR [EF,EF,...]")
