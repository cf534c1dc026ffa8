//! Unary, binary and variadic elementwise ops, Clip, BatchNormalization, Where, and
//! QuantizeLinear / DequantizeLinear.

use effc_ir::op::{Binary, Op, Quantization, Unary};
use effc_ir::{DType, Error, Result, Tensor, ValueRef};

use crate::import::{Attrs, NodeCtx};

/// The unary op an ONNX op type denotes, with its attributes (defaults per the spec).
pub(super) fn unary_op(op_type: &str, a: &Attrs) -> Option<Unary> {
    let f = |name: &str, default: f32| a.float_or(name, default).unwrap_or(default);
    Some(match op_type {
        "Sigmoid" => Unary::Sigmoid,
        "Relu" => Unary::Relu,
        "Tanh" => Unary::Tanh,
        "Exp" => Unary::Exp,
        "Log" => Unary::Log,
        "Sqrt" => Unary::Sqrt,
        "Neg" => Unary::Neg,
        "Abs" => Unary::Abs,
        "Ceil" => Unary::Ceil,
        "Floor" => Unary::Floor,
        "Round" => Unary::Round,
        "Reciprocal" => Unary::Reciprocal,
        "Softplus" => Unary::Softplus,
        "Softsign" => Unary::Softsign,
        "Erf" => Unary::Erf,
        "Not" => Unary::Not,
        "HardSwish" => Unary::HardSwish,
        "Elu" => Unary::Elu { alpha: f("alpha", 1.0) },
        "Selu" => Unary::Selu { alpha: f("alpha", 1.673_263_2), gamma: f("gamma", 1.050_701) },
        "LeakyRelu" => Unary::LeakyRelu { alpha: f("alpha", 0.01) },
        "HardSigmoid" => Unary::HardSigmoid { alpha: f("alpha", 0.2), beta: f("beta", 0.5) },
        "Gelu" => Unary::Gelu { tanh: a.string("approximate").ok().flatten().as_deref() == Some("tanh") },
        _ => return None,
    })
}

pub(super) fn unary(ctx: &mut NodeCtx) -> Result<Vec<ValueRef>> {
    // Re-read the attributes with error reporting (unary_op swallows type errors).
    for name in ["alpha", "beta", "gamma"] {
        ctx.attrs.float(name)?;
    }
    if let Some(mode) = ctx.attrs.string("approximate")?
        && !matches!(mode.as_str(), "none" | "tanh")
    {
        return Err(Error::invalid(format!("approximate = '{mode}' (ONNX defines 'none' and 'tanh')")));
    }
    let Some(u) = unary_op(&ctx.node.op_type, &ctx.attrs) else {
        return Err(Error::other(format!("{} is not a unary op", ctx.node.op_type)));
    };
    let x = ctx.x(0)?;
    ctx.emit(Op::Unary(u), &[Some(x)])
}

fn binary_kind(op_type: &str, ctx: &NodeCtx) -> Result<Binary> {
    Ok(match op_type {
        "Add" | "Sum" => Binary::Add,
        "Sub" => Binary::Sub,
        "Mul" => Binary::Mul,
        "Div" => Binary::Div,
        "Pow" => Binary::Pow,
        "PRelu" => Binary::PRelu,
        "Mod" => Binary::Mod { fmod: ctx.attrs.int_or("fmod", 0)? != 0 },
        "Equal" => Binary::Equal,
        "Less" => Binary::Less,
        "Greater" => Binary::Greater,
        "And" => Binary::And,
        "Or" => Binary::Or,
        "Max" => Binary::Max,
        "Min" => Binary::Min,
        other => return Err(Error::invalid(format!("{other} is not a binary op"))),
    })
}

/// Before opset 7, Add/Sub/Mul/Div broadcast B only when `broadcast=1`, aligned at `axis`.
/// Rewrites B so that numpy broadcasting gives the same result.
fn legacy_broadcast(ctx: &mut NodeCtx, a: ValueRef, b: ValueRef) -> Result<ValueRef> {
    if ctx.opset() >= 7 || ctx.attrs.int_or("broadcast", 0)? == 0 {
        return Ok(b);
    }
    let Some(axis) = ctx.attrs.int("axis")? else {
        return Ok(b);
    };
    let (ra, bs) = (ctx.shape(a).len(), ctx.shape(b));
    let axis = crate::import::attrs::axis(axis, ra)?;
    if axis + bs.len() > ra {
        return Err(Error::shape(format!("legacy broadcast of {bs:?} at axis {axis} overruns rank {ra}")));
    }
    let mut shape = bs.clone();
    shape.resize(ra - axis, 1);
    ctx.emit_step(Op::Reshape { shape }, &[Some(b)], "aligned")
}

/// Before opset 7, a 1-D PRelu slope of length C is per channel (dim 1), not per last dim.
fn legacy_prelu_slope(ctx: &mut NodeCtx, x: ValueRef, slope: ValueRef) -> Result<ValueRef> {
    let (xs, ss) = (ctx.shape(x), ctx.shape(slope));
    if ctx.opset() >= 7 || ss.len() != 1 || xs.len() < 3 || ss[0] != xs[1] || ss[0] == 1 {
        return Ok(slope);
    }
    let mut shape = vec![ss[0]];
    shape.resize(xs.len() - 1, 1);
    ctx.emit_step(Op::Reshape { shape }, &[Some(slope)], "per_channel")
}

pub(super) fn binary(ctx: &mut NodeCtx) -> Result<Vec<ValueRef>> {
    let kind = binary_kind(&ctx.node.op_type, ctx)?;
    let a = ctx.x(0)?;
    let mut b = ctx.x(1)?;
    b = legacy_broadcast(ctx, a, b)?;
    if kind == Binary::PRelu {
        b = legacy_prelu_slope(ctx, a, b)?;
    }
    // Pow's exponent may have another dtype (opset 12+); bring a constant one to the base's.
    let (ta, tb) = (ctx.info(a).dtype, ctx.info(b).dtype);
    if kind == Binary::Pow && ta != tb {
        b = ctx.emit_step(Op::Cast { to: ta }, &[Some(b)], "exponent")?;
    }
    ctx.emit(Op::Binary(kind), &[Some(a), Some(b)])
}

/// Sum, Max, Min and Mean over any number of inputs become a chain of binary ops.
pub(super) fn variadic(ctx: &mut NodeCtx) -> Result<Vec<ValueRef>> {
    let n = ctx.num_inputs();
    if n == 0 {
        return Err(Error::invalid("needs at least one input"));
    }
    let op_type = ctx.node.op_type.clone();
    let kind = binary_kind(if op_type == "Mean" { "Sum" } else { &op_type }, ctx)?;
    let mut acc = ctx.x(0)?;
    for i in 1..n {
        let next = ctx.x(i)?;
        let last = i == n - 1 && op_type != "Mean";
        acc = if last {
            ctx.emit(Op::Binary(kind), &[Some(acc), Some(next)])?[0]
        } else {
            ctx.emit_step(Op::Binary(kind), &[Some(acc), Some(next)], &format!("acc{i}"))?
        };
    }
    if op_type == "Mean" {
        let dtype = ctx.info(acc).dtype;
        let inv = effc_ir::eval::from_f64(dtype, vec![], vec![1.0 / n as f64])?;
        let inv = ctx.constant(0, inv)?;
        return ctx.emit(Op::Binary(Binary::Mul), &[Some(acc), Some(inv)]);
    }
    // A single input is returned as is.
    Ok(vec![acc])
}

pub(super) fn clip(ctx: &mut NodeCtx) -> Result<Vec<ValueRef>> {
    let x = ctx.x(0)?;
    let (min, max) = if ctx.opset() < 11 {
        (ctx.attrs.float_or("min", f32::NEG_INFINITY)?, ctx.attrs.float_or("max", f32::INFINITY)?)
    } else {
        let bound = |t: Option<Tensor>, default: f32| -> Result<f32> {
            t.map_or(Ok(default), |t| t.scalar_value().map(|v| v as f32))
        };
        (bound(ctx.const_input(1)?, f32::NEG_INFINITY)?, bound(ctx.const_input(2)?, f32::INFINITY)?)
    };
    ctx.emit(Op::Unary(Unary::Clip { min, max }), &[Some(x)])
}

pub(super) fn where_(ctx: &mut NodeCtx) -> Result<Vec<ValueRef>> {
    let ins = (0..3).map(|i| ctx.x(i).map(Some)).collect::<Result<Vec<_>>>()?;
    ctx.emit(Op::Where, &ins)
}

pub(super) fn batch_norm(ctx: &mut NodeCtx) -> Result<Vec<ValueRef>> {
    if ctx.attrs.int_or("training_mode", 0)? != 0 {
        return Err(Error::unsupported("BatchNormalization in training mode"));
    }
    if ctx.opset() < 9 && ctx.attrs.int_or("spatial", 1)? == 0 {
        return Err(Error::unsupported("BatchNormalization with spatial=0"));
    }
    let epsilon = ctx.attrs.float_or("epsilon", 1e-5)?;
    let inputs = (0..5).map(|i| ctx.x(i).map(Some)).collect::<Result<Vec<_>>>()?;
    // Only the first output exists at inference; the training statistics are not produced.
    ctx.emit(Op::BatchNorm { epsilon }, &inputs)
}

/// QuantizeLinear and DequantizeLinear: a scale for the whole tensor or one per index of
/// `axis`, uint8 and int8 (and int32 for DequantizeLinear, as biases come), the zero point
/// optional; blocked scales (opset 21's `block_size`) are refused.
pub(super) fn quantization(ctx: &mut NodeCtx) -> Result<Vec<ValueRef>> {
    let quantize = ctx.node.op_type == "QuantizeLinear";
    if ctx.attrs.int_or("block_size", 0)? != 0 {
        return Err(Error::unsupported("blocked quantization (block_size)"));
    }
    // Opset 23's computation precision (QuantizeLinear) and result type (DequantizeLinear):
    // unset (0) or f32 (1).
    let float_attr = if quantize { "precision" } else { "output_dtype" };
    let v = ctx.attrs.int_or(float_attr, 0)?;
    if !matches!(v, 0 | 1) {
        return Err(Error::unsupported(format!("{float_attr} = {v} (effc quantizes from and to f32)")));
    }
    let (x, scale, zero_point) = (ctx.x(0)?, ctx.x(1)?, ctx.input(2)?);
    let rank = ctx.shape(x).len();
    let per_tensor = ctx.info(scale).numel() == 1;
    let axis = match crate::import::attrs::axis(ctx.attrs.int_or("axis", 1)?, rank) {
        Ok(a) => a,
        // The axis is not read for one scale: a scalar x keeps the default axis 1.
        Err(_) if per_tensor => 0,
        Err(e) => return Err(e),
    };
    let dtype = match (quantize, zero_point) {
        (false, _) => ctx.info(x).dtype,
        (true, Some(z)) => ctx.info(z).dtype,
        (true, None) => match ctx.attrs.int_or("output_dtype", 0)? {
            0 => DType::U8,
            code => crate::dtype_from_onnx(code as i32)?,
        },
    };
    let q = Quantization { axis, dtype };
    let op = if quantize { Op::Quantize(q) } else { Op::Dequantize(q) };
    ctx.emit(op, &[Some(x), Some(scale), zero_point])
}
