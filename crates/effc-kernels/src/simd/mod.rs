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

/// Trait methods that are one intrinsic each: `name(operands) => intrinsic;`, the
/// operands all vectors of type `$v`.
macro_rules! lanewise {
    ($v:ty; $($name:ident($($arg:ident),+) => $intrinsic:ident;)*) => {
        $(
            #[inline(always)]
            fn $name(self, $($arg: $v),+) -> $v {
                // SAFETY: the token proves the CPU runs the instruction set.
                unsafe { $intrinsic($($arg),+) }
            }
        )*
    };
}

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
pub mod portable;

use crate::{ActKind, Activation};

/// Which cache a [`Simd::prefetch`] requests a line into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cache {
    /// For the kernel's own next loads.
    L1,
    /// For a later kernel's, or a later step's, without evicting what this one reads.
    L2,
}

/// x86-64's prefetch (SSE, which every x86-64 CPU has), for every x86 variant.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn x86_prefetch(p: *const u8, cache: Cache) {
    use std::arch::x86_64::{_MM_HINT_T0, _MM_HINT_T1, _mm_prefetch};
    // SAFETY: a prefetch is a hint: it neither faults nor changes memory, whatever the
    // address, and SSE is part of x86-64.
    unsafe {
        match cache {
            Cache::L1 => _mm_prefetch::<_MM_HINT_T0>(p as *const i8),
            Cache::L2 => _mm_prefetch::<_MM_HINT_T1>(p as *const i8),
        }
    }
}

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

    /// `LANES` int8 values converted to f32 (weights stored as int8).
    ///
    /// # Safety
    /// `LANES` bytes are readable at `p`.
    unsafe fn load_i8(self, p: *const i8) -> Self::V;

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
    /// The nearest integer per lane, ties to even (NaN through).
    fn round(self, a: Self::V) -> Self::V;
    /// 2^n from `k = n + SHIFTER` (the sum holds the integer n in its low mantissa bits),
    /// for n in [−126, 127]: one integer add and shift on the float's bits.
    fn pow2_shifted(self, k: Self::V) -> Self::V;

    /// Requests the cache line holding `p` into `cache`: a hint, which neither faults nor
    /// changes memory whatever the address. The default does nothing: an architecture
    /// without a prefetch instruction loses only the hint.
    #[inline(always)]
    fn prefetch(self, p: *const u8, cache: Cache) {
        let _ = (p, cache);
    }

    /// 1 + e^−x for `x ≥` [`LOGISTIC_MIN`] (NaN through): Cody–Waite reduction e^−y =
    /// 2^n · e^−r with n = round(−y·log2 e) (by adding [`SHIFTER`]) and r = y + n·ln 2 in
    /// two parts, |r| ≤ ln2/2, then a degree-5 minimax polynomial for e^−r (relative error
    /// 1.7e-7 in f32): 15 vector operations, where a degree-7 Taylor polynomial, a rounding
    /// instruction and a conversion took 20 and B0's small-K expansions on AVX2 spent as
    /// long in swish as in their products. y is x lowered to 87.3 (e^−87.3 ≈ 1.2e-38 keeps
    /// 2^n normal, and anything smaller vanishes beside the 1). An instruction set with a
    /// faster exact-enough sequence overrides this.
    #[inline(always)]
    fn one_plus_exp_neg(self, x: Self::V) -> Self::V {
        let y = self.min(self.splat(87.3), x);
        let shifted = self.fma(y, self.splat(-std::f32::consts::LOG2_E), self.splat(SHIFTER));
        let n = self.sub(shifted, self.splat(SHIFTER));
        let r = self.fma(n, self.splat(LN2_HI), y);
        let r = self.fma(n, self.splat(LN2_LO), r);
        let [c0, c1, c2, c3, c4, c5] = EXP_NEG_MINIMAX5;
        let mut q = self.splat(c5);
        for c in [c4, c3, c2, c1, c0] {
            q = self.fma(q, r, self.splat(c));
        }
        self.fma(q, self.pow2_shifted(shifted), self.splat(1.0))
    }
}

/// 1.5·2^23: adding it to a float of magnitude below 2^22 rounds the sum to an integer
/// (ties to even), which its low mantissa bits hold in two's complement.
pub const SHIFTER: f32 = 12_582_912.0;

/// e^−r ≈ Σ c_i r^i on |r| ≤ ln2/2: the minimax fit of e^r (relative weight) with c_0 = 1,
/// odd coefficients negated.
const EXP_NEG_MINIMAX5: [f32; 6] = [1.0, -0.999_999_7, 0.499_991_5, -0.166_676_36, 0.041_897_93, -0.008_290_32];

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

/// The epilogue activation of one vector (NaN-preserving: `max(c, x)` returns x for NaN
/// x). No closures here or in any kernel body: a closure does not inherit
/// `#[inline(always)]`, and one LLVM leaves out of line is compiled without the entry's
/// target features.
#[inline(always)]
pub fn activate<S: Simd>(s: S, x: S::V, act: &Activation) -> S::V {
    let mut one = [[x]];
    activate_all(s, &mut one, act);
    one[0][0]
}

/// [`activate`] on every vector of a register tile, the activation chosen once for all
/// (chosen per vector, a jump table stood between one vector's activation and the
/// next's in the AVX2 GEMM tile).
#[inline(always)]
pub fn activate_all<S: Simd, const M: usize, const V: usize>(s: S, tile: &mut [[S::V; V]; M], act: &Activation) {
    let zero = s.zero();
    let one = s.splat(1.0);
    // The arm's formula on every vector (a macro, not a closure: see `activate`).
    macro_rules! each {
        (|$x:ident| $formula:expr) => {
            for row in tile.iter_mut() {
                for value in row.iter_mut() {
                    let $x = *value;
                    *value = $formula;
                }
            }
        };
    }
    match act.kind {
        ActKind::Identity => {}
        ActKind::Relu => each!(|x| s.max(zero, x)),
        ActKind::Clip => each!(|x| s.min(s.splat(act.b), s.max(s.splat(act.a), x))),
        // max(0, x) + a·min(0, x): x where x ≥ 0, a·x below, NaN through both.
        ActKind::LeakyRelu => each!(|x| s.fma(s.splat(act.a), s.min(zero, x), s.max(zero, x))),
        ActKind::HardSigmoid => each!(|x| s.min(one, s.max(zero, s.fma(x, s.splat(act.a), s.splat(act.b))))),
        ActKind::HardSwish => {
            each!(|x| s.mul(x, s.min(one, s.max(zero, s.fma(x, s.splat(1.0 / 6.0), s.splat(0.5))))))
        }
        ActKind::Sigmoid => each!(|x| sigmoid(s, x)),
        ActKind::Swish => each!(|x| swish(s, x)),
        ActKind::Erf => each!(|x| erf(s, x)),
        ActKind::Gelu => each!(|x| gelu(s, x)),
        ActKind::GeluTanh => each!(|x| gelu_tanh(s, x)),
        ActKind::QuantizeDequantize => {
            let l = levels(s, act, 0);
            each!(|x| snap(s, x, l))
        }
        // The input snap divides, as QuantizeLinear does; the gate's and the output's snaps
        // follow f32 code (the sigmoid) anyway, so they take one division less each: the
        // gate is round((1/scale) / (1 + e^−a)), the output multiplies by 1/scale. Divisions
        // are most of these activations' cost, and B0 runs one per expanded value twice.
        ActKind::QuantizedSwish => {
            let (l0, l1, l2) = (levels(s, act, 0), levels(s, act, 1), levels(s, act, 2));
            let (r1, r2) = (s.splat(1.0 / act.levels(1).0), s.splat(1.0 / act.levels(2).0));
            each!(|x| {
                let a = snap(s, x, l0);
                let g = gate_level(s, a, l1, r1);
                scaled_snap(s, s.mul(a, g), l2, r2)
            })
        }
        ActKind::QuantizedSigmoid => {
            let (l0, l2) = (levels(s, act, 0), levels(s, act, 2));
            let r2 = s.splat(1.0 / act.levels(2).0);
            each!(|x| gate_level(s, snap(s, x, l0), l2, r2))
        }
    }
}

/// sigmoid(a) snapped to `(scale, lo, hi)` with `inv` = 1/scale: one division,
/// round(inv / (1 + e^−a)).
#[inline(always)]
fn gate_level<S: Simd>(s: S, a: S::V, (scale, lo, hi): (S::V, S::V, S::V), inv: S::V) -> S::V {
    let q = s.round(s.div(inv, s.one_plus_exp_neg(logistic_floor(s, a))));
    s.mul(s.min(hi, s.max(lo, q)), scale)
}

/// x snapped to `(scale, lo, hi)` through a multiplication by `inv` = 1/scale (which may
/// round a value within an ulp of a tie the other way than the division would).
#[inline(always)]
fn scaled_snap<S: Simd>(s: S, x: S::V, (scale, lo, hi): (S::V, S::V, S::V), inv: S::V) -> S::V {
    s.mul(s.min(hi, s.max(lo, s.round(s.mul(x, inv)))), scale)
}

/// Snap `i` of a quantized activation as vectors (scale, lowest, highest).
#[inline(always)]
fn levels<S: Simd>(s: S, act: &Activation, i: usize) -> (S::V, S::V, S::V) {
    let (scale, lo, hi) = act.levels(i);
    (s.splat(scale), s.splat(lo), s.splat(hi))
}

/// clamp(round(x / scale), lo, hi) · scale, ties to even (NaN through: `max` and `min`
/// return their second operand for NaN).
#[inline(always)]
fn snap<S: Simd>(s: S, x: S::V, (scale, lo, hi): (S::V, S::V, S::V)) -> S::V {
    s.mul(s.min(hi, s.max(lo, s.round(s.div(x, scale)))), scale)
}

/// erf(x) ≈ x·P(x²)/Q(x²) for |x| ≤ [`ERF_CLAMP`], x clamped there first (NaN through):
/// a rational fit of degree 5 over 5 in x² (relative error 2e-8 in f64, 3.6e-7 evaluated
/// in f32; fitted for effc by iterated weighted least squares), held to [−1, 1]. Beyond
/// the clamp erf is 1 in f32. The coefficients are lowest degree first; JIT code evaluates the same ones.
#[inline(always)]
pub fn erf<S: Simd>(s: S, x: S::V) -> S::V {
    let x = s.min(s.splat(ERF_CLAMP), s.max(s.splat(-ERF_CLAMP), x));
    let t = s.mul(x, x);
    let [p0, p1, p2, p3, p4, p5] = ERF_P;
    let [q0, q1, q2, q3, q4, q5] = ERF_Q;
    let mut p = s.splat(p5);
    for c in [p4, p3, p2, p1, p0] {
        p = s.fma(p, t, s.splat(c));
    }
    let mut q = s.splat(q5);
    for c in [q4, q3, q2, q1, q0] {
        q = s.fma(q, t, s.splat(c));
    }
    // The fit overshoots 1 by up to an ulp near the clamp; GELU's 1 + erf would turn that
    // into a wrong sign, so the result is held to [−1, 1].
    let one = s.splat(1.0);
    s.min(one, s.max(s.splat(-1.0), s.div(s.mul(x, p), q)))
}

/// ½x(1 + erf(x/√2)), x raised to [`GELU_MIN`] (below it the value is under 1e-18 in
/// magnitude, and at x = −∞ the formula would give −∞·0).
#[inline(always)]
fn gelu<S: Simd>(s: S, x: S::V) -> S::V {
    let half = s.mul(s.max(s.splat(GELU_MIN), x), s.splat(0.5));
    let e = erf(s, s.mul(half, s.splat(std::f32::consts::SQRT_2)));
    s.fma(half, e, half)
}

/// x / (1 + e^−z), z = 2√(2/π)·x·(1 + 0.044715x²): the tanh form as a logistic, x raised
/// to [`GELU_MIN`] as in [`gelu`].
#[inline(always)]
fn gelu_tanh<S: Simd>(s: S, x: S::V) -> S::V {
    let x = s.max(s.splat(GELU_MIN), x);
    let x2 = s.mul(x, x);
    let z = s.mul(x, s.fma(x2, s.splat(GELU_TANH_K * 0.044_715), s.splat(GELU_TANH_K)));
    s.div(x, s.one_plus_exp_neg(logistic_floor(s, z)))
}

/// Where [`erf`] clamps its input: erf(3.925) = 1 − 2.8e-8 rounds to 1 in f32.
pub const ERF_CLAMP: f32 = 3.925;
/// P and Q of [`erf`], lowest degree first.
pub const ERF_P: [f32; 6] =
    [std::f32::consts::FRAC_2_SQRT_PI, 0.190_595_51, 0.052_769_44, 0.003_772_612, 0.000_284_842, 2.045_965_9e-6];
pub const ERF_Q: [f32; 6] = [1.0, 0.502_243_6, 0.114_183_37, 0.014_983_31, 0.001_163_868_2, 3.804_708e-5];
/// 2√(2/π): the tanh form of GELU as a logistic of this times x(1 + 0.044715x²).
pub const GELU_TANH_K: f32 = 1.595_769;
/// Where GELU's input is raised to: |GELU(−9)| < 1e-18.
pub const GELU_MIN: f32 = -9.0;

/// `x` raised to [`LOGISTIC_MIN`] (NaN stays NaN: `max` returns its second operand for
/// NaN), where 1/(1 + e^−x) is still a normal number.
#[inline(always)]
fn logistic_floor<S: Simd>(s: S, x: S::V) -> S::V {
    s.max(s.splat(LOGISTIC_MIN), x)
}

/// 1 / (1 + e^−x).
#[inline(always)]
fn sigmoid<S: Simd>(s: S, x: S::V) -> S::V {
    s.div(s.splat(1.0), s.one_plus_exp_neg(logistic_floor(s, x)))
}

/// x / (1 + e^−x) (a division: the divider runs beside the FMA units the GEMM keeps busy,
/// where a reciprocal estimate and a Newton step would take three of their slots), with x
/// raised to [`LOGISTIC_MIN`] in the product too: the two agree wherever x is above it,
/// and below it the product is under 1.4e-36 in magnitude, as the true value (also at
/// x = −∞, the limit, where the formula would give −∞·0 = NaN).
#[inline(always)]
fn swish<S: Simd>(s: S, x: S::V) -> S::V {
    let xf = logistic_floor(s, x);
    s.div(xf, s.one_plus_exp_neg(xf))
}

/// ln 2 split so that n·LN2_HI is exact for |n| < 2^9 (Cody–Waite range reduction).
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;

/// The logistic's input range: e^87 keeps 1/(1 + e^−x) ≈ 1.6e-38 a normal number, and
/// above 104 e^−x is 0 in f32 (a reduction that needs a bounded input clamps to it).
pub const LOGISTIC_MIN: f32 = -87.0;
pub const LOGISTIC_MAX: f32 = 104.0;
