//! Unary activations, broadcasting binary ops, BatchNormalization, and QuantizeLinear /
//! DequantizeLinear on quantized tensors at run time.

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{InstBuilder, Value, types};
use effc_ir::op::{Binary, Quantization, Unary};
use effc_ir::{DType, Error, NodeId, Result};

use super::{Lowering, loaded};
use crate::emit::Kb;
use crate::emit::activation::{emit_unary, support};
use crate::layout::Buf;
use crate::math;
use crate::strided::Nest;

pub(super) fn unary(l: &mut Lowering, id: NodeId, u: Unary) -> Result<()> {
    let x = l.input(id, 0)?;
    let out = l.output(id, 0)?;
    if !support(u).jit || x.dtype != DType::F32 {
        return Err(Error::unsupported(format!("{} on {} at run time", u.name(), x.dtype)));
    }
    l.nest(&Nest::over(&out, &[&x]), &move |kb, _, ins, _| {
        let [x] = loaded(ins);
        emit_unary(kb, u, x)
    })
}

/// Emits one binary op on two scalars/vectors of the same type.
type EmitBinary = fn(&mut Kb, Value, Value) -> Value;

/// How JIT code computes `b` on float (`float`) or integer values, if it does.
fn binary_emitter(b: Binary, float: bool) -> Option<EmitBinary> {
    Some(match (b, float) {
        (Binary::Add, true) => |kb, x, y| kb.b.ins().fadd(x, y),
        (Binary::Sub, true) => |kb, x, y| kb.b.ins().fsub(x, y),
        (Binary::Mul, true) => |kb, x, y| kb.b.ins().fmul(x, y),
        (Binary::Div, true) => |kb, x, y| kb.b.ins().fdiv(x, y),
        (Binary::Max, true) => |kb, x, y| kb.b.ins().fmax(x, y),
        (Binary::Min, true) => |kb, x, y| kb.b.ins().fmin(x, y),
        (Binary::Pow, true) => math::pow,
        (Binary::PRelu, true) => |kb, x, y| {
            let ty = kb.b.func.dfg.value_type(x);
            let xy = kb.b.ins().fmul(x, y);
            let z = kb.fc(ty, 0.0);
            let is_neg = kb.b.ins().fcmp(FloatCC::LessThan, x, z);
            math::select(kb, is_neg, xy, x)
        },
        (Binary::Add, false) => |kb, x, y| kb.b.ins().iadd(x, y),
        (Binary::Sub, false) => |kb, x, y| kb.b.ins().isub(x, y),
        (Binary::Mul, false) => |kb, x, y| kb.b.ins().imul(x, y),
        (Binary::Max, false) => |kb, x, y| kb.b.ins().smax(x, y),
        (Binary::Min, false) => |kb, x, y| kb.b.ins().smin(x, y),
        _ => return None,
    })
}

pub(super) fn binary(l: &mut Lowering, id: NodeId, b: Binary) -> Result<()> {
    let x = l.input(id, 0)?;
    let y = l.input(id, 1)?;
    let out = l.output(id, 0)?;
    // Integer ops compute on i32 and i64 (8-bit values would need unsigned forms).
    let emitter = binary_emitter(b, x.dtype.is_float())
        .filter(|_| b != Binary::Pow || x.dtype == DType::F32)
        .filter(|_| x.dtype.size_bytes() >= 4);
    let Some(emit) = emitter else {
        return Err(Error::unsupported(format!("{} on {} at run time", b.name(), x.dtype)));
    };
    let (xb, yb) = (x.broadcast_to(&out.dims), y.broadcast_to(&out.dims));
    l.nest(&Nest::over(&out, &[&xb, &yb]), &move |kb, _, ins, _| {
        let [x, y] = loaded(ins);
        emit(kb, x, y)
    })
}

/// y = x · scale + shift with per-channel scale = γ/√(var+ε), shift = β − mean·scale,
/// computed once at compile time.
pub(super) fn batch_norm(l: &mut Lowering, id: NodeId, epsilon: f32) -> Result<()> {
    let x = l.input(id, 0)?;
    let out = l.output(id, 0)?;
    let param = |i: usize| -> Result<Vec<f32>> {
        l.const_tensor(id, i)
            .map(|t| t.to_f32_vec())
            .ok_or_else(|| Error::unsupported("BatchNormalization with run-time parameters"))
    };
    let (gamma, beta, mean, var) = (param(1)?, param(2)?, param(3)?, param(4)?);
    let Some((scale, shift)) = effc_ir::op::batch_norm_affine(epsilon, [&gamma, &beta, &mean, &var]) else {
        return Err(Error::unsupported(format!(
            "BatchNormalization parameters of {}, {}, {} and {} values",
            gamma.len(),
            beta.len(),
            mean.len(),
            var.len()
        )));
    };
    // Per channel: along dim 1.
    let s = along_axis(l, &scale, 1, &out.dims)?;
    let t = along_axis(l, &shift, 1, &out.dims)?;
    l.nest(&Nest::over(&out, &[&x, &s, &t]), &|kb, _, ins, _| {
        let [x, s, t] = loaded(ins);
        kb.fma(x, s, t)
    })
}

/// QuantizeLinear's or DequantizeLinear's scale and zero point as f32 values broadcast
/// over `dims`: one value, or one per index of `q.axis`.
fn quantization_params(l: &mut Lowering, id: NodeId, q: &Quantization, dims: &[usize]) -> Result<[Buf; 2]> {
    let name = l.g.node(id).op.name();
    let scale = l.const_tensor(id, 1).ok_or_else(|| Error::unsupported(format!("{name} with a run-time scale")))?;
    let scale = scale.to_f32_vec();
    let zero_point = match l.g.input(id, 2) {
        None => vec![0.0; scale.len()],
        Some(_) => {
            let z = l
                .const_tensor(id, 2)
                .ok_or_else(|| Error::unsupported(format!("{name} with a run-time zero point")))?;
            z.to_i64_vec()?.iter().map(|&v| v as f32).collect()
        }
    };
    Ok([along_axis(l, &scale, q.axis, dims)?, along_axis(l, &zero_point, q.axis, dims)?])
}

/// `values` as an f32 constant broadcast over `dims`: one value for every element, or one
/// per index of `axis` (BatchNormalization's channels, per-axis quantization).
fn along_axis(l: &mut Lowering, values: &[f32], axis: usize, dims: &[usize]) -> Result<Buf> {
    let mut param_dims = vec![1; dims.len()];
    if values.len() != 1 {
        let rank = dims.len();
        *param_dims.get_mut(axis).ok_or_else(|| Error::other(format!("axis {axis} is outside rank {rank}")))? =
            values.len();
    }
    let strides = crate::layout::row_major(&param_dims);
    Ok(Buf::new(l.const_f32(values), DType::F32, param_dims, strides).broadcast_to(dims))
}

/// QuantizeLinear at run time: f32 in, uint8 or int8 out, as `effc_ir::op::quantize`
/// computes it (NaN becomes 0, as the saturating conversion makes it).
pub(super) fn quantize(l: &mut Lowering, id: NodeId, q: &Quantization) -> Result<()> {
    let x = l.input(id, 0)?;
    let out = l.output(id, 0)?;
    let Some((lo, hi)) = q.dtype.quant_range().filter(|_| x.dtype == DType::F32) else {
        return Err(Error::unsupported(format!("QuantizeLinear from {} to {} at run time", x.dtype, q.dtype)));
    };
    let [s, z] = quantization_params(l, id, q, &out.dims)?;
    l.nest(&Nest::over(&out, &[&x, &s, &z]), &move |kb, ty, ins, _| {
        let [x, s, z] = loaded(ins);
        let r = kb.b.ins().fdiv(x, s);
        let r = kb.b.ins().nearest(r);
        let r = kb.b.ins().fadd(r, z);
        let r = math::clamp_below(kb, r, lo as f64);
        let r = math::clamp_above(kb, r, hi as f64);
        let r = kb.b.ins().fcvt_to_sint_sat(types::I32, r);
        kb.b.ins().ireduce(ty, r)
    })
}

/// DequantizeLinear at run time: uint8, int8 or int32 in, f32 out.
pub(super) fn dequantize(l: &mut Lowering, id: NodeId, q: &Quantization) -> Result<()> {
    let x = l.input(id, 0)?;
    let out = l.output(id, 0)?;
    if out.dtype != DType::F32 || !matches!(x.dtype, DType::U8 | DType::I8 | DType::I32) {
        return Err(Error::unsupported(format!("DequantizeLinear from {} to {} at run time", x.dtype, out.dtype)));
    }
    let [s, z] = quantization_params(l, id, q, &out.dims)?;
    let dtype = x.dtype;
    l.nest(&Nest::over(&out, &[&x, &s, &z]), &move |kb, _, ins, _| {
        let [x, s, z] = loaded(ins);
        let x = match dtype {
            DType::U8 => kb.b.ins().uextend(types::I32, x),
            DType::I8 => kb.b.ins().sextend(types::I32, x),
            _ => x,
        };
        let x = kb.b.ins().fcvt_from_sint(types::F32, x);
        let d = kb.b.ins().fsub(x, z);
        kb.b.ins().fmul(d, s)
    })
}
