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

/// 2^(j/32) for j = 0..32, rounded to f32.
#[cfg(target_arch = "x86_64")]
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
#[cfg(target_arch = "x86_64")]
const EXP2_MINIMAX2: [f32; 2] = [0.693_157_3, 0.240_226_76];

/// −log2 e rounded to f32.
#[cfg(target_arch = "x86_64")]
const NEG_LOG2E: f32 = -std::f32::consts::LOG2_E;

/// 1.5·2^18: adding it to |t| < 2^17 rounds t to a multiple of 1/32 (its unit in the last
/// place) and leaves 32·t mod 32 in the low 5 mantissa bits.
#[cfg(target_arch = "x86_64")]
const ROUND_TO_32NDS: f32 = 393_216.0;

/// The logistic's input range in the AVX-512 kernels: e^87 keeps 1/(1 + e^−x) ≈ 1.6e-38 a
/// normal number, and above 104 e^−x is 0 in f32.
#[cfg(target_arch = "x86_64")]
const LOGISTIC_MIN: f32 = -87.0;
#[cfg(target_arch = "x86_64")]
const LOGISTIC_MAX: f32 = 104.0;
