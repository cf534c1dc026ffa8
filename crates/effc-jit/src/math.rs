//! Transcendental functions as CLIF, for f32 and f32x4. Cranelift has no math library, so
//! exp and log are range reduction plus a polynomial (the Cephes single-precision
//! coefficients), and everything else is built from them.

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{Endianness, InstBuilder, MemFlagsData, Type, Value, types};

use crate::emit::Kb;

/// The integer type with the same lanes as float type `ty`.
fn int_ty(ty: Type) -> Type {
    if ty.is_vector() { types::I32X4 } else { types::I32 }
}

fn bitcast(kb: &mut Kb, ty: Type, v: Value) -> Value {
    kb.b.ins().bitcast(ty, MemFlagsData::new().with_endianness(Endianness::Little), v)
}

/// `cond ? a : b`, lane-wise for vectors (`cond` is an fcmp result).
pub fn select(kb: &mut Kb, cond: Value, a: Value, b: Value) -> Value {
    let ty = kb.b.func.dfg.value_type(a);
    if ty.is_vector() {
        let mask = bitcast(kb, ty, cond);
        kb.b.ins().bitselect(mask, a, b)
    } else {
        kb.b.ins().select(cond, a, b)
    }
}

fn ty_of(kb: &Kb, v: Value) -> Type {
    kb.b.func.dfg.value_type(v)
}

/// `x < c ? c : x` — a lower clamp that lets NaN through.
pub fn clamp_below(kb: &mut Kb, x: Value, c: f64) -> Value {
    let ty = ty_of(kb, x);
    let cv = kb.fc(ty, c);
    let lt = kb.b.ins().fcmp(FloatCC::LessThan, x, cv);
    select(kb, lt, cv, x)
}

/// `x > c ? c : x` — an upper clamp that lets NaN through.
pub fn clamp_above(kb: &mut Kb, x: Value, c: f64) -> Value {
    let ty = ty_of(kb, x);
    let cv = kb.fc(ty, c);
    let gt = kb.b.ins().fcmp(FloatCC::GreaterThan, x, cv);
    select(kb, gt, cv, x)
}

fn horner(kb: &mut Kb, x: Value, coeffs: &[f64]) -> Value {
    let ty = ty_of(kb, x);
    let mut acc = kb.fc(ty, coeffs[0]);
    for &c in &coeffs[1..] {
        let cv = kb.fc(ty, c);
        acc = kb.fma(acc, x, cv);
    }
    acc
}

fn to_int(kb: &mut Kb, x: Value) -> Value {
    let ty = ty_of(kb, x);
    if ty.is_vector() && kb.caps.x86 {
        // One cvttps2dq; exact here because x is already integral.
        kb.b.ins().x86_cvtt2dq(types::I32X4, x)
    } else {
        let ity = if ty.is_vector() { types::I32X4 } else { types::I32 };
        kb.b.ins().fcvt_to_sint_sat(ity, x)
    }
}

/// 2^n for integer lanes n in [-126, 127].
fn pow2(kb: &mut Kb, n: Value, ty: Type) -> Value {
    let ity = int_ty(ty);
    let bias = kb.int_const(ity, 127);
    let e = kb.b.ins().iadd(n, bias);
    let sh = kb.b.ins().iconst(types::I32, 23);
    let e = kb.b.ins().ishl(e, sh);
    bitcast(kb, ty, e)
}

/// e^x. Max relative error ~1.5e-7 on normal results; +inf → inf, -inf → 0, NaN → NaN.
pub fn exp(kb: &mut Kb, x: Value) -> Value {
    let ty = ty_of(kb, x);
    // Beyond these bounds the result is inf or 0 anyway; clamping keeps 2^n in range.
    let x = clamp_above(kb, x, 89.0);
    let x = clamp_below(kb, x, -104.0);
    let log2e = kb.fc(ty, std::f64::consts::LOG2_E);
    let t = kb.b.ins().fmul(x, log2e);
    let n = kb.b.ins().nearest(t);
    // Cody–Waite: ln 2 split into an exactly representable high part and a correction.
    let c1 = kb.fc(ty, -0.693_359_375);
    let c2 = kb.fc(ty, 2.121_944_4e-4);
    let r = kb.fma(n, c1, x);
    let r = kb.fma(n, c2, r);
    let p = horner(
        kb,
        r,
        &[
            1.987_569_150_0e-4,
            1.398_199_950_7e-3,
            8.333_451_907_3e-3,
            4.166_579_589_4e-2,
            1.666_666_545_9e-1,
            5.000_000_120_1e-1,
        ],
    );
    let r2 = kb.b.ins().fmul(r, r);
    let y = kb.fma(p, r2, r);
    let one = kb.fc(ty, 1.0);
    let y = kb.b.ins().fadd(y, one);
    // 2^n as two factors so that n in [-150, 129] never leaves the exponent range.
    let ni = to_int(kb, n);
    let sh = kb.b.ins().iconst(types::I32, 1);
    let n1 = kb.b.ins().sshr(ni, sh);
    let n2 = kb.b.ins().isub(ni, n1);
    let s1 = pow2(kb, n1, ty);
    let s2 = pow2(kb, n2, ty);
    let y = kb.b.ins().fmul(y, s1);
    kb.b.ins().fmul(y, s2)
}

/// 1 / (1 + e^-x), computed from e^-|x| so neither tail loses precision.
pub fn sigmoid(kb: &mut Kb, x: Value) -> Value {
    let ty = ty_of(kb, x);
    let a = kb.b.ins().fabs(x);
    let na = kb.b.ins().fneg(a);
    let e = exp(kb, na);
    let one = kb.fc(ty, 1.0);
    let d = kb.b.ins().fadd(one, e);
    let pos = kb.b.ins().fdiv(one, d);
    let neg = kb.b.ins().fdiv(e, d);
    let zero = kb.fc(ty, 0.0);
    let is_neg = kb.b.ins().fcmp(FloatCC::LessThan, x, zero);
    select(kb, is_neg, neg, pos)
}

/// tanh x = sign(x) · (1 − 2 / (e^{2|x|} + 1)).
pub fn tanh(kb: &mut Kb, x: Value) -> Value {
    let ty = ty_of(kb, x);
    let a = kb.b.ins().fabs(x);
    let a2 = kb.b.ins().fadd(a, a);
    let e = exp(kb, a2);
    let one = kb.fc(ty, 1.0);
    let two = kb.fc(ty, 2.0);
    let d = kb.b.ins().fadd(e, one);
    let q = kb.b.ins().fdiv(two, d);
    let t = kb.b.ins().fsub(one, q);
    // Copy the sign of x onto t (|t| has a zero sign bit).
    let ity = int_ty(ty);
    let xi = bitcast(kb, ity, x);
    let ti = bitcast(kb, ity, t);
    let mask = kb.int_const(ity, i32::MIN as i64);
    let sign = kb.b.ins().band(xi, mask);
    let r = kb.b.ins().bor(ti, sign);
    bitcast(kb, ty, r)
}

/// Natural log. log(0) = -inf, log(x<0) = NaN, log(inf) = inf, NaN → NaN.
/// Subnormal inputs are treated as 0.
pub fn log(kb: &mut Kb, x: Value) -> Value {
    let ty = ty_of(kb, x);
    let ity = int_ty(ty);
    let bits = bitcast(kb, ity, x);
    let sh = kb.b.ins().iconst(types::I32, 23);
    let e = kb.b.ins().ushr(bits, sh);
    let bias = kb.int_const(ity, 126);
    let e = kb.b.ins().isub(e, bias);
    let mant_mask = kb.int_const(ity, 0x007f_ffff);
    let half_bits = kb.int_const(ity, 0x3f00_0000);
    let m = kb.b.ins().band(bits, mant_mask);
    let m = kb.b.ins().bor(m, half_bits);
    let m = bitcast(kb, ty, m); // in [0.5, 1)
    let ef = kb.b.ins().fcvt_from_sint(ty, e);
    let sqrt_half = kb.fc(ty, std::f64::consts::FRAC_1_SQRT_2);
    let small = kb.b.ins().fcmp(FloatCC::LessThan, m, sqrt_half);
    let one = kb.fc(ty, 1.0);
    let zero = kb.fc(ty, 0.0);
    let dec = select(kb, small, one, zero);
    let ef = kb.b.ins().fsub(ef, dec);
    let mm = kb.b.ins().fadd(m, m);
    let m_adj = select(kb, small, mm, m);
    let f = kb.b.ins().fsub(m_adj, one);
    let z = kb.b.ins().fmul(f, f);
    let p = horner(
        kb,
        f,
        &[
            7.037_683_629_2e-2,
            -1.151_461_031_0e-1,
            1.167_699_874_0e-1,
            -1.242_014_084_6e-1,
            1.424_932_278_7e-1,
            -1.666_805_766_5e-1,
            2.000_071_476_5e-1,
            -2.499_999_399_3e-1,
            3.333_333_117_4e-1,
        ],
    );
    let y = kb.b.ins().fmul(p, f);
    let y = kb.b.ins().fmul(y, z);
    let c2 = kb.fc(ty, -2.121_944_4e-4);
    let y = kb.fma(ef, c2, y);
    let mhalf = kb.fc(ty, -0.5);
    let y = kb.fma(z, mhalf, y);
    let r = kb.b.ins().fadd(f, y);
    let c1 = kb.fc(ty, 0.693_359_375);
    let r = kb.fma(ef, c1, r);
    // Special values.
    let tiny = kb.fc(ty, f32::MIN_POSITIVE as f64);
    let ninf = kb.fc(ty, f64::NEG_INFINITY);
    let inf = kb.fc(ty, f64::INFINITY);
    let nan = kb.fc(ty, f64::NAN);
    let is_zero = kb.b.ins().fcmp(FloatCC::LessThan, x, tiny);
    let r = select(kb, is_zero, ninf, r);
    let is_neg = kb.b.ins().fcmp(FloatCC::LessThan, x, zero);
    let r = select(kb, is_neg, nan, r);
    let is_inf = kb.b.ins().fcmp(FloatCC::Equal, x, inf);
    let r = select(kb, is_inf, inf, r);
    let is_nan = kb.b.ins().fcmp(FloatCC::Unordered, x, x);
    select(kb, is_nan, x, r)
}

/// x^y via exp(y · log|x|); negative x gives a real result for integral y (sign from the
/// parity of y) and NaN otherwise; x^0 = 1.
pub fn pow(kb: &mut Kb, x: Value, y: Value) -> Value {
    let ty = ty_of(kb, x);
    let ax = kb.b.ins().fabs(x);
    let l = log(kb, ax);
    let t = kb.b.ins().fmul(y, l);
    let mag = exp(kb, t);
    let yr = kb.b.ins().nearest(y);
    let integral = kb.b.ins().fcmp(FloatCC::Equal, yr, y);
    // Odd integral y: y/2 is not integral.
    let half = kb.fc(ty, 0.5);
    let yh = kb.b.ins().fmul(y, half);
    let yhr = kb.b.ins().nearest(yh);
    let even = kb.b.ins().fcmp(FloatCC::Equal, yhr, yh);
    let neg_mag = kb.b.ins().fneg(mag);
    let signed = select(kb, even, mag, neg_mag);
    let nan = kb.fc(ty, f64::NAN);
    let for_neg = select(kb, integral, signed, nan);
    let zero = kb.fc(ty, 0.0);
    let x_neg = kb.b.ins().fcmp(FloatCC::LessThan, x, zero);
    let r = select(kb, x_neg, for_neg, mag);
    let one = kb.fc(ty, 1.0);
    let y_zero = kb.b.ins().fcmp(FloatCC::Equal, y, zero);
    select(kb, y_zero, one, r)
}

/// erf x: the kernels' rational form x·P(x²)/Q(x²) on x clamped to ±`ERF_CLAMP`, with the
/// same coefficients and the same hold to [−1, 1] (`effc_kernels::simd::erf`), so every
/// path computes the same values.
pub fn erf(kb: &mut Kb, x: Value) -> Value {
    use effc_kernels::simd::{ERF_CLAMP, ERF_P, ERF_Q};
    let ty = ty_of(kb, x);
    let x = clamp_below(kb, x, -ERF_CLAMP as f64);
    let x = clamp_above(kb, x, ERF_CLAMP as f64);
    let t = kb.b.ins().fmul(x, x);
    let horner = |kb: &mut Kb, coefficients: &[f32; 6]| {
        let mut acc = kb.fc(ty, coefficients[5] as f64);
        for &c in coefficients[..5].iter().rev() {
            let cv = kb.fc(ty, c as f64);
            acc = kb.fma(acc, t, cv);
        }
        acc
    };
    let p = horner(kb, &ERF_P);
    let q = horner(kb, &ERF_Q);
    let xp = kb.b.ins().fmul(x, p);
    let r = kb.b.ins().fdiv(xp, q);
    let r = clamp_below(kb, r, -1.0);
    clamp_above(kb, r, 1.0)
}

/// GELU: ½x(1 + erf(x/√2)), or with `tanh` x·σ(2√(2/π)·x(1 + 0.044715x²)); x is raised
/// to `GELU_MIN` first, as in the kernels (below it |GELU| < 1e-18, and at −∞ the
/// formula would give −∞·0).
pub fn gelu(kb: &mut Kb, x: Value, tanh: bool) -> Value {
    use effc_kernels::simd::{GELU_MIN, GELU_TANH_K};
    let ty = ty_of(kb, x);
    let x = clamp_below(kb, x, GELU_MIN as f64);
    if tanh {
        let x2 = kb.b.ins().fmul(x, x);
        let a = kb.fc(ty, (GELU_TANH_K * 0.044_715) as f64);
        let k = kb.fc(ty, GELU_TANH_K as f64);
        let inner = kb.fma(x2, a, k);
        let z = kb.b.ins().fmul(x, inner);
        let s = sigmoid(kb, z);
        return kb.b.ins().fmul(x, s);
    }
    let half = kb.fc(ty, 0.5);
    let h = kb.b.ins().fmul(x, half);
    let r = kb.fc(ty, std::f64::consts::FRAC_1_SQRT_2);
    let scaled = kb.b.ins().fmul(x, r);
    let e = erf(kb, scaled);
    kb.fma(h, e, h)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `exp` on vectors computes the same bits with x86's one-instruction conversion as
    /// with the portable CLIF another target gets (`TargetCaps::x86` off), and both stay
    /// within 2e-7 of f64's e^x.
    #[test]
    fn exp_is_the_same_with_and_without_x86_clif() {
        let xs = [-100.0f32, -87.5, -10.3, -1.0, 0.0, 0.5, 3.25, 88.0];
        let mut outs = Vec::new();
        for x86 in [true, false] {
            let mut jit = crate::module::Jit::new(false).unwrap();
            let consts = crate::aligned::ConstPool::with_store(None);
            let id = jit
                .kernel("exp", &consts, |kb| {
                    kb.caps.x86 &= x86;
                    let arena = kb.arena;
                    for i in 0..2 {
                        let v = kb.load(types::F32X4, arena, i * 16);
                        let y = exp(kb, v);
                        kb.store(y, arena, 32 + i * 16);
                    }
                })
                .unwrap();
            let kernel = jit.finish(&[id]).unwrap()[0];
            let mut arena = [0f32; 16];
            arena[..8].copy_from_slice(&xs);
            // SAFETY: the kernel reads 8 floats of the arena and writes the 8 after them.
            unsafe { kernel(arena.as_mut_ptr() as *mut u8, std::ptr::null(), 0, 1) };
            outs.push(arena[8..].to_vec());
        }
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&outs[0]), bits(&outs[1]));
        for (&x, &y) in xs.iter().zip(&outs[0]) {
            let want = (x as f64).exp();
            assert!((y as f64 - want).abs() <= 2e-7 * want.max(1e-38), "e^{x}: {y} vs {want}");
        }
    }
}
