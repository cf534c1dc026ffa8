//! `quantize-dequantize` on writer-built QDQ graphs: which pairs become one snap and
//! which snaps of values already on their levels go.

use effc_ir::Graph;
use effc_ir::op::{Op, Unary};
use effc_models::writer::*;
use effc_onnx::proto::tensor_proto::DataType;
use effc_opt::{DeadCode, FoldQuantizePairs, Pass, optimize};

fn import(b: GraphBuilder) -> Graph {
    let bytes = encode(&b.build());
    let m = effc_onnx::load_model_bytes(bytes, None).unwrap();
    effc_onnx::import_model(&m, &Default::default()).unwrap()
}

fn ops(g: &Graph) -> Vec<String> {
    g.op_histogram().into_iter().map(|(k, n)| format!("{k}x{n}")).collect()
}

fn snaps(g: &Graph) -> Vec<Unary> {
    g.node_ids()
        .filter_map(|id| match g.node(id).op {
            Op::Unary(u @ Unary::QuantizeDequantize { .. }) => Some(u),
            _ => None,
        })
        .collect()
}

#[test]
fn pairs_become_snaps_and_repeated_snaps_after_layout_ops_go() {
    let mut b = GraphBuilder::new(13);
    let x = b.input_f32("x", &[1, 4, 2, 2]);
    let a = b.quantize_dequantize(&x, 0.1, 128, DataType::Uint8);
    let shape = b.weight_i64("shape", &[1, 2, 2, 4]);
    let r = b.node("Reshape", &[&a, &shape], vec![]);
    let r = b.quantize_dequantize(&r, 0.1, 128, DataType::Uint8);
    let t = b.node("Transpose", &[&r], vec![attr_ints("perm", &[0, 3, 1, 2])]);
    let t = b.quantize_dequantize(&t, 0.2, -3, DataType::Int8);
    b.output(&t);
    let mut g = import(b);
    let passes: Vec<Box<dyn Pass>> = vec![Box::new(FoldQuantizePairs), Box::new(DeadCode)];
    let reports = optimize(&mut g, &passes).unwrap();
    // Three pairs fold, then the snap after the Reshape goes.
    assert_eq!(reports[0].changes, 4);
    assert_eq!(ops(&g), ["QuantizeDequantizex2", "Reshapex1", "Transposex1"]);
    let want = [
        Unary::QuantizeDequantize { scale: 0.1, zero_point: 128, lo: 0, hi: 255 },
        Unary::QuantizeDequantize { scale: 0.2, zero_point: -3, lo: -128, hi: 127 },
    ];
    let got = snaps(&g);
    assert!(want.iter().all(|w| got.contains(w)), "{got:?}");
}

#[test]
fn a_pair_of_two_scales_stays_a_pair() {
    let mut b = GraphBuilder::new(13);
    let x = b.input_f32("x", &[1, 4]);
    let (s1, s2) = (b.weight_f32("s", &[], &[0.1]), b.weight_f32("s", &[], &[0.2]));
    let q = b.node("QuantizeLinear", &[&x, &s1], vec![]);
    let y = b.node("DequantizeLinear", &[&q, &s2], vec![]);
    b.output(&y);
    let mut g = import(b);
    assert_eq!(FoldQuantizePairs.run(&mut g).unwrap(), 0);
    assert_eq!(ops(&g), ["DequantizeLinearx1", "QuantizeLinearx1"]);
}

/// The QOperator form's shape: uint8 values reshaped and padded (with the zero point)
/// between two ops, each reader with its own DequantizeLinear. The DequantizeLinears move
/// above the Reshape and the Pad, meet the QuantizeLinear and become one snap; the Pad's
/// fill, the zero point, becomes 0.
#[test]
fn dequantize_moves_above_uint8_layout_ops_and_twin_pairs_become_one_snap() {
    let mut b = GraphBuilder::new(13);
    let x = b.input_f32("x", &[1, 2, 2, 2]);
    let s = b.weight_f32("scale", &[], &[0.1]);
    let z = b.weight(tensor_quantized("zp", &[], DataType::Uint8, &[128]));
    let q = b.node("QuantizeLinear", &[&x, &s, &z], vec![]);
    let shape = b.weight_i64("shape", &[1, 4, 2]);
    let r = b.node("Reshape", &[&q, &shape], vec![]);
    let pads = b.weight_i64("pads", &[0, 0, 1, 0, 0, 1]);
    let p = b.node("Pad", &[&r, &pads, &z], vec![]);
    let d1 = b.node("DequantizeLinear", &[&p, &s, &z], vec![]);
    let d2 = b.node("DequantizeLinear", &[&p, &s, &z], vec![]);
    let y = b.node("Add", &[&d1, &d2], vec![]);
    b.output(&y);
    let mut g = import(b);
    let passes: Vec<Box<dyn Pass>> = vec![Box::new(FoldQuantizePairs), Box::new(DeadCode)];
    optimize(&mut g, &passes).unwrap();
    assert_eq!(ops(&g), ["Addx1", "Padx1", "QuantizeDequantizex1", "Reshapex1"]);
    let fill = g.node_ids().find_map(|id| match &g.node(id).op {
        Op::Pad(p) => Some(p.mode),
        _ => None,
    });
    assert_eq!(fill, Some(effc_ir::op::PadMode::Constant(0.0)));
}
