//! The activations a kernel can apply in its epilogue, with their scalar definitions.

/// Which activation; the parameters live in [`Activation`].
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActKind {
    Identity = 0,
    /// max(x, 0)
    Relu = 1,
    /// min(max(x, a), b)
    Clip = 2,
    /// x if x ≥ 0, else a·x
    LeakyRelu = 3,
    /// clamp(a·x + b, 0, 1)
    HardSigmoid = 4,
    /// x · clamp(x/6 + 1/2, 0, 1)
    HardSwish = 5,
    /// 1 / (1 + e^-x)
    Sigmoid = 6,
    /// x / (1 + e^-x)
    Swish = 7,
    /// erf(x)
    Erf = 8,
    /// x · Φ(x) = ½x(1 + erf(x/√2))
    Gelu = 9,
    /// ½x(1 + tanh(√(2/π)(x + 0.044715x³))) = x / (1 + e^−2√(2/π)(x + 0.044715x³))
    GeluTanh = 10,
    /// clamp(round_half_even(x / a), b, c) · a: a QDQ model's QuantizeLinear →
    /// DequantizeLinear pair, with b and c the lowest and highest level less the zero point
    QuantizeDequantize = 11,
    /// A QDQ swish: a = snap₀(x), snap₂(a · snap₁(sigmoid(a))), snap i to the levels of
    /// [`Activation::levels`]`(i)` (the vector form divides only in snap₀: see
    /// `simd::activate_all`)
    QuantizedSwish = 12,
    /// A QDQ sigmoid: snap₂(sigmoid(snap₀(x)))
    QuantizedSigmoid = 13,
}

/// An activation and its parameters, laid out for machine code to pass around.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Activation {
    pub kind: ActKind,
    pub a: f32,
    pub b: f32,
    pub c: f32,
    /// The quantized activations' second and third levels (scale, lowest, highest), after
    /// the first in a, b, c.
    pub more: [f32; 6],
}

impl Activation {
    pub const IDENTITY: Activation = Activation { kind: ActKind::Identity, a: 0.0, b: 0.0, c: 0.0, more: [0.0; 6] };

    pub fn new(kind: ActKind) -> Self {
        Activation { kind, ..Self::IDENTITY }
    }

    pub fn with(kind: ActKind, a: f32, b: f32) -> Self {
        Activation { kind, a, b, ..Self::IDENTITY }
    }

    /// The snap to quantization levels `scale · (lo..=hi)` (levels less the zero point).
    pub fn quantize_dequantize(scale: f32, lo: f32, hi: f32) -> Self {
        Activation { kind: ActKind::QuantizeDequantize, a: scale, b: lo, c: hi, ..Self::IDENTITY }
    }

    /// A QDQ swish (`levels`: input, gate, output) or sigmoid (input, unused, output),
    /// each as (scale, lowest, highest level less the zero point).
    pub fn quantized(kind: ActKind, levels: [(f32, f32, f32); 3]) -> Self {
        let [(a, b, c), (d, e, f), (g, h, i)] = levels;
        Activation { kind, a, b, c, more: [d, e, f, g, h, i] }
    }

    /// Snap `i` (0, 1, 2) of a quantized activation: (scale, lowest, highest).
    #[inline(always)]
    pub fn levels(&self, i: usize) -> (f32, f32, f32) {
        match i {
            0 => (self.a, self.b, self.c),
            1 => (self.more[0], self.more[1], self.more[2]),
            _ => (self.more[3], self.more[4], self.more[5]),
        }
    }

    /// The reference definition, in f32 with the standard library's `exp`.
    pub fn apply(&self, x: f32) -> f32 {
        match self.kind {
            ActKind::Identity => x,
            ActKind::Relu => {
                if x < 0.0 {
                    0.0
                } else {
                    x
                }
            }
            ActKind::Clip => {
                if x.is_nan() {
                    x
                } else {
                    x.max(self.a).min(self.b)
                }
            }
            ActKind::LeakyRelu => {
                if x < 0.0 {
                    self.a * x
                } else {
                    x
                }
            }
            ActKind::HardSigmoid => clamp01(self.a * x + self.b),
            ActKind::HardSwish => x * clamp01(x * (1.0 / 6.0) + 0.5),
            ActKind::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            ActKind::Swish => x / (1.0 + (-x).exp()),
            ActKind::Erf => erf_reference(x as f64) as f32,
            // x·Φ(x) tends to 0 at −∞, where the formulas give −∞·0.
            ActKind::Gelu | ActKind::GeluTanh if x == f32::NEG_INFINITY => -0.0,
            ActKind::Gelu => {
                let x = x as f64;
                (0.5 * x * (1.0 + erf_reference(x * std::f64::consts::FRAC_1_SQRT_2))) as f32
            }
            ActKind::GeluTanh => {
                let x = x as f64;
                let z = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x);
                (0.5 * x * (1.0 + z.tanh())) as f32
            }
            ActKind::QuantizeDequantize => snap(x, self.levels(0)),
            ActKind::QuantizedSwish => {
                let a = snap(x, self.levels(0));
                let g = snap(1.0 / (1.0 + (-a).exp()), self.levels(1));
                snap(a * g, self.levels(2))
            }
            ActKind::QuantizedSigmoid => {
                let a = snap(x, self.levels(0));
                snap(1.0 / (1.0 + (-a).exp()), self.levels(2))
            }
        }
    }
}

/// x snapped to the levels `scale · (lo..=hi)`; NaN stays NaN.
fn snap(x: f32, (scale, lo, hi): (f32, f32, f32)) -> f32 {
    if x.is_nan() { x } else { (x / scale).round_ties_even().clamp(lo, hi) * scale }
}

/// erf by its Maclaurin series in f64 (terms up to e^16 ≈ 9e6 in size below |x| = 4, so
/// about 1e-9 absolute error), ±1 beyond, where erf is within 1.6e-8 of it: the scalar
/// reference the vector forms are tested against, not fast.
fn erf_reference(x: f64) -> f64 {
    if x.is_nan() || x.abs() >= 4.0 {
        return if x.is_nan() { x } else { x.signum() };
    }
    let (x2, mut term, mut sum) = (x * x, x, x);
    for n in 1..120 {
        term *= -x2 / n as f64;
        sum += term / (2 * n + 1) as f64;
    }
    sum * std::f64::consts::FRAC_2_SQRT_PI
}

fn clamp01(x: f32) -> f32 {
    if x.is_nan() { x } else { x.clamp(0.0, 1.0) }
}
