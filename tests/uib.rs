//! MobileNetV4's blocks fuse: every Universal Inverted Bottleneck form (ExtraDW and IB as
//! MBConv super-ops, the first with its leading depthwise conv inside; ConvNext-like and
//! FFN as Fused-MBConv super-ops over a 1×1 expansion) and the k×k + 1×1 conv pairs of the
//! first stages (Fused-MBConv with an activated projection). The writer's blocks agree with
//! tract on every kernel path; timm's real `mobilenetv4_conv_small` export fuses into 14
//! super-ops and matches onnxruntime's stored outputs.

mod common;

use effc_models::family::{Act, Exporter, UibSpec, Weights, activation, conv_bn_styled, uib_styled};
use effc_models::writer::{GraphBuilder, attr_int};
use effc_onnx::proto::ModelProto;
use effc_onnx::proto::tensor_proto::DataType;

fn uib(c_in: usize, c_out: usize, (start, mid): (Option<usize>, Option<usize>), stride: usize) -> UibSpec {
    UibSpec {
        c_in,
        c_out,
        expanded: 4 * c_in,
        start_kernel: start,
        mid_kernel: mid,
        stride,
        stride_in_mid: false,
        act: Act::Relu,
        layer_scale: false,
    }
}

/// A small MobileNetV4-style net: stem, a conv pair, then each UIB form, head.
fn net(style: Exporter, seed: u64) -> ModelProto {
    let mut b = GraphBuilder::new(style.opset());
    let mut w = Weights::new(seed);
    let x = b.input("input", DataType::Float, &[2.into(), 3.into(), 64.into(), 64.into()]);
    let mut y = conv_bn_styled(&mut b, &mut w, &x, [3, 16, 3, 2, 1], style);
    y = activation(&mut b, &y, Act::Relu);
    // The conv pair: 3×3 stride 2, then an activated 1×1.
    y = conv_bn_styled(&mut b, &mut w, &y, [16, 32, 3, 2, 1], style);
    y = activation(&mut b, &y, Act::Relu);
    y = conv_bn_styled(&mut b, &mut w, &y, [32, 16, 1, 1, 1], style);
    y = activation(&mut b, &y, Act::Relu);
    let blocks = [
        // ExtraDW downsampling in the leading depthwise conv, then in the middle one.
        uib(16, 24, (Some(3), Some(3)), 2),
        UibSpec { stride_in_mid: true, ..uib(24, 32, (Some(5), Some(3)), 2) },
        // ExtraDW with the residual and a layer scale.
        UibSpec { layer_scale: true, ..uib(32, 32, (Some(3), Some(5)), 1) },
        // ConvNext-like with the residual, and downsampling.
        uib(32, 32, (Some(3), None), 1),
        uib(32, 40, (Some(3), None), 2),
        // IB and FFN.
        uib(40, 40, (None, Some(3)), 1),
        uib(40, 40, (None, None), 1),
    ];
    for s in &blocks {
        y = uib_styled(&mut b, &mut w, &y, s, style);
    }
    y = conv_bn_styled(&mut b, &mut w, &y, [40, 64, 1, 1, 1], style);
    y = activation(&mut b, &y, Act::Relu);
    y = b.node("GlobalAveragePool", &[&y], vec![]);
    y = b.node("Flatten", &[&y], vec![attr_int("axis", 1)]);
    let fc = b.weight_f32("fc_w", &[64, 10], &w.he(640, 64));
    y = b.node("MatMul", &[&y, &fc], vec![]);
    b.output(&y);
    b.build()
}

#[test]
fn every_uib_form_fuses_and_matches_tract() {
    // ExtraDW ×3 and IB as MBConv; the conv pair, ConvNext-like ×2 and FFN as Fused-MBConv;
    // the stem and the head conv stay.
    let expect = [("MBConv", 4), ("FusedMBConv", 4), ("Conv", 2)];
    for (i, style) in [Exporter::ExplicitBn, Exporter::TorchvisionLegacy].into_iter().enumerate() {
        let (_dir, path) = common::write_temp(&net(style, 7 + i as u64));
        let gone = ["Mul", "Add", "Relu", "BatchNormalization"];
        common::fused_and_matches_tract(&path, &[2, 3, 64, 64], i as u64, &expect, &gone);
    }
}

#[test]
fn timm_mnv4s_fuses_every_block_and_matches_onnxruntime() {
    // The two conv pairs and the ConvNext-like UIB as Fused-MBConv, the other 11 UIB blocks
    // as MBConv; the stem and the two 1×1 head convs stay.
    let expect = [("FusedMBConv", 3), ("MBConv", 11), ("Conv", 3)];
    let inputs = ["cat_1x3x224x224", "noise_1x3x224x224"];
    common::shared_fused_and_matches_onnxruntime("timm_mnv4s", inputs, &expect, &["Relu", "Add"]);
}
