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

/// The logistic function of `x` already clamped to [`LOGISTIC_MIN`], [`LOGISTIC_MAX`]:
/// 1 / (1 + e^−x). e^−x is 2^n·e^−h with n = round(−x·log2 e) and h = x + n·ln 2
/// (Cody–Waite, two parts), e^−h a degree-5 minimax polynomial on |h| ≤ ln2/2 (1.9e-7
/// relative in f32), scaled by 2^n with `vscalefps`. The clamp keeps 1 + e^−x finite, so
/// the reciprocal (a 14-bit estimate and one Newton step, about 2^-28 relative) needs no
/// special case: below the clamp the result is e^-87 ≈ 1.6e-38 instead of a smaller one.
/// 16 vector operations, where a division alone would cost more.
#[target_feature(enable = "avx512f")]
#[inline]
fn logistic_clamped(xc: __m512) -> __m512 {
    let s = _mm512_set1_ps;
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm512_mul_ps(
        xc,
        s(-std::f32::consts::LOG2_E),
    ));
    let h = _mm512_fmadd_ps(n, s(super::LN2_HI), xc);
    let h = _mm512_fmadd_ps(n, s(super::LN2_LO), h);
    let [c0, c1, c2, c3, c4, c5] = super::EXP_NEG_MINIMAX5;
    let mut q = s(c5);
    for c in [c4, c3, c2, c1, c0] {
        q = _mm512_fmadd_ps(q, h, s(c));
    }
    let d = _mm512_add_ps(s(1.0), _mm512_scalef_ps(q, n));
    let r = _mm512_rcp14_ps(d);
    _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, s(2.0)))
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
    logistic_clamped(_mm512_min_ps(_mm512_set1_ps(super::LOGISTIC_MAX), logistic_floor(x)))
}

/// x / (1 + e^−x), with x raised to [`LOGISTIC_MIN`] in the product too: the two agree
/// wherever x is above it, and below it the product is under 1.4e-36 in magnitude, as the
/// true value (also at x = −∞, the limit, where the formula would give −∞·0 = NaN).
#[target_feature(enable = "avx512f")]
#[inline]
fn swish(x: __m512) -> __m512 {
    let xf = logistic_floor(x);
    _mm512_mul_ps(xf, logistic_clamped(_mm512_min_ps(_mm512_set1_ps(super::LOGISTIC_MAX), xf)))
}
