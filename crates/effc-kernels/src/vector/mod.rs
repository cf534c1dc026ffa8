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
