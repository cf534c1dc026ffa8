//! Constant evaluation and shape inference against hand-computed results.

use effc_ir::eval::{broadcast_index, eval};
use effc_ir::op::{Binary, Op, Pad, PadMode, Quantization, Reduce, ReduceKind, SliceAxis, Unary};
use effc_ir::shape::{broadcast, window_out};
use effc_ir::{DType, Tensor, TensorData};

fn t(shape: &[usize], v: &[f32]) -> Tensor {
    Tensor::from_f32(shape.to_vec(), v.to_vec()).unwrap()
}

fn run(op: Op, inputs: &[&Tensor], out: &[usize]) -> Vec<f64> {
    eval(&op, inputs, &[out.to_vec()]).unwrap()[0].to_f64_vec()
}

#[test]
fn broadcasting() {
    assert_eq!(broadcast(&[2, 1, 3], &[4, 1]).unwrap(), [2, 4, 3]);
    assert!(broadcast(&[2, 3], &[4]).is_err());
    assert_eq!(broadcast_index(&[3], &[2, 3]), [0, 1, 2, 0, 1, 2]);
    assert_eq!(broadcast_index(&[2, 1], &[2, 3]), [0, 0, 0, 1, 1, 1]);
    let a = t(&[2, 1], &[1.0, 2.0]);
    let b = t(&[3], &[10.0, 20.0, 30.0]);
    assert_eq!(run(Op::Binary(Binary::Add), &[&a, &b], &[2, 3]), [11.0, 21.0, 31.0, 12.0, 22.0, 32.0]);
    assert_eq!(run(Op::Binary(Binary::Sub), &[&b, &a], &[2, 3]), [9.0, 19.0, 29.0, 8.0, 18.0, 28.0]);
}

#[test]
fn integer_arithmetic_truncates_and_checks_division() {
    let a = Tensor::from_i64(vec![3], vec![7, -7, 9]).unwrap();
    let b = Tensor::from_i64(vec![3], vec![2, 2, -4]).unwrap();
    let q = eval(&Op::Binary(Binary::Div), &[&a, &b], &[vec![3]]).unwrap();
    assert_eq!(q[0].to_i64_vec().unwrap(), [3, -3, -2]);
    let m = eval(&Op::Binary(Binary::Mod { fmod: false }), &[&a, &b], &[vec![3]]).unwrap();
    assert_eq!(m[0].to_i64_vec().unwrap(), [1, 1, -3]);
    let zero = Tensor::from_i64(vec![1], vec![0]).unwrap();
    assert!(eval(&Op::Binary(Binary::Div), &[&a, &zero], &[vec![3]]).is_err());
}

#[test]
fn layout_ops() {
    let x = t(&[2, 3], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    assert_eq!(run(Op::Transpose { perm: vec![1, 0] }, &[&x], &[3, 2]), [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    let rev = Op::Slice { axes: vec![SliceAxis { axis: 1, start: 2, step: -2, len: 2 }] };
    assert_eq!(run(rev, &[&x], &[2, 2]), [2.0, 0.0, 5.0, 3.0]);
    let idx = Tensor::from_i64(vec![2], vec![-1, 0]).unwrap();
    assert_eq!(run(Op::Gather { axis: 1 }, &[&x, &idx], &[2, 2]), [2.0, 0.0, 5.0, 3.0]);
    let y = t(&[1, 3], &[6.0, 7.0, 8.0]);
    assert_eq!(run(Op::Concat { axis: 0 }, &[&x, &y], &[3, 3]), [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
    assert_eq!(run(Op::Tile { repeats: vec![1, 2] }, &[&y], &[1, 6]), [6.0, 7.0, 8.0, 6.0, 7.0, 8.0]);
    let parts = eval(&Op::Split { axis: 1, sizes: vec![1, 2] }, &[&x], &[vec![2, 1], vec![2, 2]]).unwrap();
    assert_eq!(parts[1].to_f64_vec(), [1.0, 2.0, 4.0, 5.0]);
}

#[test]
fn pad_modes() {
    let x = t(&[1, 3], &[1.0, 2.0, 3.0]);
    let pad = |mode| Op::Pad(Pad { mode, begin: vec![0, 2], end: vec![0, 1] });
    assert_eq!(run(pad(PadMode::Constant(9.0)), &[&x], &[1, 6]), [9.0, 9.0, 1.0, 2.0, 3.0, 9.0]);
    assert_eq!(run(pad(PadMode::Reflect), &[&x], &[1, 6]), [3.0, 2.0, 1.0, 2.0, 3.0, 2.0]);
    assert_eq!(run(pad(PadMode::Edge), &[&x], &[1, 6]), [1.0, 1.0, 1.0, 2.0, 3.0, 3.0]);
}

#[test]
fn reductions_casts_and_unaries() {
    let x = t(&[2, 2], &[1.0, -2.0, 3.5, 4.0]);
    let mean = Op::Reduce(Reduce { kind: ReduceKind::Mean, axes: vec![0], keepdims: true });
    assert_eq!(run(mean, &[&x], &[1, 2]), [2.25, 1.0]);
    let max = Op::Reduce(Reduce { kind: ReduceKind::Max, axes: vec![0, 1], keepdims: false });
    assert_eq!(run(max, &[&x], &[]), [4.0]);
    let c = eval(&Op::Cast { to: DType::I64 }, &[&t(&[3], &[-1.7, 2.9, 0.2])], &[vec![3]]).unwrap();
    assert_eq!(c[0].to_i64_vec().unwrap(), [-1, 2, 0]);
    let hs = run(Op::Unary(Unary::HardSwish), &[&t(&[3], &[-4.0, 1.0, 4.0])], &[3]);
    assert_eq!(hs, [0.0, (1.0f64 * (1.0 / 6.0 + 0.5)) as f32 as f64, 4.0]);
    let s = run(Op::Unary(Unary::Sigmoid), &[&t(&[1], &[0.0])], &[1]);
    assert_eq!(s, [0.5]);
}

#[test]
fn window_sizes() {
    // 224 input, k3 s2 p1: 112 (the B0 stem).
    assert_eq!(window_out(224, 3, 2, 1, 1, 1, false).unwrap(), 112);
    // Dilation 2, k3 covers 5.
    assert_eq!(window_out(8, 3, 1, 2, 0, 0, false).unwrap(), 4);
    // Ceil mode adds a partial window but never one starting in the right padding.
    assert_eq!(window_out(6, 2, 2, 1, 0, 0, true).unwrap(), 3);
    assert_eq!(window_out(5, 2, 2, 1, 0, 0, true).unwrap(), 3);
    assert_eq!(window_out(5, 2, 2, 1, 0, 0, false).unwrap(), 2);
    assert!(window_out(2, 5, 1, 1, 1, 1, false).is_err());
    // A window wider than the padded input: ⌈(7 − 2560) / 2560⌉ + 1 = 1 in ceil mode (the
    // pooler that averages a 7×7 map with kernel = stride = 2560), ⌊…⌋ + 1 = 0 otherwise.
    assert_eq!(window_out(7, 2560, 2560, 1, 0, 0, true).unwrap(), 1);
    assert!(window_out(7, 2560, 2560, 1, 0, 0, false).is_err());
    // Over by a stride or more, ceil mode gives nothing either.
    assert!(window_out(7, 20, 10, 1, 1, 1, true).is_err());
    assert_eq!(window_out(7, 20, 12, 1, 1, 1, true).unwrap(), 1);
    // Kernel 8, stride 16, pads 1 + 3 over 7: ⌈3/16⌉ + 1 = 2, the second window would start
    // past input + left pad (16 ≥ 8), so 1 (onnxruntime agrees; ONNX's shape inference says 2).
    assert_eq!(window_out(7, 8, 16, 1, 1, 3, true).unwrap(), 1);
}

fn q(axis: usize, dtype: DType) -> Quantization {
    Quantization { axis, dtype }
}

/// QuantizeLinear divides, rounds half to even, adds the zero point and saturates; per
/// axis, each index of the axis has its own scale and zero point.
#[test]
fn quantize_linear_rounds_half_to_even_and_saturates() {
    let x = t(&[8], &[-1.0, 0.0, 0.25, 0.75, 1.25, 300.0, -300.0, 2.5]);
    let scale = t(&[], &[0.5]);
    let zp = Tensor::new(vec![], TensorData::U8(vec![128u8].into())).unwrap();
    let y = eval(&Op::Quantize(q(0, DType::U8)), &[&x, &scale, &zp], &[vec![8]]).unwrap();
    assert_eq!(y[0].dtype(), DType::U8);
    assert_eq!(y[0].to_i64_vec().unwrap(), [126, 128, 128, 130, 130, 255, 0, 133]);

    let x = t(&[1, 2, 2], &[1.0, -1.0, 3.0, -3.0]);
    let scales = t(&[2], &[0.5, 2.0]);
    let zps = Tensor::new(vec![2], TensorData::I8(vec![0i8, -1].into())).unwrap();
    let y = eval(&Op::Quantize(q(1, DType::I8)), &[&x, &scales, &zps], &[vec![1, 2, 2]]).unwrap();
    assert_eq!(y[0].to_i64_vec().unwrap(), [2, -2, 1, -3]);
    // Without a zero point: uint8 around 0.
    let y = eval(&Op::Quantize(q(0, DType::U8)), &[&t(&[2], &[-3.0, 3.0]), &scale], &[vec![2]]).unwrap();
    assert_eq!(y[0].to_i64_vec().unwrap(), [0, 6]);
}

#[test]
fn dequantize_linear_subtracts_the_zero_point_and_scales() {
    let x = Tensor::new(vec![3], TensorData::U8(vec![0u8, 128, 255].into())).unwrap();
    let zp = Tensor::new(vec![], TensorData::U8(vec![128u8].into())).unwrap();
    assert_eq!(run(Op::Dequantize(q(0, DType::U8)), &[&x, &t(&[], &[0.5]), &zp], &[3]), [-64.0, 0.0, 63.5]);
    // int32 biases: zero point 0.
    let b = Tensor::new(vec![2], TensorData::I32(vec![-7, 1000].into())).unwrap();
    assert_eq!(run(Op::Dequantize(q(0, DType::I32)), &[&b, &t(&[], &[0.25])], &[2]), [-1.75, 250.0]);
    // Per axis 0 of a [2, 2] int8 weight.
    let w = Tensor::new(vec![2, 2], TensorData::I8(vec![-127i8, 5, 127, -5].into())).unwrap();
    assert_eq!(
        run(Op::Dequantize(q(0, DType::I8)), &[&w, &t(&[2], &[0.5, 0.25])], &[2, 2]),
        [-63.5, 2.5, 31.75, -1.25]
    );
}

/// The snap a QuantizeLinear → DequantizeLinear pair computes, on the levels' edges.
#[test]
fn quantize_dequantize_snaps_to_the_levels() {
    let snap = Unary::QuantizeDequantize { scale: 0.5, zero_point: 128, lo: 0, hi: 255 };
    let got: Vec<f64> =
        [0.2, 0.25, 0.75, -64.0, -64.3, 63.5, 100.0].iter().map(|&x| effc_ir::eval::unary_f64(snap, x)).collect();
    assert_eq!(got, [0.0, 0.0, 1.0, -64.0, -64.0, 63.5, 63.5]);
    assert!(effc_ir::eval::unary_f64(snap, f64::NAN).is_nan());
}
