//! Vector math for the AVX-512 kernels: the epilogue activations.

use std::arch::x86_64::*;

use crate::{ActKind, Activation};

/// The epilogue activation on 16 lanes (NaN-preserving: `max(c, x)` returns x for NaN x).
#[target_feature(enable = "avx512f")]
#[inline]
pub fn activate(x: __m512, act: &Activation) -> __m512 {
    let zero = _mm512_setzero_ps();
    let one = _mm512_set1_ps(1.0);
    let clamp01 = |v: __m512| _mm512_min_ps(one, _mm512_max_ps(zero, v));
    match act.kind {
        ActKind::Identity => x,
        ActKind::Relu => _mm512_max_ps(zero, x),
        ActKind::Clip => _mm512_min_ps(_mm512_set1_ps(act.b), _mm512_max_ps(_mm512_set1_ps(act.a), x)),
        ActKind::LeakyRelu => {
            let neg = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, zero);
            _mm512_mask_mul_ps(x, neg, x, _mm512_set1_ps(act.a))
        }
        ActKind::HardSigmoid => clamp01(_mm512_fmadd_ps(x, _mm512_set1_ps(act.a), _mm512_set1_ps(act.b))),
        ActKind::HardSwish => {
            let g = clamp01(_mm512_fmadd_ps(x, _mm512_set1_ps(1.0 / 6.0), _mm512_set1_ps(0.5)));
            _mm512_mul_ps(x, g)
        }
        ActKind::Sigmoid => sigmoid(x),
        ActKind::Swish => swish(x),
    }
}

/// 1 + e^−x for `xc` already clamped to [`LOGISTIC_MIN`], [`LOGISTIC_MAX`], in base 2:
/// t = −x·log2 e = k + r with k a multiple of 1/32 and |r| ≤ 1/64, so
/// e^−x = 2^⌊k⌋ · 2^(k − ⌊k⌋) · 2^r. The middle factor is one of 32 table entries picked
/// by a permute (k comes from adding a constant whose unit in the last place is 1/32, so
/// its low 5 mantissa bits are the index), `vscalefps` applies 2^⌊k⌋, and 2^r needs only
/// a degree-2 polynomial: 1 + e^−x is then one more fused multiply-add, 9 vector
/// operations in all. r is reduced with log2 e rounded to f32: its 1.3e-8 relative error
/// becomes |x|·1.3e-8 in e^−x, above the polynomial's share only for |x| > 16, where the
/// logistic is below 1.2e-7 or within it of 1. That saves the multiply-add of a two-part
/// constant: FMA-port operations bound this sequence on cores that split 512-bit ones
/// (Zen 4: 9.2 instead of 10.7 cycles per 16 swish values).
#[target_feature(enable = "avx512f")]
#[inline]
fn one_plus_exp_neg(xc: __m512) -> __m512 {
    let s = _mm512_set1_ps;
    let magic = s(super::ROUND_TO_32NDS);
    let u = _mm512_fmadd_ps(xc, s(super::NEG_LOG2E), magic);
    let k = _mm512_sub_ps(u, magic);
    let r = _mm512_fmsub_ps(xc, s(super::NEG_LOG2E), k);
    let table = super::EXP2_32NDS.as_ptr();
    // SAFETY: EXP2_32NDS holds 32 f32s, the two 16-lane loads read exactly them.
    let (lo, hi) = unsafe { (_mm512_loadu_ps(table), _mm512_loadu_ps(table.add(16))) };
    let scaled = _mm512_scalef_ps(_mm512_permutex2var_ps(lo, _mm512_castps_si512(u), hi), k);
    let [c1, c2] = super::EXP2_MINIMAX2;
    let p = _mm512_fmadd_ps(_mm512_fmadd_ps(s(c2), r, s(c1)), r, s(1.0));
    _mm512_fmadd_ps(scaled, p, s(1.0))
}

/// `x` raised to [`LOGISTIC_MIN`] (NaN stays NaN: `max` returns its second operand for
/// NaN), where 1/(1 + e^−x) is still a normal number.
#[target_feature(enable = "avx512f")]
#[inline]
fn logistic_floor(x: __m512) -> __m512 {
    _mm512_max_ps(_mm512_set1_ps(super::LOGISTIC_MIN), x)
}

/// 1 / (1 + e^−x); above [`LOGISTIC_MAX`] e^−x is 0 in f32, and the clamp keeps the
/// reduction's h small for huge x.
#[target_feature(enable = "avx512f")]
#[inline]
fn sigmoid(x: __m512) -> __m512 {
    let d = one_plus_exp_neg(_mm512_min_ps(_mm512_set1_ps(super::LOGISTIC_MAX), logistic_floor(x)));
    _mm512_div_ps(_mm512_set1_ps(1.0), d)
}

/// x / (1 + e^−x) (a division: the divider runs beside the FMA units the GEMM keeps
/// busy, where a reciprocal estimate and a Newton step would take three of their slots),
/// with x raised to [`LOGISTIC_MIN`] in the product too: the two agree
/// wherever x is above it, and below it the product is under 1.4e-36 in magnitude, as the
/// true value (also at x = −∞, the limit, where the formula would give −∞·0 = NaN).
#[target_feature(enable = "avx512f")]
#[inline]
fn swish(x: __m512) -> __m512 {
    let xf = logistic_floor(x);
    _mm512_div_ps(xf, one_plus_exp_neg(_mm512_min_ps(_mm512_set1_ps(super::LOGISTIC_MAX), xf)))
}
