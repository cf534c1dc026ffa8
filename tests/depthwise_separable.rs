//! Depthwise-separable blocks whose pointwise conv has its own activation (MobileNetV1,
//! LCNet; with and without squeeze-excite) fuse into MBConv super-ops without expansion,
//! the activation in the projection's epilogue, and agree with tract on every kernel path.

mod common;

use effc::compare::Comparison;
use effc_models::family::{Act, Exporter, Weights, activation, conv_bn_styled, depthwise_separable_styled};
use effc_models::writer::{GraphBuilder, attr_int};
use effc_onnx::proto::ModelProto;
use effc_onnx::proto::tensor_proto::DataType;

/// An LCNet-like net: stem, depthwise-separable blocks (relu, then hard-swish with SE),
/// pooling, a 1×1 conv after the pool, the classifier.
fn net(style: Exporter, seed: u64) -> ModelProto {
    let mut b = GraphBuilder::new(style.opset());
    let mut w = Weights::new(seed);
    let x = b.input("input", DataType::Float, &[1.into(), 3.into(), 48.into(), 48.into()]);
    let mut y = conv_bn_styled(&mut b, &mut w, &x, [3, 16, 3, 2, 1], style);
    y = activation(&mut b, &y, Act::HardSwish);
    let blocks = [
        ([16, 32, 3, 1], None, Act::Relu),
        ([32, 64, 3, 2], None, Act::Relu),
        ([64, 64, 5, 1], Some(16), Act::HardSwish),
        ([64, 96, 5, 2], Some(16), Act::HardSwish),
    ];
    for block in blocks {
        y = depthwise_separable_styled(&mut b, &mut w, &y, block, style);
    }
    y = b.node("GlobalAveragePool", &[&y], vec![]);
    y = conv_bn_styled(&mut b, &mut w, &y, [96, 128, 1, 1, 1], style);
    y = activation(&mut b, &y, Act::HardSwish);
    y = b.node("Flatten", &[&y], vec![attr_int("axis", 1)]);
    let fc = b.weight_f32("fc_w", &[128, 10], &w.he(1280, 128));
    y = b.node("MatMul", &[&y, &fc], vec![]);
    b.output(&y);
    b.build()
}

#[test]
fn depthwise_separable_blocks_fuse_and_match_tract() {
    for (i, style) in
        [Exporter::ExplicitBn, Exporter::TorchvisionLegacy, Exporter::TfSamePadding].into_iter().enumerate()
    {
        let (_dir, path) = common::write_temp(&net(style, 21 + i as u64));
        let shape = [1, 3, 48, 48];
        let tract = effc_tract::Reference::load(&path, &[shape.to_vec()], &[]).unwrap();
        let x = effc::input::seeded_noise(&shape, i as u64);
        let theirs = tract.run(&[&x.to_f32_vec()]).unwrap();
        for kernels in common::kernel_paths() {
            let c = effc::compile_file(&path, &effc::Options { kernels, ..Default::default() }).unwrap();
            let (h, why) = (&c.summary.ops_after, &c.summary.unfused);
            // Every block; the stem and the 1×1 conv after the pool stay.
            assert_eq!(h.get("MBConv"), Some(&4), "{style:?} {kernels}: {h:?} {why:?}");
            assert_eq!(h.get("Conv"), Some(&2), "{style:?} {kernels}: {h:?} {why:?}");
            for gone in ["Relu", "HardSwish", "HardSigmoid", "Mul", "BatchNormalization", "Pad"] {
                assert!(!h.contains_key(gone), "{style:?} {kernels} left {gone}: {h:?}");
            }
            let ours = c.model().unwrap().run(std::slice::from_ref(&x)).unwrap()[0].to_f32_vec();
            let cmp = Comparison::new(&ours, &theirs[0].data);
            assert!(cmp.max_rel <= 1e-4 && cmp.cosine > 0.999_999, "{style:?} {kernels}: {cmp:?}");
        }
    }
}
