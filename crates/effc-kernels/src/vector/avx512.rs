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
        ActKind::Swish => _mm512_mul_ps(x, sigmoid(x)),
    }
}

/// 1/d for d ≥ 1 (the sigmoid's denominator): a 14-bit estimate refined by one Newton
/// step to about 2^-28 relative error, cheaper than a division.
#[target_feature(enable = "avx512f")]
#[inline]
fn reciprocal(d: __m512) -> __m512 {
    let r = _mm512_rcp14_ps(d);
    // r·(2 − d·r); where d is ∞, r is 0 and the step would give 0·(2 − ∞·0) = NaN: keep 0
    // (so the sigmoid of −∞ is 0 and the swish of −∞ is −∞·0 = NaN, as x·sigmoid(x)).
    let refined = _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0)));
    let zero_r = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(r, _mm512_setzero_ps());
    _mm512_mask_mov_ps(refined, zero_r, r)
}

/// 1 / (1 + e^−x). e^−x is 2^n·e^g with n = round(−x·log2 e) and g = −x − n·ln 2
/// (Cody–Waite, two parts); the code keeps h = −g = x + n·ln 2 to save negating x, and
/// evaluates e^g = e^−h with a degree-6 Taylor polynomial in h (alternating signs;
/// truncation ≤ 1.2e-7 relative on |h| ≤ ln2/2), scaled by 2^n with `vscalefps`.
#[target_feature(enable = "avx512f")]
#[inline]
fn sigmoid(x: __m512) -> __m512 {
    let s = _mm512_set1_ps;
    // Outside this range e^−x is ∞ or 0 in f32; clamping keeps h small for huge |x|.
    let xc = _mm512_min_ps(s(104.0), _mm512_max_ps(s(-89.0), x));
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm512_mul_ps(
        xc,
        s(-std::f32::consts::LOG2_E),
    ));
    let h = _mm512_fmadd_ps(n, s(super::LN2_HI), xc);
    let h = _mm512_fmadd_ps(n, s(super::LN2_LO), h);
    let mut q = s(1.0 / 720.0);
    for c in [-1.0 / 120.0, 1.0 / 24.0, -1.0 / 6.0, 0.5, -1.0, 1.0] {
        q = _mm512_fmadd_ps(q, h, s(c));
    }
    let e = _mm512_scalef_ps(q, n);
    reciprocal(_mm512_add_ps(s(1.0), e))
}
