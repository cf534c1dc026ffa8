//! Each fusion pass on small writer-built graphs: what it rewrites, and what it must leave.

use effc_ir::op::{Op, Unary};
use effc_ir::{Graph, NodeId};
use effc_models::writer::*;
use effc_opt::{
    CollapseReshapes, DeadCode, FoldBatchNorm, FoldChannelAffine, FuseConvEpilogue, Pass, RecognizeActivations,
    optimize,
};

fn import(b: GraphBuilder) -> Graph {
    let bytes = encode(&b.build());
    let m = effc_onnx::load_model_bytes(bytes, None).unwrap();
    effc_onnx::import_model(&m, &Default::default()).unwrap()
}

fn run(g: &mut Graph, pass: impl Pass + 'static) -> usize {
    let passes: Vec<Box<dyn Pass>> = vec![Box::new(pass), Box::new(DeadCode)];
    optimize(g, &passes).unwrap()[0].changes
}

fn only_conv(g: &Graph) -> NodeId {
    let convs: Vec<NodeId> = g.node_ids().filter(|&id| matches!(g.node(id).op, Op::Conv(_))).collect();
    assert_eq!(convs.len(), 1);
    convs[0]
}

fn ops(g: &Graph) -> Vec<String> {
    g.op_histogram().into_iter().map(|(k, n)| format!("{k}x{n}")).collect()
}

#[test]
fn batchnorm_folds_into_depthwise_conv() {
    let mut b = GraphBuilder::new(13);
    let x = b.input_f32("x", &[1, 2, 4, 4]);
    let w = b.weight_f32("w", &[2, 1, 1, 1], &[2.0, 3.0]);
    let bias = b.weight_f32("b", &[2], &[1.0, -1.0]);
    let y = b.node("Conv", &[&x, &w, &bias], vec![attr_int("group", 2)]);
    let (g_, be, m, v) = (
        b.weight_f32("g", &[2], &[1.0, 0.5]),
        b.weight_f32("be", &[2], &[0.0, 2.0]),
        b.weight_f32("m", &[2], &[1.0, 1.0]),
        b.weight_f32("v", &[2], &[4.0, 0.25]),
    );
    let y = b.node("BatchNormalization", &[&y, &g_, &be, &m, &v], vec![attr_float("epsilon", 0.0)]);
    b.output(&y);
    let mut g = import(b);
    assert_eq!(run(&mut g, FoldBatchNorm), 1);
    assert_eq!(ops(&g), ["Convx1"]);
    let conv = only_conv(&g);
    let w = g.const_value(g.input(conv, 1).unwrap()).unwrap().to_f32_vec();
    let bias = g.const_value(g.input(conv, 2).unwrap()).unwrap().to_f32_vec();
    // s = γ/√var = [0.5, 1.0]; w' = w·s; b' = (b − mean)·s + β.
    assert_eq!(w, [1.0, 3.0]);
    assert_eq!(bias, [0.0, 0.0]);
    assert_eq!(g.outputs[0].1.node, conv, "the conv now produces the model output");
}

#[test]
fn batchnorm_after_a_shared_conv_output_stays() {
    let mut b = GraphBuilder::new(13);
    let x = b.input_f32("x", &[1, 2, 4, 4]);
    let w = b.weight_f32("w", &[2, 2, 1, 1], &[1.0; 4]);
    let y = b.node("Conv", &[&x, &w], vec![]);
    let p: Vec<String> = (0..4).map(|_| b.weight_f32("p", &[2], &[1.0, 1.0])).collect();
    let z = b.node("BatchNormalization", &[&y, &p[0], &p[1], &p[2], &p[3]], vec![]);
    let s = b.node("Add", &[&z, &y], vec![]);
    b.output(&s);
    let mut g = import(b);
    assert_eq!(run(&mut g, FoldBatchNorm), 0);
}

/// BN as tf2onnx writes it after a depthwise conv: Mul and Add by [1, C, 1, 1] constants.
#[test]
fn per_channel_mul_add_sub_fold_into_the_conv() {
    let mut b = GraphBuilder::new(13);
    let x = b.input_f32("x", &[1, 2, 4, 4]);
    let w = b.weight_f32("w", &[2, 1, 1, 1], &[2.0, 3.0]);
    let y = b.node("Conv", &[&x, &w], vec![attr_int("group", 2)]);
    let k = b.weight_f32("k", &[1, 2, 1, 1], &[0.5, -1.0]);
    let y = b.node("Mul", &[&k, &y], vec![]);
    let t = b.weight_f32("t", &[2, 1, 1], &[1.0, 4.0]);
    let y = b.node("Add", &[&y, &t], vec![]);
    let u = b.weight_f32("u", &[], &[0.25]);
    let y = b.node("Sub", &[&y, &u], vec![]);
    b.output(&y);
    let mut g = import(b);
    assert_eq!(run(&mut g, FoldChannelAffine), 3);
    assert_eq!(ops(&g), ["Convx1"]);
    let conv = only_conv(&g);
    let w = g.const_value(g.input(conv, 1).unwrap()).unwrap().to_f32_vec();
    let bias = g.const_value(g.input(conv, 2).unwrap()).unwrap().to_f32_vec();
    // w' = w·k; b' = (0·k + t) − u.
    assert_eq!(w, [1.0, -3.0]);
    assert_eq!(bias, [0.75, 3.75]);
}

/// A constant that varies along W, or k − conv, is not a per-channel affine of the conv.
#[test]
fn other_constants_do_not_fold() {
    let mut b = GraphBuilder::new(13);
    let x = b.input_f32("x", &[1, 2, 4, 2]);
    let w = b.weight_f32("w", &[2, 2, 1, 1], &[1.0; 4]);
    let y = b.node("Conv", &[&x, &w], vec![]);
    let along_w = b.weight_f32("k", &[2], &[0.5, 2.0]);
    let y = b.node("Mul", &[&y, &along_w], vec![]);
    b.output(&y);
    assert_eq!(run(&mut import(b), FoldChannelAffine), 0);
    let mut b = GraphBuilder::new(13);
    let x = b.input_f32("x", &[1, 2, 4, 2]);
    let w = b.weight_f32("w", &[2, 2, 1, 1], &[1.0; 4]);
    let y = b.node("Conv", &[&x, &w], vec![]);
    let k = b.weight_f32("k", &[1, 2, 1, 1], &[0.5, 2.0]);
    let y = b.node("Sub", &[&k, &y], vec![]);
    b.output(&y);
    assert_eq!(run(&mut import(b), FoldChannelAffine), 0);
}

/// Keras' squeeze-excite: GlobalAveragePool → Squeeze → Reshape [N, C, 1, 1] collapses to
/// the pool alone; a chain that ends in a new shape keeps one Reshape.
#[test]
fn reshape_chains_collapse() {
    let mut b = GraphBuilder::new(13);
    let x = b.input_f32("x", &[1, 3, 4, 4]);
    let p = b.node("GlobalAveragePool", &[&x], vec![]);
    let axes = b.weight_i64("axes", &[2, 3]);
    let s = b.node("Squeeze", &[&p, &axes], vec![]);
    let shape = b.weight_i64("shape", &[1, 3, 1, 1]);
    let r = b.node("Reshape", &[&s, &shape], vec![]);
    let y = b.node("Relu", &[&r], vec![]);
    let flat = b.node("Flatten", &[&y], vec![]);
    let back = b.weight_i64("back", &[3, 1]);
    let z = b.node("Reshape", &[&flat, &back], vec![]);
    b.output(&z);
    let mut g = import(b);
    assert_eq!(run(&mut g, CollapseReshapes), 3);
    assert_eq!(ops(&g), ["GlobalAveragePoolx1", "Relux1", "Reshapex1"]);
}

fn swish_graph(sigmoid_first: bool, extra_use: bool) -> Graph {
    let mut b = GraphBuilder::new(13);
    let x = b.input_f32("x", &[1, 8]);
    let s = b.node("Sigmoid", &[&x], vec![]);
    let y = if sigmoid_first { b.node("Mul", &[&s, &x], vec![]) } else { b.node("Mul", &[&x, &s], vec![]) };
    b.output(&y);
    if extra_use {
        b.output(&s);
    }
    import(b)
}

#[test]
fn swish_is_recognised_in_either_order_but_not_when_the_gate_is_shared() {
    for first in [true, false] {
        let mut g = swish_graph(first, false);
        assert_eq!(run(&mut g, RecognizeActivations), 1);
        assert_eq!(ops(&g), ["Swishx1"]);
    }
    let mut g = swish_graph(true, true);
    assert_eq!(run(&mut g, RecognizeActivations), 0);
}

#[test]
fn hardswish_is_recognised_only_with_its_constants() {
    for (alpha, expect) in [(1.0 / 6.0, 1), (0.2, 0)] {
        let mut b = GraphBuilder::new(13);
        let x = b.input_f32("x", &[1, 8]);
        let s = b.node("HardSigmoid", &[&x], vec![attr_float("alpha", alpha), attr_float("beta", 0.5)]);
        let y = b.node("Mul", &[&x, &s], vec![]);
        b.output(&y);
        let mut g = import(b);
        assert_eq!(run(&mut g, RecognizeActivations), expect, "alpha {alpha}");
        if expect == 1 {
            assert_eq!(ops(&g), ["HardSwishx1"]);
        }
    }
}

#[test]
fn conv_epilogue_takes_residual_then_activation() {
    // Relu(Conv(x) + x): residual first, activation after.
    let mut b = GraphBuilder::new(13);
    let x = b.input_f32("x", &[1, 4, 5, 5]);
    let w = b.weight_f32("w", &[4, 4, 3, 3], &[0.1; 144]);
    let y = b.node("Conv", &[&x, &w], vec![attr_ints("pads", &[1, 1, 1, 1])]);
    let y = b.node("Add", &[&x, &y], vec![]);
    let y = b.node("Relu", &[&y], vec![]);
    b.output(&y);
    let mut g = import(b);
    assert_eq!(run(&mut g, FuseConvEpilogue { fusion: std::sync::Arc::new(effc_ir::fusion::FuseAll) }), 2);
    let conv = only_conv(&g);
    let Op::Conv(c) = &g.node(conv).op else { unreachable!() };
    assert_eq!(c.act, Some(Unary::Relu));
    assert!(matches!(g.node(g.input(conv, 3).unwrap().node).op, Op::Input { .. }));
    assert_eq!(ops(&g), ["Convx1"]);
}

#[test]
fn an_add_after_an_activated_conv_is_not_fused() {
    // Relu(Conv(x)) + x cannot be act(conv + r).
    let mut b = GraphBuilder::new(13);
    let x = b.input_f32("x", &[1, 4, 5, 5]);
    let w = b.weight_f32("w", &[4, 4, 1, 1], &[0.1; 16]);
    let y = b.node("Conv", &[&x, &w], vec![]);
    let y = b.node("Relu", &[&y], vec![]);
    let y = b.node("Add", &[&y, &x], vec![]);
    b.output(&y);
    let mut g = import(b);
    assert_eq!(run(&mut g, FuseConvEpilogue { fusion: std::sync::Arc::new(effc_ir::fusion::FuseAll) }), 1);
    assert_eq!(ops(&g), ["Addx1", "Convx1"]);
}
