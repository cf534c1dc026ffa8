//! One compiled MBConv block of EfficientNet-B0 (block 4: 40 → 240 → 40 channels, 5×5
//! depthwise, squeeze-excite, residual, at 28×28) on every kernel path this CPU has.
//! Elements are floating-point operations, so criterion's throughput reads as FLOP/s.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use effc_models::family::{Act, MbConvSpec, SeStyle, Weights, mbconv};
use effc_models::writer::{GraphBuilder, encode};
use effc_onnx::proto::tensor_proto::DataType;

fn block4() -> Vec<u8> {
    let spec = MbConvSpec {
        c_in: 40,
        c_out: 40,
        expand_ratio: 6,
        expanded: None,
        kernel: 5,
        stride: 1,
        se: Some(10),
        act: Act::Swish,
        se_style: SeStyle::Conv,
    };
    let mut b = GraphBuilder::new(17);
    let x = b.input("x", DataType::Float, &[1.into(), 40.into(), 28.into(), 28.into()]);
    let y = mbconv(&mut b, &mut Weights::new(4), &x, &spec);
    b.output(&y);
    encode(&b.build())
}

fn bench(c: &mut Criterion) {
    let bytes = block4();
    let mut group = c.benchmark_group("mbconv/b0.block4 28x28");
    for kernels in effc::Kernels::EXPLICIT.into_iter().filter(|k| k.is_supported()) {
        let opts = effc::Options { kernels, ..Default::default() };
        let compiled = effc::compile_bytes(bytes.clone(), None, &opts).expect("block 4 compiles");
        group.throughput(Throughput::Elements(2 * compiled.summary.macs));
        let model = compiled.model().unwrap();
        let input = effc::input::seeded_noise(&model.inputs()[0].shape, 0);
        let mut out = vec![0f32; model.outputs()[0].shape.iter().product()];
        let x = input.to_f32_vec();
        group.bench_function(kernels.name(), |bench| {
            bench.iter(|| model.run_into(&[effc::TensorRef::F32(&x)], &mut [effc::TensorMut::F32(&mut out)]).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
