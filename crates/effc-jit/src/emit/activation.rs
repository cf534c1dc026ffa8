//! The backend's one activation table: for every IR activation, whether JIT code computes
//! it, whether it is short enough to apply to a register tile, and which micro-kernel
//! epilogue computes it; and the JIT code that computes each one.
//!
//! ONNX names map to [`Unary`] in the importer (`effc_onnx::import::ops::elementwise`),
//! `Unary::name` maps back, and `tests/activations.rs` checks every kind on every path
//! against `effc_ir::eval`.

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{InstBuilder, Type, Value};
use effc_ir::op::{Levels, Unary};
use effc_kernels::{ActKind, Activation};

use super::Kb;
use crate::math;

/// How the backend computes one activation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Support {
    /// JIT code computes it on f32 values ([`emit_unary`]).
    pub jit: bool,
    /// Short enough to apply to a register tile's accumulators; longer ones (the exp-based
    /// ones) would need more registers than the tile leaves free, so they run as a second
    /// sweep over the block's rows while those are still in L1.
    pub in_tile: bool,
    /// The micro-kernels' epilogue for it, if they have one.
    pub kernel: Option<Activation>,
}

/// The table: one exhaustive match, so a new IR activation must say how it runs here.
pub(crate) fn support(u: Unary) -> Support {
    let kernel = |a: Activation| Some(a);
    let (jit, in_tile, kernel) = match u {
        Unary::Relu => (true, true, kernel(Activation::new(ActKind::Relu))),
        Unary::Clip { min, max } => (true, true, kernel(Activation::with(ActKind::Clip, min, max))),
        Unary::LeakyRelu { alpha } => (true, true, kernel(Activation::with(ActKind::LeakyRelu, alpha, 0.0))),
        Unary::HardSigmoid { alpha, beta } => (true, true, kernel(Activation::with(ActKind::HardSigmoid, alpha, beta))),
        Unary::HardSwish => (true, true, kernel(Activation::new(ActKind::HardSwish))),
        Unary::QuantizeDequantize { scale, zero_point, lo, hi } => {
            let levels = ((lo - zero_point) as f32, (hi - zero_point) as f32);
            (true, true, kernel(Activation::quantize_dequantize(scale, levels.0, levels.1)))
        }
        Unary::QuantizedSwish { input, gate, output } => {
            (true, false, kernel(Activation::quantized(ActKind::QuantizedSwish, [input, gate, output].map(levels))))
        }
        Unary::QuantizedSigmoid { input, output } => {
            (true, false, kernel(Activation::quantized(ActKind::QuantizedSigmoid, [input, input, output].map(levels))))
        }
        Unary::Sigmoid => (true, false, kernel(Activation::new(ActKind::Sigmoid))),
        Unary::Swish => (true, false, kernel(Activation::new(ActKind::Swish))),
        Unary::Erf => (true, false, kernel(Activation::new(ActKind::Erf))),
        Unary::Gelu { tanh: false } => (true, false, kernel(Activation::new(ActKind::Gelu))),
        Unary::Gelu { tanh: true } => (true, false, kernel(Activation::new(ActKind::GeluTanh))),
        Unary::Tanh
        | Unary::Exp
        | Unary::Log
        | Unary::Sqrt
        | Unary::Neg
        | Unary::Abs
        | Unary::Ceil
        | Unary::Floor
        | Unary::Round
        | Unary::Reciprocal
        | Unary::Softplus
        | Unary::Softsign
        | Unary::Elu { .. }
        | Unary::Selu { .. } => (true, false, None),
        Unary::Not => (false, false, None),
    };
    Support { jit, in_tile, kernel }
}

/// Levels as the kernels take them: (scale, lowest, highest level less the zero point).
fn levels(l: Levels) -> (f32, f32, f32) {
    (l.scale, (l.lo - l.zero_point) as f32, (l.hi - l.zero_point) as f32)
}

/// The micro-kernels' epilogue for an optional activation (none is the identity).
pub(crate) fn kernel_activation(u: Option<Unary>) -> Option<Activation> {
    match u {
        None => Some(Activation::IDENTITY),
        Some(u) => support(u).kernel,
    }
}

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
        Unary::QuantizeDequantize { scale, zero_point, lo, hi } => {
            // clamp(round(x / s) + zp, lo, hi) − zp is clamp(round(x / s), lo − zp, hi − zp):
            // the levels are small integers, exact in f32.
            let s = kb.fc(ty, scale as f64);
            let q = kb.b.ins().fdiv(x, s);
            let q = kb.b.ins().nearest(q);
            let q = math::clamp_below(kb, q, (lo - zero_point) as f64);
            let q = math::clamp_above(kb, q, (hi - zero_point) as f64);
            kb.b.ins().fmul(q, s)
        }
        Unary::QuantizedSwish { input, gate, output } => {
            let a = emit_unary(kb, input.snap(), x);
            let s = math::sigmoid(kb, a);
            let g = emit_unary(kb, gate.snap(), s);
            let y = kb.b.ins().fmul(a, g);
            emit_unary(kb, output.snap(), y)
        }
        Unary::QuantizedSigmoid { input, output } => {
            let a = emit_unary(kb, input.snap(), x);
            let s = math::sigmoid(kb, a);
            emit_unary(kb, output.snap(), s)
        }
        // Not is boolean: `support` says JIT code does not compute it, so the lowering
        // refuses it before emission; this arm is never reached with a float.
        Unary::Not => x,
    }
}
