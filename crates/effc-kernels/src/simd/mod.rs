//! The SIMD layer: one trait, [`Simd`], over each instruction set's f32 vectors, and the
//! vector math (activations, e^x) written once over it.
//!
//! Kernels are generic over `S: Simd` and written once. Each is instantiated per
//! instruction set inside one `#[target_feature]` entry function (the kernel table's
//! functions); every trait method and every generic helper is `#[inline(always)]` and has
//! no target feature of its own, so all of it inlines into that entry function and LLVM
//! compiles the intrinsics with its features. x86 intrinsics appear only in the trait
//! impls: a NEON variant is one more impl.
//!
//! Soundness: the impls' methods take `self`, a zero-sized token that only
//! [`Simd::assume`] makes, and only code running under the instruction set's target
//! feature calls that (an entry function whose contract says the CPU supports it).

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
pub mod portable;

use crate::{ActKind, Activation};

/// One instruction set's vector of f32 lanes and the operations the kernels use.
///
/// # Safety
/// An implementation's methods may execute its instruction set's instructions; a token
/// of the type exists only where the CPU supports them (see [`Simd::assume`]).
pub unsafe trait Simd: Copy {
    /// Lanes per vector.
    const LANES: usize;
    /// Vector registers the instruction set has (tiles are sized for them).
    const REGISTERS: usize;
    /// A vector of `LANES` f32s.
    type V: Copy;
    /// Which lanes of a partial vector (a channel or column tail) are real.
    type Mask: Copy;

    /// The token.
    ///
    /// # Safety
    /// The CPU supports the instruction set (callers run under its target feature).
    unsafe fn assume() -> Self;

    fn zero(self) -> Self::V;
    fn splat(self, x: f32) -> Self::V;
    /// Lanes `0..n` (`1 ≤ n ≤ LANES`).
    fn first(self, n: usize) -> Self::Mask;

    /// # Safety
    /// `LANES` values are readable at `p`.
    unsafe fn load(self, p: *const f32) -> Self::V;
    /// # Safety
    /// `LANES` values are writable at `p`.
    unsafe fn store(self, p: *mut f32, v: Self::V);
    /// The lanes in `m` from `p`, zeros elsewhere (a tail: slower than [`load`](Self::load)
    /// on some CPUs).
    ///
    /// # Safety
    /// The lanes in `m` are readable at `p`.
    unsafe fn load_part(self, p: *const f32, m: Self::Mask) -> Self::V;
    /// # Safety
    /// The lanes in `m` are writable at `p`.
    unsafe fn store_part(self, p: *mut f32, v: Self::V, m: Self::Mask);

    /// `LANES / 2` values into the low half, zeros in the high half: a narrow column tail
    /// computed at half width. (Zeros, not whatever the register held: the epilogue computes
    /// on the whole vector, and stale denormals or NaNs there cost microcode assists.)
    ///
    /// # Safety
    /// `LANES / 2` values are readable at `p`.
    unsafe fn load_half(self, p: *const f32) -> Self::V;
    /// Stores the low half.
    ///
    /// # Safety
    /// `LANES / 2` values are writable at `p`.
    unsafe fn store_half(self, p: *mut f32, v: Self::V);
    /// `a·b + c` on the low half, zeros in the high half; on cores that split wide
    /// operations it takes half the issue slots.
    fn fma_half(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;

    fn add(self, a: Self::V, b: Self::V) -> Self::V;
    fn sub(self, a: Self::V, b: Self::V) -> Self::V;
    fn mul(self, a: Self::V, b: Self::V) -> Self::V;
    fn div(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a·b + c`, fused where the instruction set has it.
    fn fma(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// `c − a·b`.
    fn fnma(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// `a < b ? a : b` per lane: `b` when either is NaN (x86's `minps` rule, which the
    /// activations rely on to pass a NaN `b` through).
    fn min(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a > b ? a : b` per lane: `b` when either is NaN.
    fn max(self, a: Self::V, b: Self::V) -> Self::V;
    /// Rounds to the nearest integer (ties to even).
    fn round(self, a: Self::V) -> Self::V;
    /// 2^n for integral `n` in [−126, 127], built in the exponent bits.
    fn pow2i(self, n: Self::V) -> Self::V;

    /// 1 + e^−x for `x` in [[`LOGISTIC_MIN`], [`LOGISTIC_MAX`]]: Cody–Waite reduction
    /// e^t = 2^n · e^g with n = round(t·log2 e), g = t − n·ln 2 in two parts, and a
    /// degree-7 Taylor polynomial for e^g on |g| ≤ ln2/2 (relative error 5e-9 in exact
    /// arithmetic). t is raised to −87.3 first: e^−87.3 ≈ 1.2e-38 keeps 2^n normal, and
    /// anything smaller vanishes beside the 1. An instruction set with a faster exact-enough
    /// sequence overrides this.
    #[inline(always)]
    fn one_plus_exp_neg(self, x: Self::V) -> Self::V {
        let t = self.max(self.splat(-87.3), self.sub(self.zero(), x));
        let n = self.round(self.mul(t, self.splat(std::f32::consts::LOG2_E)));
        let g = self.fnma(n, self.splat(LN2_HI), t);
        let g = self.fnma(n, self.splat(LN2_LO), g);
        let mut q = self.splat(1.0 / 5040.0);
        for c in [1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
            q = self.fma(q, g, self.splat(c));
        }
        self.fma(q, self.pow2i(n), self.splat(1.0))
    }
}

/// Loads a full vector, or with `TAIL` the lanes in `m` (zeros elsewhere): kernels pass
/// `TAIL` as a compile-time constant so that full vectors never pay for a mask.
///
/// # Safety
/// As for [`Simd::load`], or with `TAIL` [`Simd::load_part`].
#[inline(always)]
pub unsafe fn load<S: Simd, const TAIL: bool>(s: S, p: *const f32, m: S::Mask) -> S::V {
    // SAFETY: forwarded.
    unsafe { if TAIL { s.load_part(p, m) } else { s.load(p) } }
}

/// Stores a full vector, or with `TAIL` the lanes in `m`.
///
/// # Safety
/// As for [`Simd::store`], or with `TAIL` [`Simd::store_part`].
#[inline(always)]
pub unsafe fn store<S: Simd, const TAIL: bool>(s: S, p: *mut f32, v: S::V, m: S::Mask) {
    // SAFETY: forwarded.
    unsafe { if TAIL { s.store_part(p, v, m) } else { s.store(p, v) } }
}

/// The epilogue activation (NaN-preserving: `max(c, x)` returns x for NaN x). No
/// closures here or in any kernel body: a closure does not inherit `#[inline(always)]`,
/// and one LLVM leaves out of line is compiled without the entry's target features.
#[inline(always)]
pub fn activate<S: Simd>(s: S, x: S::V, act: &Activation) -> S::V {
    let zero = s.zero();
    let one = s.splat(1.0);
    match act.kind {
        ActKind::Identity => x,
        ActKind::Relu => s.max(zero, x),
        ActKind::Clip => s.min(s.splat(act.b), s.max(s.splat(act.a), x)),
        // max(0, x) + a·min(0, x): x where x ≥ 0, a·x below, NaN through both.
        ActKind::LeakyRelu => s.fma(s.splat(act.a), s.min(zero, x), s.max(zero, x)),
        ActKind::HardSigmoid => s.min(one, s.max(zero, s.fma(x, s.splat(act.a), s.splat(act.b)))),
        ActKind::HardSwish => s.mul(x, s.min(one, s.max(zero, s.fma(x, s.splat(1.0 / 6.0), s.splat(0.5))))),
        ActKind::Sigmoid => sigmoid(s, x),
        ActKind::Swish => swish(s, x),
    }
}

/// `x` raised to [`LOGISTIC_MIN`] (NaN stays NaN: `max` returns its second operand for
/// NaN), where 1/(1 + e^−x) is still a normal number.
#[inline(always)]
fn logistic_floor<S: Simd>(s: S, x: S::V) -> S::V {
    s.max(s.splat(LOGISTIC_MIN), x)
}

/// 1 / (1 + e^−x); above [`LOGISTIC_MAX`] e^−x is 0 in f32, and the clamp keeps the
/// reduction small for huge x.
#[inline(always)]
fn sigmoid<S: Simd>(s: S, x: S::V) -> S::V {
    let d = s.one_plus_exp_neg(s.min(s.splat(LOGISTIC_MAX), logistic_floor(s, x)));
    s.div(s.splat(1.0), d)
}

/// x / (1 + e^−x) (a division: the divider runs beside the FMA units the GEMM keeps busy,
/// where a reciprocal estimate and a Newton step would take three of their slots), with x
/// raised to [`LOGISTIC_MIN`] in the product too: the two agree wherever x is above it,
/// and below it the product is under 1.4e-36 in magnitude, as the true value (also at
/// x = −∞, the limit, where the formula would give −∞·0 = NaN).
#[inline(always)]
fn swish<S: Simd>(s: S, x: S::V) -> S::V {
    let xf = logistic_floor(s, x);
    s.div(xf, s.one_plus_exp_neg(s.min(s.splat(LOGISTIC_MAX), xf)))
}

/// ln 2 split so that n·LN2_HI is exact for |n| < 2^9 (Cody–Waite range reduction).
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;

/// The logistic's input range: e^87 keeps 1/(1 + e^−x) ≈ 1.6e-38 a normal number, and
/// above 104 e^−x is 0 in f32.
pub const LOGISTIC_MIN: f32 = -87.0;
pub const LOGISTIC_MAX: f32 = 104.0;
