//! MixNet blocks fuse: a MixConv (channels split into groups, each with its own depthwise
//! kernel size, concatenated, one BatchNormalization after) becomes one depthwise conv with
//! the largest kernel and each group's weights centred in it, grouped 1×1 convs become one
//! block-diagonal 1×1 conv, and the blocks then become MBConv super-ops like any other.
//! The writer spells them as timm exports `MixedConv2d`; checked against tract on every
//! kernel path, at two opsets (Split sizes as an attribute and as an input).

mod common;

use effc_models::family::{Act, Exporter, MixSpec, Weights, activation, conv_bn_styled, mixnet_block};
use effc_models::writer::{GraphBuilder, attr_int};
use effc_onnx::proto::ModelProto;
use effc_onnx::proto::tensor_proto::DataType;

fn block(c_in: usize, c_out: usize, (ratio, groups): (usize, usize), dw: &[usize], stride: usize, se: bool) -> MixSpec {
    let act = if se { Act::Swish } else { Act::Relu };
    let se = se.then_some((c_in / 2).max(2));
    MixSpec {
        c_in,
        c_out,
        expand_ratio: ratio,
        exp_groups: groups,
        dw_kernels: dw.to_vec(),
        pwl_groups: groups,
        stride,
        se,
        act,
    }
}

/// A MixNet-S-like net: stem, seven blocks with mixed kernels and grouped 1×1 convs, head.
fn net(opset: i64, seed: u64) -> ModelProto {
    let mut b = GraphBuilder::new(opset);
    let mut w = Weights::new(seed);
    let x = b.input("input", DataType::Float, &[1.into(), 3.into(), 64.into(), 64.into()]);
    let mut y = conv_bn_styled(&mut b, &mut w, &x, [3, 16, 3, 2, 1], Exporter::ExplicitBn);
    y = activation(&mut b, &y, Act::Relu);
    let blocks = [
        block(16, 16, (1, 1), &[3], 1, false),
        block(16, 24, (3, 2), &[3], 2, false),
        block(24, 24, (3, 2), &[3], 1, false),
        block(24, 40, (6, 1), &[3, 5, 7], 2, true),
        block(40, 40, (6, 2), &[3, 5], 1, true),
        block(40, 80, (6, 1), &[3, 5, 7], 2, true),
        block(80, 80, (6, 2), &[3, 5, 7, 9], 1, true),
    ];
    for s in &blocks {
        y = mixnet_block(&mut b, &mut w, &y, s);
    }
    y = conv_bn_styled(&mut b, &mut w, &y, [80, 128, 1, 1, 1], Exporter::ExplicitBn);
    y = activation(&mut b, &y, Act::Relu);
    y = b.node("GlobalAveragePool", &[&y], vec![]);
    y = b.node("Flatten", &[&y], vec![attr_int("axis", 1)]);
    let fc = b.weight_f32("fc_w", &[128, 10], &w.he(1280, 128));
    y = b.node("MatMul", &[&y, &fc], vec![]);
    b.output(&y);
    b.build()
}

#[test]
fn mixnet_blocks_fuse_and_match_tract() {
    let expect = [("MBConv", 7), ("Conv", 2)];
    let gone = ["Split", "Concat", "BatchNormalization", "Add", "Mul", "Relu"];
    for (i, opset) in [11, 17].into_iter().enumerate() {
        let (_dir, path) = common::write_temp(&net(opset, 31 + i as u64));
        common::fused_and_matches_tract(&path, &[1, 3, 64, 64], i as u64, &expect, &gone);
    }
}
