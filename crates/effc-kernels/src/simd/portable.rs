//! Plain Rust on 4-lane arrays, which LLVM turns into the baseline target's vectors (SSE2
//! on x86-64: 16 xmm registers); the fallback on CPUs without a tuned variant.

use super::Simd;

/// The portable token (every CPU runs it).
#[derive(Clone, Copy)]
pub struct Portable(());

/// Four lanes, aligned as an xmm register.
#[derive(Clone, Copy)]
#[repr(C, align(16))]
pub struct F32x4([f32; 4]);

impl Portable {
    /// The token: nothing to assume.
    pub fn new() -> Self {
        Portable(())
    }

    #[inline(always)]
    fn map2(a: F32x4, b: F32x4, f: impl Fn(f32, f32) -> f32) -> F32x4 {
        F32x4(std::array::from_fn(|i| f(a.0[i], b.0[i])))
    }
}

impl Default for Portable {
    fn default() -> Self {
        Portable::new()
    }
}

// SAFETY: plain Rust: every CPU runs it.
unsafe impl Simd for Portable {
    const LANES: usize = 4;
    const REGISTERS: usize = 16;
    type V = F32x4;
    /// Lanes `0..n`.
    type Mask = usize;

    #[inline(always)]
    unsafe fn assume() -> Self {
        Portable(())
    }
    #[inline(always)]
    fn zero(self) -> F32x4 {
        F32x4([0.0; 4])
    }
    #[inline(always)]
    fn splat(self, x: f32) -> F32x4 {
        F32x4([x; 4])
    }
    #[inline(always)]
    fn first(self, n: usize) -> usize {
        n
    }
    // SAFETY (pointer methods): the trait's contracts.
    #[inline(always)]
    unsafe fn load_i8(self, p: *const i8) -> F32x4 {
        let q = unsafe { std::ptr::read_unaligned(p as *const [i8; 4]) };
        F32x4(q.map(f32::from))
    }
    #[inline(always)]
    unsafe fn load(self, p: *const f32) -> F32x4 {
        F32x4(unsafe { std::ptr::read_unaligned(p as *const [f32; 4]) })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32, v: F32x4) {
        unsafe { std::ptr::write_unaligned(p as *mut [f32; 4], v.0) }
    }
    #[inline(always)]
    unsafe fn load_part(self, p: *const f32, m: usize) -> F32x4 {
        let mut v = [0.0; 4];
        unsafe { std::ptr::copy_nonoverlapping(p, v.as_mut_ptr(), m) };
        F32x4(v)
    }
    #[inline(always)]
    unsafe fn store_part(self, p: *mut f32, v: F32x4, m: usize) {
        unsafe { std::ptr::copy_nonoverlapping(v.0.as_ptr(), p, m) }
    }
    #[inline(always)]
    unsafe fn load_half(self, p: *const f32) -> F32x4 {
        unsafe { self.load_part(p, 2) }
    }
    #[inline(always)]
    unsafe fn store_half(self, p: *mut f32, v: F32x4) {
        unsafe { self.store_part(p, v, 2) }
    }
    #[inline(always)]
    fn fma_half(self, a: F32x4, b: F32x4, c: F32x4) -> F32x4 {
        self.fma(a, b, c)
    }
    #[inline(always)]
    fn add(self, a: F32x4, b: F32x4) -> F32x4 {
        Self::map2(a, b, |x, y| x + y)
    }
    #[inline(always)]
    fn sub(self, a: F32x4, b: F32x4) -> F32x4 {
        Self::map2(a, b, |x, y| x - y)
    }
    #[inline(always)]
    fn mul(self, a: F32x4, b: F32x4) -> F32x4 {
        Self::map2(a, b, |x, y| x * y)
    }
    #[inline(always)]
    fn div(self, a: F32x4, b: F32x4) -> F32x4 {
        Self::map2(a, b, |x, y| x / y)
    }
    /// Unfused: the baseline target has no FMA instruction (`mul_add` would be a call).
    #[inline(always)]
    fn fma(self, a: F32x4, b: F32x4, c: F32x4) -> F32x4 {
        self.add(self.mul(a, b), c)
    }
    #[inline(always)]
    fn fnma(self, a: F32x4, b: F32x4, c: F32x4) -> F32x4 {
        self.sub(c, self.mul(a, b))
    }
    #[inline(always)]
    fn min(self, a: F32x4, b: F32x4) -> F32x4 {
        Self::map2(a, b, |x, y| if x < y { x } else { y })
    }
    #[inline(always)]
    fn max(self, a: F32x4, b: F32x4) -> F32x4 {
        Self::map2(a, b, |x, y| if x > y { x } else { y })
    }
    /// x86-64's prefetch is baseline (SSE); elsewhere the trait's default, no hint.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn prefetch(self, p: *const u8, cache: super::Cache) {
        super::x86_prefetch(p, cache)
    }

    #[inline(always)]
    fn round(self, a: F32x4) -> F32x4 {
        F32x4(a.0.map(f32::round_ties_even))
    }
    #[inline(always)]
    fn pow2_shifted(self, k: F32x4) -> F32x4 {
        F32x4(k.0.map(|k| f32::from_bits(k.to_bits().wrapping_add(127) << 23)))
    }
}
