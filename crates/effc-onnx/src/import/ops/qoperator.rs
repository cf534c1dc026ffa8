//! The QOperator form of quantized models: ONNX's QLinearConv, QLinearMatMul, ConvInteger
//! and MatMulInteger, and onnxruntime's `com.microsoft` QLinear* ops and QGemm.
//!
//! Each becomes the float op between DequantizeLinear of its operands and QuantizeLinear of
//! its result: the QDQ form, which is what these ops compute (an integer product rescaled
//! once), up to where f32 rounds. So a QOperator model runs on the same passes and kernels
//! as a QDQ one: a constant DequantizeLinear of weights folds at import, and each
//! QuantizeLinear → DequantizeLinear pair between two ops becomes one snap.
//!
//! ConvInteger and MatMulInteger return the int32 sums themselves, so their float form must
//! be exact: every partial sum an integer below 2^24. The importer proves that bound from
//! the weights and the input type, and refuses a node it cannot prove it for.

use effc_ir::op::{Binary, Gemm, Op, PoolKind, Quantization, Reduce, ReduceKind, Unary};
use effc_ir::{DType, Error, Result, Tensor, ValueRef};

use super::conv;
use crate::import::NodeCtx;

/// A quantized operand: the input numbers of its value, scale and (optional) zero point.
#[derive(Clone, Copy)]
struct Operand {
    x: usize,
    scale: usize,
    zero_point: usize,
}

const fn operand(x: usize, scale: usize, zero_point: usize) -> Operand {
    Operand { x, scale, zero_point }
}

/// DequantizeLinear of operand `o` (per tensor, or per index of `axis` when its scale
/// has one value per index there).
fn dequantize(ctx: &mut NodeCtx, o: Operand, axis: usize, tag: &str) -> Result<ValueRef> {
    let x = ctx.x(o.x)?;
    let scale = ctx.x(o.scale)?;
    let zero_point = zero_point_like(ctx, o.zero_point, scale, tag)?;
    let q = Quantization { axis, dtype: ctx.info(x).dtype };
    ctx.emit_step(Op::Dequantize(q), &[Some(x), Some(scale), zero_point], tag)
}

/// Input `i` as a zero point of `scale`'s shape: a constant scalar zero point beside a
/// per-axis scale is repeated, as ONNX's QLinear ops allow.
fn zero_point_like(ctx: &mut NodeCtx, i: usize, scale: ValueRef, tag: &str) -> Result<Option<ValueRef>> {
    let Some(zp) = ctx.input(i)? else { return Ok(None) };
    let n = ctx.info(scale).numel();
    if ctx.info(zp).numel() != 1 || n == 1 {
        return Ok(Some(zp));
    }
    let Some(t) = ctx.const_input(i)? else { return Ok(Some(zp)) };
    let repeated = Tensor::new(vec![n], effc_ir::map_tensor_data!(t.data(), |v| vec![v[0]; n]))?;
    ctx.constant_step(repeated, &format!("{tag}_zero_point")).map(Some)
}

/// QuantizeLinear of `y` as the node's result, with the scale and zero point of inputs
/// `scale` and `zero_point`; without a zero point the result has type `dtype`.
fn quantize(ctx: &mut NodeCtx, y: ValueRef, scale: usize, zero_point: usize, dtype: DType) -> Result<Vec<ValueRef>> {
    let s = ctx.x(scale)?;
    let zp = ctx.input(zero_point)?;
    let dtype = zp.map_or(dtype, |z| ctx.info(z).dtype);
    ctx.emit(Op::Quantize(Quantization { axis: 0, dtype }), &[Some(y), Some(s), zp])
}

fn dtype_of(ctx: &NodeCtx, i: usize) -> Result<DType> {
    Ok(ctx.info(ctx.x(i)?).dtype)
}

/// QLinearConv: x, x_scale, x_zp, w, w_scale, w_zp (per output channel), y_scale, y_zp,
/// optional int32 bias B with scale x_scale · w_scale.
pub(super) fn qlinear_conv(ctx: &mut NodeCtx) -> Result<Vec<ValueRef>> {
    let x = dequantize(ctx, operand(0, 1, 2), 1, "x")?;
    let w = dequantize(ctx, operand(3, 4, 5), 0, "w")?;
    let bias = bias_of(ctx, 8, 1, 4, 0)?;
    let y = conv::conv_of(ctx, x, w, bias, "conv")?;
    quantize(ctx, y, 6, 7, dtype_of(ctx, 0)?)
}

/// DequantizeLinear of the int32 bias at input `b` (if present) with scale
/// `scale(a_scale) · scale(b_scale)`, per output channel along `axis`.
fn bias_of(ctx: &mut NodeCtx, b: usize, a_scale: usize, b_scale: usize, axis: usize) -> Result<Option<ValueRef>> {
    let Some(bias) = ctx.input(b)? else { return Ok(None) };
    let (sa, sb) = (ctx.const_input(a_scale)?, ctx.const_input(b_scale)?);
    let (Some(sa), Some(sb)) = (sa, sb) else { return Err(Error::invalid("the scales are missing")) };
    let (sa, sb) = (sa.to_f32_vec(), sb.to_f32_vec());
    let &[sa] = sa.as_slice() else { return Err(Error::unsupported("a per-axis input scale with a bias")) };
    // The scale the bias was quantized with, as quantizers compute it: the product in f32.
    let scale: Vec<f32> = sb.iter().map(|&s| sa * s).collect();
    let n = ctx.info(bias).numel();
    let scale =
        if scale.len() == 1 { Tensor::scalar_f32(scale[0]) } else { Tensor::from_f32(vec![scale.len()], scale)? };
    let s = ctx.constant_step(scale, "bias_scale")?;
    let rank = ctx.info(bias).shape.len();
    let axis = if rank == 0 || ctx.info(s).numel() == 1 || n == ctx.info(s).numel() { 0 } else { axis.min(rank - 1) };
    let q = Quantization { axis, dtype: ctx.info(bias).dtype };
    Ok(Some(ctx.emit_step(Op::Dequantize(q), &[Some(bias), Some(s), None], "bias")?))
}

/// QLinearMatMul: a, a_scale, a_zp (per row), b, b_scale, b_zp (per column), y_scale,
/// y_zp.
pub(super) fn qlinear_matmul(ctx: &mut NodeCtx) -> Result<Vec<ValueRef>> {
    let (a_rank, b_rank) = (ctx.shape(ctx.x(0)?).len(), ctx.shape(ctx.x(3)?).len());
    let a = dequantize(ctx, operand(0, 1, 2), a_rank.saturating_sub(2), "a")?;
    let b = dequantize(ctx, operand(3, 4, 5), b_rank.saturating_sub(1), "b")?;
    let y = ctx.emit_step(Op::MatMul, &[Some(a), Some(b)], "matmul")?;
    quantize(ctx, y, 6, 7, dtype_of(ctx, 0)?)
}

/// QGemm (`com.microsoft`): a, a_scale, a_zp, b, b_scale, b_zp (per column of B'),
/// optional int32 C with scale a_scale · b_scale, optional y_scale and y_zp (without them
/// the result is f32). onnxruntime computes alpha · a_scale · b_scale · (A'B' + C) in
/// integers: the float Gemm with beta = alpha.
pub(super) fn qgemm(ctx: &mut NodeCtx) -> Result<Vec<ValueRef>> {
    let alpha = ctx.attrs.float_or("alpha", 1.0)?;
    let trans_a = ctx.attrs.int_or("transA", 0)? != 0;
    let trans_b = ctx.attrs.int_or("transB", 0)? != 0;
    let a = dequantize(ctx, operand(0, 1, 2), if trans_a { 1 } else { 0 }, "a")?;
    let b = dequantize(ctx, operand(3, 4, 5), if trans_b { 0 } else { 1 }, "b")?;
    let c = bias_of(ctx, 6, 1, 4, 1)?;
    let gemm = Op::Gemm(Gemm { alpha, beta: alpha, trans_a, trans_b });
    if ctx.input(7)?.is_none() {
        return ctx.emit(gemm, &[Some(a), Some(b), c]);
    }
    let y = ctx.emit_step(gemm, &[Some(a), Some(b), c], "gemm")?;
    quantize(ctx, y, 7, 8, dtype_of(ctx, 0)?)
}

/// QLinearAdd and QLinearMul (`com.microsoft`): a, a_scale, a_zp, b, b_scale, b_zp,
/// c_scale, c_zp, numpy broadcasting.
pub(super) fn qlinear_binary(ctx: &mut NodeCtx) -> Result<Vec<ValueRef>> {
    let kind = if ctx.node.op_type == "QLinearAdd" { Binary::Add } else { Binary::Mul };
    let a = dequantize(ctx, operand(0, 1, 2), 0, "a")?;
    let b = dequantize(ctx, operand(3, 4, 5), 0, "b")?;
    let y = ctx.emit_step(Op::Binary(kind), &[Some(a), Some(b)], "float")?;
    quantize(ctx, y, 6, 7, dtype_of(ctx, 0)?)
}

/// QLinearSigmoid and QLinearLeakyRelu (`com.microsoft`): x, x_scale, x_zp, y_scale, y_zp.
pub(super) fn qlinear_unary(ctx: &mut NodeCtx) -> Result<Vec<ValueRef>> {
    let unary = if ctx.node.op_type == "QLinearSigmoid" {
        Unary::Sigmoid
    } else {
        Unary::LeakyRelu { alpha: ctx.attrs.float_or("alpha", 0.01)? }
    };
    let x = dequantize(ctx, operand(0, 1, 2), 0, "x")?;
    let y = ctx.emit_step(Op::Unary(unary), &[Some(x)], "float")?;
    quantize(ctx, y, 3, 4, dtype_of(ctx, 0)?)
}

/// QLinearGlobalAveragePool (`com.microsoft`): x, x_scale, x_zp, y_scale, y_zp; with
/// `channels_last` the input is N, spatial..., C.
pub(super) fn qlinear_global_average_pool(ctx: &mut NodeCtx) -> Result<Vec<ValueRef>> {
    let rank = ctx.shape(ctx.x(0)?).len();
    if rank < 3 {
        return Err(Error::shape(format!("needs an input of rank >= 3, got rank {rank}")));
    }
    let x = dequantize(ctx, operand(0, 1, 2), 0, "x")?;
    let y = if ctx.attrs.int_or("channels_last", 0)? != 0 {
        let reduce = Reduce { kind: ReduceKind::Mean, axes: (1..rank - 1).collect(), keepdims: true };
        ctx.emit_step(Op::Reduce(reduce), &[Some(x)], "float")?
    } else {
        ctx.emit_step(Op::GlobalPool(PoolKind::Average), &[Some(x)], "float")?
    };
    quantize(ctx, y, 3, 4, dtype_of(ctx, 0)?)
}

/// QLinearConcat (`com.microsoft`): y_scale, y_zp, then (x, x_scale, x_zp) per input.
pub(super) fn qlinear_concat(ctx: &mut NodeCtx) -> Result<Vec<ValueRef>> {
    let n = ctx.num_inputs();
    if n < 5 || !(n - 2).is_multiple_of(3) {
        return Err(Error::invalid(format!("{n} inputs: expected y_scale, y_zero_point and triples")));
    }
    let rank = ctx.shape(ctx.x(2)?).len();
    let axis = crate::import::attrs::axis(ctx.attrs.int_or("axis", 0)?, rank)?;
    let mut parts = Vec::new();
    for (k, i) in (2..n).step_by(3).enumerate() {
        parts.push(Some(dequantize(ctx, operand(i, i + 1, i + 2), 0, &format!("x{k}"))?));
    }
    let y = ctx.emit_step(Op::Concat { axis }, &parts, "float")?;
    quantize(ctx, y, 0, 1, dtype_of(ctx, 2)?)
}

/// The largest |x − zero point| an integer input of `dtype` can give.
fn input_reach(ctx: &NodeCtx, dtype: DType, zero_point: usize) -> Result<f64> {
    let (lo, hi) = dtype.quant_range().ok_or_else(|| Error::unsupported(format!("a {dtype} input")))?;
    let zps = match ctx.const_input(zero_point)? {
        Some(t) => t.to_f64_vec(),
        None => vec![0.0],
    };
    Ok(zps.iter().map(|&z| (z - lo as f64).max(hi as f64 - z)).fold(0.0, f64::max))
}

/// Refuses an integer product whose f32 sums might not be exact: `reach` · the largest
/// sum of |w| over one output is at most 2^24 (then every partial sum is an integer f32
/// holds exactly, in any order).
fn check_exact(reach: f64, weight_sums: impl Iterator<Item = f64>) -> Result<()> {
    let bound = reach * weight_sums.fold(0.0, f64::max);
    if bound > (1u64 << 24) as f64 {
        return Err(Error::unsupported(format!(
            "an integer product whose sums may reach {bound} (effc computes it in f32, exact up to 2^24)"
        )));
    }
    Ok(())
}

/// DequantizeLinear with scale 1: the integers minus their zero point, in f32 (exact).
fn centred(ctx: &mut NodeCtx, x: usize, zero_point: usize, axis: usize, tag: &str) -> Result<ValueRef> {
    let n = match ctx.input(zero_point)? {
        Some(z) => ctx.info(z).numel(),
        None => 1,
    };
    let ones = if n == 1 { Tensor::scalar_f32(1.0) } else { Tensor::from_f32(vec![n], vec![1.0; n])? };
    let ones = ctx.constant_step(ones, &format!("{tag}_unit_scale"))?;
    let v = ctx.x(x)?;
    let zp = ctx.input(zero_point)?;
    let q = Quantization { axis, dtype: ctx.info(v).dtype };
    ctx.emit_step(Op::Dequantize(q), &[Some(v), Some(ones), zp], tag)
}

/// Σ|w| per output (index `axis` of the constant `w`, centred on its zero points).
fn weight_sums(w: &Tensor, axis: usize) -> Vec<f64> {
    let shape = w.shape();
    let v = w.to_f64_vec();
    let Some(&n) = shape.get(axis) else { return vec![v.iter().map(|x| x.abs()).sum()] };
    let (outer, inner): (usize, usize) = (shape[..axis].iter().product(), shape[axis + 1..].iter().product());
    let mut sums = vec![0.0; n];
    for o in 0..outer {
        for (j, sum) in sums.iter_mut().enumerate() {
            let start = (o * n + j) * inner;
            *sum += v[start..start + inner].iter().map(|x| x.abs()).sum::<f64>();
        }
    }
    sums
}

/// ConvInteger: x, w, optional x_zp, optional w_zp (per output channel); int32 result.
pub(super) fn conv_integer(ctx: &mut NodeCtx) -> Result<Vec<ValueRef>> {
    let x = centred(ctx, 0, 2, 1, "x")?;
    let w = centred(ctx, 1, 3, 0, "w")?;
    let Some(wt) = ctx.const_value(w) else {
        return Err(Error::unsupported("ConvInteger with weights computed at run time"));
    };
    let reach = input_reach(ctx, dtype_of(ctx, 0)?, 2)?;
    check_exact(reach, weight_sums(&wt, 0).into_iter())?;
    let y = conv::conv_of(ctx, x, w, None, "conv")?;
    ctx.emit(Op::Cast { to: DType::I32 }, &[Some(y)])
}

/// MatMulInteger: a, b, optional a_zp (per row), optional b_zp (per column); int32
/// result.
pub(super) fn matmul_integer(ctx: &mut NodeCtx) -> Result<Vec<ValueRef>> {
    let (a_rank, b_rank) = (ctx.shape(ctx.x(0)?).len(), ctx.shape(ctx.x(1)?).len());
    let a = centred(ctx, 0, 2, a_rank.saturating_sub(2), "a")?;
    let b = centred(ctx, 1, 3, b_rank.saturating_sub(1), "b")?;
    let reach = input_reach(ctx, dtype_of(ctx, 0)?, 2)?;
    match ctx.const_value(b) {
        // Per column of B: its rows are axis rank − 2.
        Some(bt) if b_rank >= 2 => {
            let cols = weight_sums(&bt.reshaped(vec![bt.numel() / bt.shape()[b_rank - 1], bt.shape()[b_rank - 1]])?, 1);
            check_exact(reach, cols.into_iter())?
        }
        _ => {
            let k = ctx.shape(a).last().copied().unwrap_or(1) as f64;
            check_exact(reach, std::iter::once(k * input_reach(ctx, dtype_of(ctx, 1)?, 3)?))?
        }
    }
    let y = ctx.emit_step(Op::MatMul, &[Some(a), Some(b)], "matmul")?;
    ctx.emit(Op::Cast { to: DType::I32 }, &[Some(y)])
}
