//! AVX-512F: 16 lanes in zmm registers, `__mmask16` tails, and 1 + e^−x through a
//! 32-entry table and `vscalefps`.

use std::arch::x86_64::*;

use super::Simd;

/// The AVX-512F token.
#[derive(Clone, Copy)]
pub struct Avx512(());

// SAFETY: a token exists only through `assume`, whose callers run under avx512f.
unsafe impl Simd for Avx512 {
    const LANES: usize = 16;
    const REGISTERS: usize = 32;
    type V = __m512;
    type Mask = __mmask16;

    #[inline(always)]
    unsafe fn assume() -> Self {
        Avx512(())
    }
    // SAFETY (every method below): the token proves the CPU runs AVX-512F; the pointer
    // methods' contracts are the trait's.
    #[inline(always)]
    fn zero(self) -> __m512 {
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    fn splat(self, x: f32) -> __m512 {
        unsafe { _mm512_set1_ps(x) }
    }
    #[inline(always)]
    fn first(self, n: usize) -> __mmask16 {
        ((1u32 << n) - 1) as __mmask16
    }
    #[inline(always)]
    unsafe fn load(self, p: *const f32) -> __m512 {
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32, v: __m512) {
        unsafe { _mm512_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn load_part(self, p: *const f32, m: __mmask16) -> __m512 {
        unsafe { _mm512_maskz_loadu_ps(m, p) }
    }
    #[inline(always)]
    unsafe fn store_part(self, p: *mut f32, v: __m512, m: __mmask16) {
        unsafe { _mm512_mask_storeu_ps(p, m, v) }
    }
    #[inline(always)]
    unsafe fn load_i8(self, p: *const i8) -> __m512 {
        unsafe { _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(p as *const __m128i))) }
    }
    #[inline(always)]
    unsafe fn load_half(self, p: *const f32) -> __m512 {
        unsafe { _mm512_zextps256_ps512(_mm256_loadu_ps(p)) }
    }
    #[inline(always)]
    unsafe fn store_half(self, p: *mut f32, v: __m512) {
        unsafe { _mm256_storeu_ps(p, _mm512_castps512_ps256(v)) }
    }
    #[inline(always)]
    fn fma_half(self, a: __m512, b: __m512, c: __m512) -> __m512 {
        unsafe {
            let (a, b, c) = (_mm512_castps512_ps256(a), _mm512_castps512_ps256(b), _mm512_castps512_ps256(c));
            _mm512_zextps256_ps512(_mm256_fmadd_ps(a, b, c))
        }
    }
    lanewise! { __m512;
        add(a, b) => _mm512_add_ps;
        sub(a, b) => _mm512_sub_ps;
        mul(a, b) => _mm512_mul_ps;
        div(a, b) => _mm512_div_ps;
        fma(a, b, c) => _mm512_fmadd_ps;
        fnma(a, b, c) => _mm512_fnmadd_ps;
        min(a, b) => _mm512_min_ps;
        max(a, b) => _mm512_max_ps;
    }
    #[inline(always)]
    fn round(self, a: __m512) -> __m512 {
        unsafe { _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(a) }
    }
    #[inline(always)]
    fn prefetch(self, p: *const u8, cache: super::Cache) {
        super::x86_prefetch(p, cache)
    }

    #[inline(always)]
    fn pow2_shifted(self, k: __m512) -> __m512 {
        unsafe {
            let biased = _mm512_add_epi32(_mm512_castps_si512(k), _mm512_set1_epi32(127));
            _mm512_castsi512_ps(_mm512_slli_epi32::<23>(biased))
        }
    }

    /// In base 2: t = −x·log2 e = k + r with k a multiple of 1/32 and |r| ≤ 1/64, so
    /// e^−x = 2^⌊k⌋ · 2^(k − ⌊k⌋) · 2^r. The middle factor is one of 32 table entries
    /// picked by a permute (k comes from adding a constant whose unit in the last place is
    /// 1/32, so its low 5 mantissa bits are the index), `vscalefps` applies 2^⌊k⌋, and 2^r
    /// needs only a degree-2 polynomial: 9 vector operations in all. r is reduced with
    /// log2 e rounded to f32: its 1.3e-8 relative error becomes |x|·1.3e-8 in e^−x, above
    /// the polynomial's share only for |x| > 16, where the logistic is below 1.2e-7 or
    /// within it of 1. FMA-port operations bound this sequence on cores that split 512-bit
    /// ones (Zen 4: 9.2 instead of 10.7 cycles per 16 swish values).
    #[inline(always)]
    fn one_plus_exp_neg(self, x: __m512) -> __m512 {
        // SAFETY: AVX-512F, as for every method; EXP2_32NDS holds 32 f32s and the two
        // 16-lane loads read exactly them.
        unsafe {
            let s = _mm512_set1_ps;
            // Huge x would leave a huge r; above LOGISTIC_MAX e^−x is 0 anyway.
            let xc = _mm512_min_ps(s(super::LOGISTIC_MAX), x);
            let magic = s(ROUND_TO_32NDS);
            let u = _mm512_fmadd_ps(xc, s(NEG_LOG2E), magic);
            let k = _mm512_sub_ps(u, magic);
            let r = _mm512_fmsub_ps(xc, s(NEG_LOG2E), k);
            let table = EXP2_32NDS.as_ptr();
            let (lo, hi) = (_mm512_loadu_ps(table), _mm512_loadu_ps(table.add(16)));
            let scaled = _mm512_scalef_ps(_mm512_permutex2var_ps(lo, _mm512_castps_si512(u), hi), k);
            let [c1, c2] = EXP2_MINIMAX2;
            let p = _mm512_fmadd_ps(_mm512_fmadd_ps(s(c2), r, s(c1)), r, s(1.0));
            _mm512_fmadd_ps(scaled, p, s(1.0))
        }
    }
}

/// 2^(j/32) for j = 0..32, rounded to f32.
const EXP2_32NDS: [f32; 32] = [
    1.0,
    1.0218972,
    1.0442737,
    1.0671405,
    1.0905077,
    1.1143868,
    1.1387886,
    1.1637249,
    1.1892071,
    1.2152474,
    1.2418578,
    1.269051,
    1.2968396,
    1.3252367,
    1.3542556,
    1.38391,
    std::f32::consts::SQRT_2,
    1.4451808,
    1.4768262,
    1.5091645,
    1.5422108,
    1.5759809,
    1.6104903,
    1.6457555,
    1.6817929,
    1.7186193,
    1.7562522,
    1.7947091,
    1.8340081,
    1.8741677,
    1.9152066,
    1.9571441,
];

/// 2^r ≈ 1 + c1·r + c2·r² on |r| ≤ 1/64: relative-error minimax, 5.3e-8 in exact
/// arithmetic.
const EXP2_MINIMAX2: [f32; 2] = [0.693_157_3, 0.240_226_76];

/// −log2 e rounded to f32.
const NEG_LOG2E: f32 = -std::f32::consts::LOG2_E;

/// 1.5·2^18: adding it to |t| < 2^17 rounds t to a multiple of 1/32 (its unit in the last
/// place) and leaves 32·t mod 32 in the low 5 mantissa bits.
const ROUND_TO_32NDS: f32 = 393_216.0;
