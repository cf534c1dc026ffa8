//! Depthwise-separable blocks whose pointwise conv has its own activation (MobileNetV1,
//! LCNet; with and without squeeze-excite) fuse into MBConv super-ops without expansion,
//! the activation in the projection's epilogue, and agree with tract on every kernel path.

mod common;

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
    // Every block; the stem and the 1×1 conv after the pool stay.
    let expect = [("MBConv", 4), ("Conv", 2)];
    let gone = ["Relu", "HardSwish", "HardSigmoid", "Mul", "BatchNormalization", "Pad"];
    let styles = [Exporter::ExplicitBn, Exporter::TorchvisionLegacy, Exporter::TfSamePadding];
    for (i, style) in styles.into_iter().enumerate() {
        let (_dir, path) = common::write_temp(&net(style, 21 + i as u64));
        common::fused_and_matches_tract(&path, &[1, 3, 48, 48], i as u64, &expect, &gone);
    }
}
