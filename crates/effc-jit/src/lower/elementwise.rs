//! Unary activations, broadcasting binary ops and BatchNormalization.

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{InstBuilder, Type, Value};
use effc_ir::op::{Binary, Unary};
use effc_ir::{DType, Error, NodeId, Result};

use super::{Lowering, loaded};
use crate::emit::Kb;
use crate::math;
use crate::strided::Nest;

/// Emits `u(x)` for an f32 or f32x4 value.
pub(crate) fn emit_unary(kb: &mut Kb, u: Unary, x: Value) -> Value {
    let ty: Type = kb.b.func.dfg.value_type(x);
    let zero = || 0.0;
    match u {
        Unary::Sigmoid => math::sigmoid(kb, x),
        Unary::Swish => {
            let s = math::sigmoid(kb, x);
            kb.b.ins().fmul(x, s)
        }
        Unary::Relu => math::clamp_below(kb, x, zero()),
        Unary::Tanh => math::tanh(kb, x),
        Unary::Exp => math::exp(kb, x),
        Unary::Log => math::log(kb, x),
        Unary::Sqrt => kb.b.ins().sqrt(x),
        Unary::Neg => kb.b.ins().fneg(x),
        Unary::Abs => kb.b.ins().fabs(x),
        Unary::Ceil => kb.b.ins().ceil(x),
        Unary::Floor => kb.b.ins().floor(x),
        Unary::Round => kb.b.ins().nearest(x),
        Unary::Reciprocal => {
            let one = kb.fc(ty, 1.0);
            kb.b.ins().fdiv(one, x)
        }
        Unary::Softplus => {
            // log(1 + e^x), and x itself where e^x would swamp the 1.
            let e = math::exp(kb, x);
            let one = kb.fc(ty, 1.0);
            let s = kb.b.ins().fadd(one, e);
            let l = math::log(kb, s);
            let big = kb.fc(ty, 20.0);
            let is_big = kb.b.ins().fcmp(FloatCC::GreaterThan, x, big);
            math::select(kb, is_big, x, l)
        }
        Unary::Softsign => {
            let a = kb.b.ins().fabs(x);
            let one = kb.fc(ty, 1.0);
            let d = kb.b.ins().fadd(one, a);
            kb.b.ins().fdiv(x, d)
        }
        Unary::Elu { alpha } | Unary::Selu { alpha, .. } => {
            let e = math::exp(kb, x);
            let one = kb.fc(ty, 1.0);
            let em1 = kb.b.ins().fsub(e, one);
            let a = kb.fc(ty, alpha as f64);
            let neg = kb.b.ins().fmul(a, em1);
            let z = kb.fc(ty, 0.0);
            // Elu uses x < 0; Selu uses x <= 0 (identical values at 0).
            let is_neg = kb.b.ins().fcmp(FloatCC::LessThan, x, z);
            let y = math::select(kb, is_neg, neg, x);
            if let Unary::Selu { gamma, .. } = u {
                let g = kb.fc(ty, gamma as f64);
                kb.b.ins().fmul(g, y)
            } else {
                y
            }
        }
        Unary::LeakyRelu { alpha } => {
            let a = kb.fc(ty, alpha as f64);
            let ax = kb.b.ins().fmul(a, x);
            let z = kb.fc(ty, 0.0);
            let is_neg = kb.b.ins().fcmp(FloatCC::LessThan, x, z);
            math::select(kb, is_neg, ax, x)
        }
        Unary::HardSigmoid { alpha, beta } => {
            let a = kb.fc(ty, alpha as f64);
            let b = kb.fc(ty, beta as f64);
            let y = kb.fma(a, x, b);
            let y = math::clamp_below(kb, y, 0.0);
            math::clamp_above(kb, y, 1.0)
        }
        Unary::HardSwish => {
            let a = kb.fc(ty, 1.0 / 6.0);
            let b = kb.fc(ty, 0.5);
            let y = kb.fma(a, x, b);
            let y = math::clamp_below(kb, y, 0.0);
            let y = math::clamp_above(kb, y, 1.0);
            kb.b.ins().fmul(x, y)
        }
        Unary::Clip { min, max } => {
            let y = math::clamp_below(kb, x, min as f64);
            math::clamp_above(kb, y, max as f64)
        }
        Unary::Erf => math::erf(kb, x),
        Unary::Gelu { tanh } => math::gelu(kb, x, tanh),
        // Not is boolean: `unary` refuses it (and every non-f32 input) before emission,
        // and `can_emit` tells the passes so; this arm is never reached with a float.
        Unary::Not => x,
    }
}

/// Whether JIT code computes `u` on f32 values: every float activation the IR has.
pub(crate) fn can_emit(u: Unary) -> bool {
    !matches!(u, Unary::Not)
}

pub(super) fn unary(l: &mut Lowering, id: NodeId, u: Unary) -> Result<()> {
    let x = l.input(id, 0)?;
    let out = l.output(id, 0)?;
    if !can_emit(u) || x.dtype != DType::F32 {
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
    let emitter = binary_emitter(b, x.dtype.is_float()).filter(|_| b != Binary::Pow || x.dtype == DType::F32);
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
    let c = gamma.len();
    if [beta.len(), mean.len(), var.len()] != [c; 3] {
        return Err(Error::unsupported(format!(
            "BatchNormalization parameters of {c}, {}, {} and {} values",
            beta.len(),
            mean.len(),
            var.len()
        )));
    }
    let scale: Vec<f32> = gamma.iter().zip(&var).map(|(&g, &v)| g / (v + epsilon).sqrt()).collect();
    let shift: Vec<f32> = beta.iter().zip(&mean).zip(&scale).map(|((&b, &m), &s)| b - m * s).collect();
    // Per-channel vectors viewed as [C, 1, ...] so they broadcast along dim 1.
    let mut dims = vec![c];
    dims.resize(out.dims.len() - 1, 1);
    let strides = crate::layout::row_major(&dims);
    let sb = l.const_f32(&scale);
    let tb = l.const_f32(&shift);
    let s = crate::layout::Buf::new(sb, DType::F32, dims.clone(), strides.clone()).broadcast_to(&out.dims);
    let t = crate::layout::Buf::new(tb, DType::F32, dims, strides).broadcast_to(&out.dims);
    l.nest(&Nest::over(&out, &[&x, &s, &t]), &|kb, _, ins, _| {
        let [x, s, t] = loaded(ins);
        kb.fma(x, s, t)
    })
}
