//! Micro-kernel throughput on the matrix shapes of EfficientNet-B0's 1×1 convolutions.
//! Criterion reports elements per second; an element is one floating-point operation
//! (two per multiply-accumulate), so the figure reads as FLOP/s.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use effc_kernels::gemm::GemmParams;
use effc_kernels::{ActKind, Activation, Isa};

/// (name, rows, k, n): pixels × input channels × output channels.
const SHAPES: [(&str, usize, usize, usize); 4] = [
    ("b0.block2.expand 56x56", 56 * 56, 24, 144),
    ("b0.block4.project 28x28", 28 * 28, 240, 40),
    ("b0.block7.expand 14x14", 14 * 14, 80, 480),
    ("b0.head 7x7", 7 * 7, 320, 1280),
];

fn gemm(c: &mut Criterion) {
    for (name, rows, k, n) in SHAPES {
        let mut group = c.benchmark_group(format!("gemm/{name}"));
        group.throughput(Throughput::Elements((2 * rows * k * n) as u64));
        let a = vec![0.5f32; rows * k];
        let b = vec![0.25f32; k * n];
        let bias = vec![0.1f32; n];
        let mut out = vec![0.0f32; rows * n];
        let p = GemmParams {
            k,
            n,
            lda: k,
            ldb: n,
            ldo: n,
            ldr: n,
            bias: bias.as_ptr(),
            act: Activation::new(ActKind::Swish),
        };
        for isa in Isa::ALL.into_iter().filter(|i| i.is_supported()) {
            let f = isa.gemm().unwrap();
            group.bench_function(isa.name(), |bench| {
                // SAFETY: the buffers have exactly the sizes the params describe.
                bench.iter(|| unsafe {
                    f(a.as_ptr(), b.as_ptr(), out.as_mut_ptr(), std::ptr::null(), rows, &p, std::ptr::null())
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, gemm);
criterion_main!(benches);
