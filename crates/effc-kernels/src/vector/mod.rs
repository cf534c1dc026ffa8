//! Per-instruction-set vector math shared by the kernels of that instruction set.

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;

/// ln 2 split so that n·LN2_HI is exact for |n| < 2^9 (Cody–Waite range reduction).
#[cfg(target_arch = "x86_64")]
const LN2_HI: f32 = 0.693_359_4;
#[cfg(target_arch = "x86_64")]
const LN2_LO: f32 = -2.121_944_4e-4;

/// e^−h ≈ c0 + c1·h + … + c5·h^5 on |h| ≤ ln2/2: relative-error minimax (Remez), 7.5e-8 in
/// exact arithmetic, 1.9e-7 evaluated by Horner with f32 fused multiply-adds.
#[cfg(target_arch = "x86_64")]
const EXP_NEG_MINIMAX5: [f32; 6] =
    [1.000_000_1, -0.999_999_7, 0.499_988_9, -0.166_675_78, 0.041_915_704, -0.008_297_608];

/// The logistic's input range in the AVX-512 kernels: e^87 keeps 1/(1 + e^−x) ≈ 1.6e-38 a
/// normal number, and above 104 e^−x is 0 in f32.
#[cfg(target_arch = "x86_64")]
const LOGISTIC_MIN: f32 = -87.0;
#[cfg(target_arch = "x86_64")]
const LOGISTIC_MAX: f32 = 104.0;
