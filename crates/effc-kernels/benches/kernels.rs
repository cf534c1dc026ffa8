//! Micro-kernel throughput on the matrix shapes of EfficientNet-B0's 1×1 convolutions.
//! Criterion reports elements per second; an element is one floating-point operation
//! (two per multiply-accumulate), so the figure reads as FLOP/s.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use effc_kernels::gemm::GemmParams;
use effc_kernels::{ActKind, Activation, Isa};

/// (name, rows, k, n): pixels × input channels × output channels.
const SHAPES: [(&str, usize, usize, usize); 6] = [
    ("b0.block3.project 56x56", 56 * 56, 144, 24),
    ("b0.block1.expand one 112-pixel row", 112, 16, 96),
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
            panel_stride: effc_kernels::gemm::PANEL,
            ldo: n,
            ldr: n,
            bias: bias.as_ptr(),
            b_scale: std::ptr::null(),
            a_taps: std::ptr::null(),
            act: Activation::new(ActKind::Swish),
            request_next_panel: false,
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

criterion_group!(benches, gemm, depthwise);
criterion_main!(benches);

/// (name, channels, input width, kernel, stride): depthwise rows of B0.
const DW_SHAPES: [(&str, usize, usize, usize, usize); 9] = [
    ("b0.block5 28x28 k3 s2", 240, 28, 3, 2),
    ("b0.block6 14x14 k3", 480, 14, 3, 1),
    ("b0.block15 7x7 k3", 1152, 7, 3, 1),
    ("b0.block0 112x112 k3", 32, 112, 3, 1),
    ("b0.block1 112x112 k3 s2", 96, 112, 3, 2),
    ("b0.block2 56x56 k3", 144, 56, 3, 1),
    ("b0.block3 56x56 k5 s2", 144, 56, 5, 2),
    ("b0.block4 28x28 k5", 240, 28, 5, 1),
    ("b0.block13 7x7 k5", 1152, 7, 5, 1),
];

/// The first 64-byte aligned element of `v` (which has 16 spare elements at the end).
fn aligned(v: &[f32]) -> *const f32 {
    let skip = v.as_ptr().align_offset(64);
    v[skip..].as_ptr()
}

fn depthwise(c: &mut Criterion) {
    for (name, ch, w, k, s) in DW_SHAPES {
        let pad = k / 2;
        let ow = (w + 2 * pad - k) / s + 1;
        let mut group = c.benchmark_group(format!("depthwise/{name}"));
        group.throughput(Throughput::Elements((2 * ow * ch * k * k) as u64));
        // Rows 64-byte aligned, as in a compiled model's arena.
        let rows: Vec<Vec<f32>> = (0..k).map(|i| vec![0.01 * i as f32; w * ch + 16]).collect();
        let ptrs: Vec<*const f32> = rows.iter().map(|r| aligned(r)).collect();
        let weights = vec![0.1f32; k * k * ch];
        let bias = vec![0.0f32; ch];
        let mut out = vec![0.0f32; ow * ch + 16];
        let skip = out.as_ptr().align_offset(64);
        let out_ptr = out[skip..].as_mut_ptr();
        let mut sums = vec![0.0f32; ch];
        for act in [Activation::IDENTITY, Activation::new(ActKind::Swish)] {
            let p = effc_kernels::DwParams {
                c: ch,
                ld: ch,
                win: effc_kernels::RowWindow { w, ow, kh: k, kw: k, sw: s, dw: 1, pw: pad },
                weights: weights.as_ptr(),
                bias: bias.as_ptr(),
                act,
                prefetch_bytes: 0,
            };
            for isa in Isa::ALL.into_iter().filter(|i| i.is_supported()) {
                let f = isa.depthwise().unwrap();
                group.bench_function(format!("{}/{:?}", isa.name(), act.kind), |bench| {
                    // SAFETY: k rows of w·ch values, an output row of ow·ch, ch sums.
                    bench.iter(|| unsafe { f(ptrs.as_ptr(), out_ptr, sums.as_mut_ptr(), &p, std::ptr::null()) })
                });
            }
        }
        group.finish();
    }
}
