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
}

/// An activation and its parameters, laid out for machine code to pass around.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Activation {
    pub kind: ActKind,
    pub a: f32,
    pub b: f32,
}

impl Activation {
    pub const IDENTITY: Activation = Activation { kind: ActKind::Identity, a: 0.0, b: 0.0 };

    pub fn new(kind: ActKind) -> Self {
        Activation { kind, a: 0.0, b: 0.0 }
    }

    pub fn with(kind: ActKind, a: f32, b: f32) -> Self {
        Activation { kind, a, b }
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
        }
    }
}

fn clamp01(x: f32) -> f32 {
    if x.is_nan() { x } else { x.clamp(0.0, 1.0) }
}
