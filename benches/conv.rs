//! Every distinct RN50 convolution at batch 8: `xsearch::kernels` (each applicable algorithm)
//! against candle's stock `conv2d`, in one run. Throughput is declared in direct-convolution
//! flops (2·MACs), so criterion's "elem/s" reads as FLOP/s.

#[path = "../tests/common/mod.rs"]
mod common;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use candle_core::{Device, Tensor};
use xsearch::kernels::{Algorithm, Conv2d};

const BATCH: usize = 8;

fn random(len: usize, seed: u32) -> Vec<f32> {
    (0..len as u32)
        .map(|i| ((i.wrapping_mul(2_654_435_761) ^ seed) % 2001) as f32 / 1000.0 - 1.0)
        .collect()
}

fn conv(c: &mut Criterion) {
    let mut seen = Vec::new();
    for tc in common::rn50_convs() {
        let s = tc.shape;
        if seen.contains(&(s, tc.size)) {
            continue;
        }
        seen.push((s, tc.size));
        let (n, size) = (BATCH, tc.size);
        let (oh, ow) = s.output_size(size, size).expect("RN50 shapes fit");
        let mut group = c.benchmark_group(format!(
            "conv {}->{} {}x{}/{} @{size}",
            s.in_c, s.out_c, s.kh, s.kw, s.stride
        ));
        group.sample_size(10);
        group.throughput(Throughput::Elements(s.flops(n, size, size) as u64));
        let w = random(s.out_c * s.in_c * s.kh * s.kw, 1);
        let bias = random(s.out_c, 2);
        let x = random(n * size * size * s.in_c, 3);
        let mut out = vec![0.0; n * oh * ow * s.out_c];
        let algorithms: &[Algorithm] = if s.kh == 3 && s.stride == 1 {
            &[
                Algorithm::Gemm,
                Algorithm::WinogradF2,
                Algorithm::WinogradF4,
            ]
        } else {
            &[Algorithm::Gemm]
        };
        for &algorithm in algorithms {
            let conv =
                Conv2d::with_algorithm(&w, &bias, s, algorithm).expect("RN50 shapes are valid");
            group.bench_function(BenchmarkId::new("xsearch", format!("{algorithm:?}")), |b| {
                b.iter(|| {
                    conv.forward(&x, n, size, size, None, true, &mut out)
                        .expect("sized buffers")
                })
            });
        }
        let dev = Device::Cpu;
        let xt = Tensor::from_vec(x.clone(), (n, s.in_c, size, size), &dev).expect("sized");
        let wt = Tensor::from_vec(w.clone(), (s.out_c, s.in_c, s.kh, s.kw), &dev).expect("sized");
        group.bench_function("candle", |b| {
            b.iter(|| {
                xt.conv2d(&wt, s.padding, s.stride, 1, 1)
                    .expect("valid conv")
            })
        });
        group.finish();
    }
}

criterion_group!(benches, conv);
criterion_main!(benches);
