//! Clustered unit vectors like real embeddings, from a reproducible generator: the data of
//! the recall tests.

/// Noise per dimension around a cluster centre.
const NOISE: f32 = 0.15;

/// splitmix64: a dependency-free, reproducible generator.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 + 0.5) / (1u64 << 24) as f32
    }

    /// Box-Muller.
    pub fn normal(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }
}

pub fn normalize(v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / norm).collect()
}

/// A point near one of the cluster centres (unit vectors), with N(0, NOISE²) noise per
/// dimension. The noise sets the difficulty: on this distribution hnswlib (M 16,
/// ef_construction 200) reaches recall@10 0.988 / 0.995 / 1.000 at ef 36 / 64 / 128; at noise
/// 0.2, 0.918 at ef 64; at 0.35 the points are near-uniform on the sphere, unlike embeddings,
/// and it falls to 0.746 (`benches/hnswlib_recall.py`). This crate measured 0.808 there.
pub fn sample(rng: &mut Rng, centres: &[Vec<f32>]) -> Vec<f32> {
    let centre = &centres[(rng.next_u64() % centres.len() as u64) as usize];
    normalize(centre.iter().map(|c| c + NOISE * rng.normal()).collect())
}

/// `count` unit centres in `dim` dimensions.
pub fn centres(rng: &mut Rng, count: usize, dim: usize) -> Vec<Vec<f32>> {
    (0..count)
        .map(|_| {
            normalize(
                (0..dim)
                    .map(|_| rng.normal() / (dim as f32).sqrt())
                    .collect(),
            )
        })
        .collect()
}
