//! Vector math for the AVX2 kernels: the epilogue activations and e^x.

use std::arch::x86_64::*;

use crate::{ActKind, Activation};

/// The epilogue activation on 8 lanes (NaN-preserving: `max(c, x)` returns x for NaN x).
#[target_feature(enable = "avx2,fma")]
#[inline]
pub fn activate(x: __m256, act: &Activation) -> __m256 {
    let zero = _mm256_setzero_ps();
    let one = _mm256_set1_ps(1.0);
    let clamp01 = |v: __m256| _mm256_min_ps(one, _mm256_max_ps(zero, v));
    match act.kind {
        ActKind::Identity => x,
        ActKind::Relu => _mm256_max_ps(zero, x),
        ActKind::Clip => _mm256_min_ps(_mm256_set1_ps(act.b), _mm256_max_ps(_mm256_set1_ps(act.a), x)),
        ActKind::LeakyRelu => {
            let neg = _mm256_cmp_ps::<_CMP_LT_OQ>(x, zero);
            _mm256_blendv_ps(x, _mm256_mul_ps(x, _mm256_set1_ps(act.a)), neg)
        }
        ActKind::HardSigmoid => clamp01(_mm256_fmadd_ps(x, _mm256_set1_ps(act.a), _mm256_set1_ps(act.b))),
        ActKind::HardSwish => {
            let g = clamp01(_mm256_fmadd_ps(x, _mm256_set1_ps(1.0 / 6.0), _mm256_set1_ps(0.5)));
            _mm256_mul_ps(x, g)
        }
        ActKind::Sigmoid => _mm256_div_ps(one, _mm256_add_ps(one, exp(_mm256_sub_ps(zero, x)))),
        ActKind::Swish => _mm256_div_ps(x, _mm256_add_ps(one, exp(_mm256_sub_ps(zero, x)))),
    }
}

/// e^x: n = round(x·log2 e), g = x − n·ln 2 (Cody–Waite), a degree-7 Taylor polynomial
/// for e^g on |g| ≤ ln2/2, times 2^n built in the exponent bits; x is clamped to
/// where 2^n stays a normal number (e^-87.3 ≈ 1.2e-38 stands in for anything smaller;
/// overflow gives ∞).
#[target_feature(enable = "avx2,fma")]
#[inline]
pub fn exp(x: __m256) -> __m256 {
    let s = _mm256_set1_ps;
    let overflow = _mm256_cmp_ps::<_CMP_GT_OQ>(x, s(88.72));
    let x = _mm256_min_ps(s(88.3), _mm256_max_ps(s(-87.3), x));
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        x,
        s(std::f32::consts::LOG2_E),
    ));
    let g = _mm256_fnmadd_ps(n, s(super::LN2_HI), x);
    let g = _mm256_fnmadd_ps(n, s(super::LN2_LO), g);
    let mut q = s(1.0 / 5040.0);
    for c in [1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        q = _mm256_fmadd_ps(q, g, s(c));
    }
    let bits = _mm256_slli_epi32::<23>(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)));
    _mm256_blendv_ps(_mm256_mul_ps(q, _mm256_castsi256_ps(bits)), s(f32::INFINITY), overflow)
}
