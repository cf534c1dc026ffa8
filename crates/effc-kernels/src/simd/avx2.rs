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
    unsafe fn load_i8(self, p: *const i8) -> __m256 {
        unsafe { _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(p as *const __m128i))) }
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
    fn round(self, a: __m256) -> __m256 {
        unsafe { _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(a) }
    }
    #[inline(always)]
    fn prefetch(self, p: *const u8, cache: super::Cache) {
        super::x86_prefetch(p, cache)
    }

    #[inline(always)]
    fn pow2_shifted(self, k: __m256) -> __m256 {
        unsafe {
            let biased = _mm256_add_epi32(_mm256_castps_si256(k), _mm256_set1_epi32(127));
            _mm256_castsi256_ps(_mm256_slli_epi32::<23>(biased))
        }
    }

    /// The AVX-512 variant's table method with the 8 entries one `vpermps` holds: t =
    /// −y·log2 e = k + r with k a multiple of 1/8 and |r| ≤ 1/16, so e^−y = 2^⌊k⌋ ·
    /// 2^(k − ⌊k⌋) · 2^r; the table entry is picked by k's low 3 mantissa bits, 2^⌊k⌋ is
    /// added to its exponent (the bits above them, shifted into place), and 2^r is a
    /// degree-3 polynomial: 12 vector operations where the generic sequence takes 15, and
    /// the swish of B0's small-K expansions and depthwise rows is most of their work on
    /// AVX2. y is x lowered to 87.3, as in the generic sequence, so that 2^⌊k⌋ ≥ 2^−126
    /// and the exponent add stays a normal number.
    #[inline(always)]
    fn one_plus_exp_neg(self, x: __m256) -> __m256 {
        // SAFETY: AVX2 and FMA, as for every method.
        unsafe {
            let s = _mm256_set1_ps;
            let y = _mm256_min_ps(s(87.3), x);
            let magic = s(ROUND_TO_8THS);
            let u = _mm256_fmadd_ps(y, s(-std::f32::consts::LOG2_E), magic);
            let k = _mm256_sub_ps(u, magic);
            let r = _mm256_fmsub_ps(y, s(-std::f32::consts::LOG2_E), k);
            let bits = _mm256_castps_si256(u);
            let [t0, t1, t2, t3, t4, t5, t6, t7] = EXP2_8THS;
            let entry = _mm256_permutevar8x32_ps(_mm256_setr_ps(t0, t1, t2, t3, t4, t5, t6, t7), bits);
            // (bits >> 3) << 23 is ⌊k⌋ << 23 mod 2^32: the exponent and the offset that
            // `magic` added shift out.
            let whole = _mm256_slli_epi32::<23>(_mm256_srli_epi32::<3>(bits));
            let scaled = _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(entry), whole));
            let [c1, c2, c3] = EXP2_MINIMAX3;
            let p = _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_fmadd_ps(s(c3), r, s(c2)), r, s(c1)), r, s(1.0));
            _mm256_fmadd_ps(scaled, p, s(1.0))
        }
    }
}

/// 2^(j/8) for j = 0..8, rounded to f32.
const EXP2_8THS: [f32; 8] =
    [1.0, 1.090_507_7, 1.189_207_1, 1.296_839_6, std::f32::consts::SQRT_2, 1.542_210_8, 1.681_792_9, 1.834_008_1];

/// 2^r ≈ 1 + c1·r + c2·r² + c3·r³ on |r| ≤ 1/16: relative-error minimax (whose c1 rounds
/// to ln 2 in f32), 3.8e-8 in exact arithmetic, 9.5e-8 evaluated in f32.
const EXP2_MINIMAX3: [f32; 3] = [std::f32::consts::LN_2, 0.240_264_06, 0.055_498_894];

/// 1.5·2^20: adding it to |t| < 2^19 rounds t to a multiple of 1/8 (its unit in the last
/// place) and leaves 8·t mod 8 in the low 3 mantissa bits.
const ROUND_TO_8THS: f32 = 1_572_864.0;
