//! AVX2 + FMA: 8 lanes in ymm registers; tails through `vmaskmovps`, which is microcoded
//! on AMD before Zen 4, so kernels use it on tails only.

use std::arch::x86_64::*;

use super::Simd;

/// The AVX2 + FMA token.
#[derive(Clone, Copy)]
pub struct Avx2(());

// SAFETY: a token exists only through `assume`, whose callers run under avx2 and fma.
unsafe impl Simd for Avx2 {
    const LANES: usize = 8;
    const REGISTERS: usize = 16;
    type V = __m256;
    type Mask = __m256i;

    #[inline(always)]
    unsafe fn assume() -> Self {
        Avx2(())
    }
    // SAFETY (every method below): the token proves the CPU runs AVX2 and FMA; the
    // pointer methods' contracts are the trait's.
    #[inline(always)]
    fn zero(self) -> __m256 {
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    fn splat(self, x: f32) -> __m256 {
        unsafe { _mm256_set1_ps(x) }
    }
    #[inline(always)]
    fn first(self, n: usize) -> __m256i {
        unsafe { _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)) }
    }
    #[inline(always)]
    unsafe fn load(self, p: *const f32) -> __m256 {
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32, v: __m256) {
        unsafe { _mm256_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn load_part(self, p: *const f32, m: __m256i) -> __m256 {
        unsafe { _mm256_maskload_ps(p, m) }
    }
    #[inline(always)]
    unsafe fn store_part(self, p: *mut f32, v: __m256, m: __m256i) {
        unsafe { _mm256_maskstore_ps(p, m, v) }
    }
    #[inline(always)]
    unsafe fn load_half(self, p: *const f32) -> __m256 {
        unsafe { _mm256_zextps128_ps256(_mm_loadu_ps(p)) }
    }
    #[inline(always)]
    unsafe fn store_half(self, p: *mut f32, v: __m256) {
        unsafe { _mm_storeu_ps(p, _mm256_castps256_ps128(v)) }
    }
    #[inline(always)]
    fn fma_half(self, a: __m256, b: __m256, c: __m256) -> __m256 {
        unsafe {
            let (a, b, c) = (_mm256_castps256_ps128(a), _mm256_castps256_ps128(b), _mm256_castps256_ps128(c));
            _mm256_zextps128_ps256(_mm_fmadd_ps(a, b, c))
        }
    }
    lanewise! { __m256;
        add(a, b) => _mm256_add_ps;
        sub(a, b) => _mm256_sub_ps;
        mul(a, b) => _mm256_mul_ps;
        div(a, b) => _mm256_div_ps;
        fma(a, b, c) => _mm256_fmadd_ps;
        fnma(a, b, c) => _mm256_fnmadd_ps;
        min(a, b) => _mm256_min_ps;
        max(a, b) => _mm256_max_ps;
    }
    #[inline(always)]
    fn pow2_shifted(self, k: __m256) -> __m256 {
        unsafe {
            let biased = _mm256_add_epi32(_mm256_castps_si256(k), _mm256_set1_epi32(127));
            _mm256_castsi256_ps(_mm256_slli_epi32::<23>(biased))
        }
    }
}
