//! Every float unary op the IR knows, standalone and after a conv and a depthwise conv
//! (where the passes may fuse it into the conv's epilogue), on every kernel variant this
//! CPU runs and on the pure-JIT path, against the f64 reference (`effc_ir::eval`).
//!
//! The convs compute the identity (a 1×1 conv with the identity matrix, a 3×3 depthwise
//! conv whose only nonzero tap is the centre), so the activation sees exactly the sweep.

use effc::Kernels;
use effc::Options;
use effc_ir::fusion::{Fusion, Site};
use effc_ir::op::{Levels, Op, Unary};
use effc_ir::{Tensor, eval};
use effc_models::writer::{GraphBuilder, attr_float, attr_int, attr_ints, attr_string};
use effc_onnx::proto::AttributeProto;
use effc_onnx::proto::tensor_proto::DataType;

/// The ONNX spelling of `u`, or `None` for ops that are not float activations. The match
/// has no catch-all: a new variant of `Unary` must be added here, and so to the sweep.
fn spelling(u: Unary) -> Option<(&'static str, Vec<AttributeProto>)> {
    let plain = |op| Some((op, vec![]));
    match u {
        Unary::Sigmoid => plain("Sigmoid"),
        Unary::Relu => plain("Relu"),
        Unary::Tanh => plain("Tanh"),
        Unary::Exp => plain("Exp"),
        Unary::Log => plain("Log"),
        Unary::Sqrt => plain("Sqrt"),
        Unary::Neg => plain("Neg"),
        Unary::Abs => plain("Abs"),
        Unary::Ceil => plain("Ceil"),
        Unary::Floor => plain("Floor"),
        Unary::Round => plain("Round"),
        Unary::Reciprocal => plain("Reciprocal"),
        Unary::Softplus => plain("Softplus"),
        Unary::Softsign => plain("Softsign"),
        Unary::Erf => plain("Erf"),
        Unary::Not => None,
        Unary::Elu { alpha } => Some(("Elu", vec![attr_float("alpha", alpha)])),
        Unary::Selu { alpha, gamma } => Some(("Selu", vec![attr_float("alpha", alpha), attr_float("gamma", gamma)])),
        Unary::LeakyRelu { alpha } => Some(("LeakyRelu", vec![attr_float("alpha", alpha)])),
        Unary::HardSigmoid { alpha, beta } => {
            Some(("HardSigmoid", vec![attr_float("alpha", alpha), attr_float("beta", beta)]))
        }
        Unary::HardSwish => plain("HardSwish"),
        // Bounds as attributes: the sweep writes Clip at opset 10 (see `model`).
        Unary::Clip { min, max } => Some(("Clip", vec![attr_float("min", min), attr_float("max", max)])),
        Unary::Swish
        | Unary::QuantizeDequantize { .. }
        | Unary::QuantizedSwish { .. }
        | Unary::QuantizedSigmoid { .. } => None,
        Unary::Gelu { tanh } => Some(("Gelu", vec![attr_string("approximate", if tanh { "tanh" } else { "none" })])),
    }
}

/// Every float unary op, with non-default parameters where it has them. Swish has no ONNX
/// op of its own: it is tested through its Sigmoid·x spelling, and the quantization snap
/// through its QuantizeLinear → DequantizeLinear pair (uint8 levels over −12.8…12.7 and
/// int8 levels over −6.25…6.5, so the sweep saturates both).
const UNARIES: [Unary; 28] = [
    Unary::Sigmoid,
    Unary::Relu,
    Unary::Tanh,
    Unary::Exp,
    Unary::Log,
    Unary::Sqrt,
    Unary::Neg,
    Unary::Abs,
    Unary::Ceil,
    Unary::Floor,
    Unary::Round,
    Unary::Reciprocal,
    Unary::Softplus,
    Unary::Softsign,
    Unary::Erf,
    Unary::Elu { alpha: 0.7 },
    Unary::Selu { alpha: 1.5, gamma: 1.1 },
    Unary::LeakyRelu { alpha: 0.05 },
    Unary::HardSigmoid { alpha: 0.3, beta: 0.4 },
    Unary::HardSwish,
    Unary::Clip { min: -1.5, max: 2.5 },
    Unary::Swish,
    Unary::Gelu { tanh: false },
    Unary::Gelu { tanh: true },
    Unary::QuantizeDequantize { scale: 0.1, zero_point: 128, lo: 0, hi: 255 },
    Unary::QuantizeDequantize { scale: 0.05, zero_point: -3, lo: -128, hi: 127 },
    // B0's swish and squeeze-excite gate as onnxruntime quantizes them (uint8 levels).
    Unary::QuantizedSwish { input: U8_INPUT, gate: U8_GATE, output: U8_OUTPUT },
    Unary::QuantizedSigmoid { input: U8_INPUT, output: U8_GATE },
];

const U8_INPUT: Levels = Levels { scale: 0.1, zero_point: 128, lo: 0, hi: 255 };
const U8_GATE: Levels = Levels { scale: 1.0 / 255.0, zero_point: 0, lo: 0, hi: 255 };
const U8_OUTPUT: Levels = Levels { scale: 0.05, zero_point: 7, lo: 0, hi: 255 };

const C: usize = 16;
const H: usize = 8;
const W: usize = 10;

/// What precedes the activation.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Before {
    Nothing,
    /// 1×1: a matrix product.
    Conv,
    /// 3×3 with padding, all input channels: the dense conv path.
    Conv3x3,
    Depthwise,
}

/// The sweep: −12…12 and values where the approximations switch or saturate.
fn sweep() -> Vec<f32> {
    let n = C * H * W;
    let mut xs: Vec<f32> = (0..n).map(|i| -12.0 + 24.0 * i as f32 / (n - 1) as f32).collect();
    let special = [0.0, -0.0, 0.5, -0.5, 1.5, -2.5, 3.9, -3.925, 9.0, -9.5, 20.0, -20.0, 40.0, -40.0, 87.0, -88.0];
    xs[..special.len()].copy_from_slice(&special);
    xs
}

fn model(u: Unary, before: Before) -> effc_onnx::proto::ModelProto {
    // Clip's bounds are attributes before opset 11; Gelu needs opset 20.
    let opset = match u {
        Unary::Clip { .. } => 10,
        Unary::Gelu { .. } => 20,
        _ => 17,
    };
    let mut b = GraphBuilder::new(opset);
    let x = b.input_f32("x", &[1, C as i64, H as i64, W as i64]);
    let y = match before {
        Before::Nothing => x,
        Before::Conv => {
            let w: Vec<f32> = (0..C * C).map(|i| if i / C == i % C { 1.0 } else { 0.0 }).collect();
            let w = b.weight_f32("w", &[C as i64, C as i64, 1, 1], &w);
            let bias = b.weight_f32("b", &[C as i64], &[0.0; C]);
            b.node("Conv", &[&x, &w, &bias], vec![attr_ints("kernel_shape", &[1, 1])])
        }
        Before::Conv3x3 => {
            let w: Vec<f32> =
                (0..C * C * 9).map(|i| if i % 9 == 4 && i / 9 / C == i / 9 % C { 1.0 } else { 0.0 }).collect();
            let w = b.weight_f32("w", &[C as i64, C as i64, 3, 3], &w);
            let attrs = vec![attr_ints("kernel_shape", &[3, 3]), attr_ints("pads", &[1, 1, 1, 1])];
            b.node("Conv", &[&x, &w], attrs)
        }
        Before::Depthwise => {
            let w: Vec<f32> = (0..C * 9).map(|i| if i % 9 == 4 { 1.0 } else { 0.0 }).collect();
            let w = b.weight_f32("w", &[C as i64, 1, 3, 3], &w);
            let bias = b.weight_f32("b", &[C as i64], &[0.0; C]);
            let attrs =
                vec![attr_ints("kernel_shape", &[3, 3]), attr_ints("pads", &[1, 1, 1, 1]), attr_int("group", C as i64)];
            b.node("Conv", &[&x, &w, &bias], attrs)
        }
    };
    let out = match (u, spelling(u)) {
        (Unary::Swish, _) => {
            let s = b.node("Sigmoid", &[&y], vec![]);
            b.node("Mul", &[&y, &s], vec![])
        }
        (Unary::QuantizeDequantize { scale, zero_point, lo, .. }, _) => {
            let data_type = if lo < 0 { DataType::Int8 } else { DataType::Uint8 };
            b.quantize_dequantize(&y, scale, zero_point, data_type)
        }
        // Each step re-quantized, as onnxruntime's QDQ models spell them.
        (Unary::QuantizedSwish { input, gate, output }, _) => {
            let a = qdq(&mut b, &y, input);
            let s = b.node("Sigmoid", &[&a], vec![]);
            let g = qdq(&mut b, &s, gate);
            let m = b.node("Mul", &[&a, &g], vec![]);
            qdq(&mut b, &m, output)
        }
        (Unary::QuantizedSigmoid { input, output }, _) => {
            let a = qdq(&mut b, &y, input);
            let s = b.node("Sigmoid", &[&a], vec![]);
            qdq(&mut b, &s, output)
        }
        (_, Some((op, attrs))) => b.node(op, &[&y], attrs),
        (_, None) => unreachable!("{u:?} is not a float activation"),
    };
    b.output(&out);
    b.build()
}

/// A uint8 QuantizeLinear → DequantizeLinear pair to `levels`.
fn qdq(b: &mut GraphBuilder, x: &str, levels: Levels) -> String {
    b.quantize_dequantize(x, levels.scale, levels.zero_point, DataType::Uint8)
}

/// For the quantized activations, the error allowed at x: their snaps are exact, the
/// sigmoid between them is f32 code, so a value on a rounding tie may take the next level
/// (a gate one step off moves the swish by |a| gate steps, then one output step).
fn quantized_tolerance(u: Unary, x: f64) -> Option<f64> {
    match u {
        Unary::QuantizedSwish { input, gate, output } => {
            let a = eval::unary_f64(input.snap(), x);
            Some(gate.scale as f64 * a.abs() + output.scale as f64)
        }
        Unary::QuantizedSigmoid { output, .. } => Some(output.scale as f64),
        _ => None,
    }
}

/// Absolute error allowed at x for f32 code against the f64 reference: a few ulps of the
/// value, plus a few ulps of x for functions that subtract near-equal terms (GELU's tail,
/// tanh near 0).
fn tolerance(want: f64, x: f64) -> f64 {
    4e-6 * want.abs().max(1e-3) + 1e-6 * x.abs().min(100.0) + 1e-30
}

fn variants() -> Vec<Kernels> {
    Kernels::EXPLICIT.into_iter().filter(|k| k.is_supported()).collect()
}

#[test]
fn every_float_unary_matches_the_f64_reference_fused_or_not() {
    let xs = sweep();
    let input = Tensor::from_f32(vec![1, C, H, W], xs.clone()).unwrap();
    let mut failures = Vec::new();
    for kernels in variants() {
        for u in UNARIES {
            for before in [Before::Nothing, Before::Conv, Before::Conv3x3, Before::Depthwise] {
                let opts = Options { kernels, keep_graph: true, ..Default::default() };
                let bytes = effc_models::writer::encode(&model(u, before));
                let what = format!("{} {u:?} after {before:?}", kernels.name());
                let compiled = match effc::compile_bytes(bytes, None, &opts) {
                    Ok(c) => c,
                    Err(e) => {
                        failures.push(format!("{what}: {e}"));
                        continue;
                    }
                };
                // The activation fuses into the conv exactly where the backend says it can.
                if before != Before::Nothing {
                    let separate =
                        compiled.graph.node_ids().any(|id| matches!(compiled.graph.node(id).op, Op::Unary(_)));
                    if separate == kernels.can_fuse(Site::Conv, u) {
                        failures.push(format!("{what}: fused = {}, but the backend says {}", !separate, !separate));
                    }
                }
                let out = compiled.model().unwrap().run(std::slice::from_ref(&input)).unwrap();
                let got = out[0].to_f32_vec();
                for (&x, &y) in xs.iter().zip(&got) {
                    // A conv adds its products to +0, so −0 reaches the activation as +0.
                    let seen = if before == Before::Nothing { x as f64 } else { x as f64 + 0.0 };
                    let want = eval::unary_f64(u, seen);
                    let ok = (want.is_nan() && y.is_nan())
                        || y as f64 == want
                        || (want.is_finite()
                            && (y as f64 - want).abs()
                                <= quantized_tolerance(u, seen).unwrap_or_else(|| tolerance(want, seen)));
                    if !ok {
                        failures.push(format!("{what} at {x}: {y} but the reference says {want}"));
                        break;
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

/// The GELU spelled with Erf (½·x·(1 + Erf(x/√2)), as exporters wrote it before opset 20)
/// becomes one Gelu, which fuses into the conv before it on every path.
#[test]
fn the_erf_spelling_of_gelu_is_recognised_and_fused() {
    for (div, half_first) in [(true, false), (false, true)] {
        let mut b = GraphBuilder::new(13);
        let x = b.input_f32("x", &[1, C as i64, H as i64, W as i64]);
        let w: Vec<f32> = (0..C * C).map(|i| if i / C == i % C { 1.0 } else { 0.0 }).collect();
        let w = b.weight_f32("w", &[C as i64, C as i64, 1, 1], &w);
        let y = b.node("Conv", &[&x, &w], vec![attr_ints("kernel_shape", &[1, 1])]);
        let scaled = if div {
            let r2 = b.weight_f32("sqrt2", &[], &[std::f32::consts::SQRT_2]);
            b.node("Div", &[&y, &r2], vec![])
        } else {
            let r = b.weight_f32("rsqrt2", &[], &[std::f32::consts::FRAC_1_SQRT_2]);
            b.node("Mul", &[&r, &y], vec![])
        };
        let e = b.node("Erf", &[&scaled], vec![]);
        let one = b.weight_f32("one", &[], &[1.0]);
        let a = b.node("Add", &[&e, &one], vec![]);
        let half = b.weight_f32("half", &[], &[0.5]);
        let out = if half_first {
            let h = b.node("Mul", &[&y, &half], vec![]);
            b.node("Mul", &[&h, &a], vec![])
        } else {
            let m = b.node("Mul", &[&y, &a], vec![]);
            b.node("Mul", &[&m, &half], vec![])
        };
        b.output(&out);
        fuses_into_the_conv(&b.build(), Unary::Gelu { tanh: false });
    }
}

/// Asserts that `model` (an identity 1×1 conv and an activation spelled in several ops)
/// compiles to the conv alone on every path and computes `u` over the sweep.
fn fuses_into_the_conv(model: &effc_onnx::proto::ModelProto, u: Unary) {
    let xs = sweep();
    let input = Tensor::from_f32(vec![1, C, H, W], xs.clone()).unwrap();
    for kernels in variants() {
        let opts = Options { kernels, keep_graph: true, ..Default::default() };
        let compiled = effc::compile_bytes(effc_models::writer::encode(model), None, &opts).unwrap();
        let h = compiled.graph.op_histogram();
        assert_eq!(h.keys().collect::<Vec<_>>(), ["Conv"], "{u:?} {}: {h:?}", kernels.name());
        let got = compiled.model().unwrap().run(std::slice::from_ref(&input)).unwrap()[0].to_f32_vec();
        for (&x, &y) in xs.iter().zip(&got) {
            let want = eval::unary_f64(u, x as f64);
            let ok = y as f64 == want || (y as f64 - want).abs() <= tolerance(want, x as f64);
            assert!(ok, "{u:?} {} at {x}: {y} vs {want}", kernels.name());
        }
    }
}

/// PyTorch's decomposed hard activations (relu6(x + 3) / 6 for the hard sigmoid, with x ·
/// before or after the division for the hard swish; the division as a Div by 6 or a Mul by
/// 1/6) become one HardSigmoid or HardSwish, which fuses into the conv before it on every
/// path and matches the f64 reference over the sweep.
#[test]
fn decomposed_hard_sigmoid_and_hard_swish_are_recognised_and_fused() {
    // (the activation the spelling computes, product before division, division as Div)
    let cases = [
        (Unary::HardSigmoid { alpha: 1.0 / 6.0, beta: 0.5 }, None, true),
        (Unary::HardSigmoid { alpha: 1.0 / 6.0, beta: 0.5 }, None, false),
        (Unary::HardSwish, Some(true), true),
        (Unary::HardSwish, Some(false), false),
        (Unary::HardSwish, Some(true), false),
    ];
    for (u, product_first, div) in cases {
        let mut b = GraphBuilder::new(13);
        let x = b.input_f32("x", &[1, C as i64, H as i64, W as i64]);
        let w: Vec<f32> = (0..C * C).map(|i| if i / C == i % C { 1.0 } else { 0.0 }).collect();
        let w = b.weight_f32("w", &[C as i64, C as i64, 1, 1], &w);
        let y = b.node("Conv", &[&x, &w], vec![attr_ints("kernel_shape", &[1, 1])]);
        let three = b.weight_f32("three", &[], &[3.0]);
        let shifted = b.node("Add", &[&three, &y], vec![]);
        let (lo, hi) = (b.weight_f32("lo", &[], &[0.0]), b.weight_f32("hi", &[], &[6.0]));
        let r6 = b.node("Clip", &[&shifted, &lo, &hi], vec![]);
        let sixth = |b: &mut GraphBuilder, v: &str| {
            if div {
                let six = b.weight_f32("six", &[], &[6.0]);
                b.node("Div", &[v, &six], vec![])
            } else {
                let sixth = b.weight_f32("sixth", &[], &[1.0 / 6.0]);
                b.node("Mul", &[&sixth, v], vec![])
            }
        };
        let out = match product_first {
            None => sixth(&mut b, &r6),
            Some(true) => {
                let p = b.node("Mul", &[&y, &r6], vec![]);
                sixth(&mut b, &p)
            }
            Some(false) => {
                let s = sixth(&mut b, &r6);
                b.node("Mul", &[&s, &y], vec![])
            }
        };
        b.output(&out);
        fuses_into_the_conv(&b.build(), u);
    }
}
