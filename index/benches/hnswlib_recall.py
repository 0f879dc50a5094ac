"""Reference recall of hnswlib on the distribution of tests/recall.rs (numpy's RNG, so the
points differ but the distribution is the same): picks a noise level where recall is neither
trivial nor hopeless. Run: /work/venv/bin/python index/benches/hnswlib_recall.py"""
import hnswlib
import numpy as np

DIM, POINTS, CLUSTERS, QUERIES, K = 64, 20000, 200, 200, 10


def run(rng, noise):
    centres = rng.normal(size=(CLUSTERS, DIM))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)

    def sample(n):
        x = centres[rng.integers(0, CLUSTERS, n)] + noise * rng.normal(size=(n, DIM))
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    points, queries = sample(POINTS), sample(QUERIES)
    index = hnswlib.Index(space="ip", dim=DIM)
    index.init_index(max_elements=POINTS, M=16, ef_construction=200, random_seed=1)
    index.add_items(points, np.arange(POINTS))
    exact = np.argsort(-(queries @ points.T), axis=1)[:, :K]
    for ef in (36, 64, 128):
        index.set_ef(ef)
        labels, _ = index.knn_query(queries, k=K)
        recall = np.mean([len(set(a) & set(b)) / K for a, b in zip(labels, exact)])
        print(f"noise {noise}: ef {ef} recall@{K} {recall:.3f}")


if __name__ == "__main__":
    rng = np.random.default_rng(7)
    for noise in (0.15, 0.2, 0.35):
        run(rng, noise)
