//! Typed operations. Every parameter is resolved to a static Rust value at import.

use crate::{DType, Tensor};

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Graph input number `index`.
    Input {
        index: usize,
    },
    Const(Tensor),
    /// Inputs: x, weight, optional bias, optional residual (port 3).
    /// y = act(conv(x, w) + bias + residual).
    Conv(Conv),
    /// Inputs: x, scale, bias, mean, var.
    BatchNorm {
        epsilon: f32,
    },
    Unary(Unary),
    /// Numpy-broadcasting binary op.
    Binary(Binary),
    /// Inputs: a, b, optional c.
    Gemm(Gemm),
    /// Numpy matmul: batched over leading dims, 1-D operands promoted.
    MatMul,
    Pool(Pool),
    GlobalPool(PoolKind),
    Reduce(Reduce),
    /// Layout-preserving change of shape (Reshape, Flatten, Squeeze, Unsqueeze).
    Reshape {
        shape: Vec<usize>,
    },
    Transpose {
        perm: Vec<usize>,
    },
    /// (Log)softmax over the contiguous axes `start..end` taken together.
    Softmax {
        start: usize,
        end: usize,
        log: bool,
    },
    Pad(Pad),
    Concat {
        axis: usize,
    },
    Split {
        axis: usize,
        sizes: Vec<usize>,
    },
    Slice {
        axes: Vec<SliceAxis>,
    },
    /// Inputs: data, indices. Negative indices are allowed.
    Gather {
        axis: usize,
    },
    Tile {
        repeats: Vec<usize>,
    },
    Expand {
        shape: Vec<usize>,
    },
    Cast {
        to: DType,
    },
    /// Inputs: condition, x, y.
    Where,
    /// ONNX QuantizeLinear: y = saturate(round_half_even(x / scale) + zero_point) in `to`.
    /// Inputs: x, scale, optional zero point (of dtype `to`).
    Quantize(Quantization),
    /// ONNX DequantizeLinear: y = (x − zero_point) · scale. Inputs: x, scale, optional zero
    /// point (of x's dtype).
    Dequantize(Quantization),
    /// x · gate(FC2(act(FC1(mean over H, W of x)))), recognised from its exported parts.
    SqueezeExcite(Box<SqueezeExcite>),
    /// A whole inverted-residual block as one op (see [`MbConv`]). Input: the block input.
    MbConv(Box<MbConv>),
    /// A Fused-MBConv (EdgeResidual) block as one op (see [`FusedMbConv`]). Input: the
    /// block input.
    FusedMbConv(Box<FusedMbConv>),
    /// A node whose data a backend consumed and freed (weights packed into generated
    /// code); its outputs keep their types, but nothing may read or evaluate it.
    Released,
}

/// BatchNormalization at inference as the per-channel affine map it is, y = x·scale + shift
/// with scale = γ / √(var + ε) and shift = β − mean·scale, from its parameters
/// `[γ, β, mean, var]`; `None` unless all four have one length.
pub fn batch_norm_affine(epsilon: f32, [gamma, beta, mean, var]: [&[f32]; 4]) -> Option<(Vec<f32>, Vec<f32>)> {
    let c = gamma.len();
    if [beta.len(), mean.len(), var.len()] != [c; 3] {
        return None;
    }
    let scale: Vec<f32> = gamma.iter().zip(var).map(|(&g, &v)| g / (v + epsilon).sqrt()).collect();
    let shift = beta.iter().zip(mean).zip(&scale).map(|((&b, &m), &s)| b - m * s).collect();
    Some((scale, shift))
}

/// A fully connected layer of a fused op: y = act(W·x + b), W is [out, in].
#[derive(Clone, Debug, PartialEq)]
pub struct Dense {
    pub w: Tensor,
    pub b: Tensor,
    pub act: Option<Unary>,
}

impl Dense {
    pub fn outputs(&self) -> usize {
        self.w.shape()[0]
    }

    pub fn inputs(&self) -> usize {
        self.w.shape()[1]
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SqueezeExcite {
    /// C → squeezed channels, with its activation.
    pub reduce: Dense,
    /// Squeezed → C, with the gate (sigmoid or hard-sigmoid) as its activation.
    pub expand: Dense,
    /// In QDQ models: the levels the pooled means snap to before `reduce`.
    pub pooled: Option<Levels>,
    /// In QDQ models: the levels x · gate snaps to.
    pub scaled: Option<Levels>,
}

/// An MBConv (inverted residual) block: expand 1×1 → depthwise k×k → squeeze-excite →
/// project 1×1 → + input. BatchNorms are folded into the convs' weights and biases.
#[derive(Clone, Debug, PartialEq)]
pub struct MbConv {
    /// A depthwise conv on the block input before everything else (MobileNetV4's UIB).
    pub start: Option<StartDepthwise>,
    /// Expansion 1×1 conv (absent when the expand ratio is 1): [C_exp, C_in].
    pub expand: Option<Dense>,
    /// Depthwise conv geometry; weights [C_exp, 1, k, k], bias [C_exp].
    pub dw: Conv,
    pub dw_w: Tensor,
    pub dw_b: Tensor,
    pub se: Option<SqueezeExcite>,
    /// Projection 1×1 conv: [C_out, C_exp]; its `act` is normally None.
    pub project: Dense,
    /// Adds the block input to the projection (stride 1, C_in == C_out).
    pub residual: bool,
}

/// The leading depthwise conv of a MobileNetV4 Universal Inverted Bottleneck (its ExtraDW
/// and ConvNext-like forms): it runs on the block input before the expansion, usually
/// without an activation, and may carry the block's stride.
#[derive(Clone, Debug, PartialEq)]
pub struct StartDepthwise {
    /// Geometry (group = channels) and optional activation; weights [C, 1, kh, kw], bias [C].
    pub conv: Conv,
    pub w: Tensor,
    pub b: Tensor,
}

impl StartDepthwise {
    /// Its output shape on an input of `x`.
    pub fn output_shape(&self, x: &[usize]) -> crate::Result<Vec<usize>> {
        crate::shape::conv_shape(&self.conv, x, self.w.shape())
    }
}

/// A Fused-MBConv block (EfficientNetV2's early stages, EdgeTPU's EdgeResidual,
/// MobileNetV4's conv pairs): a dense k×k expansion conv with its activation in place of
/// MBConv's 1×1 expansion + depthwise, then a 1×1 projection, optionally adding the block
/// input.
#[derive(Clone, Debug, PartialEq)]
pub struct FusedMbConv {
    /// A depthwise conv on the block input before the expansion (MobileNetV4's UIB in its
    /// ConvNext-like form: depthwise, then a 1×1 expansion and projection).
    pub start: Option<StartDepthwise>,
    /// The expansion conv's geometry (one group) and activation; weights
    /// [C_exp, C_in, kh, kw], bias [C_exp].
    pub expand: Conv,
    pub expand_w: Tensor,
    pub expand_b: Tensor,
    /// Projection 1×1 conv: [C_out, C_exp]; its `act` is normally None.
    pub project: Dense,
    /// Adds the block input to the projection (stride 1, C_in == C_out).
    pub residual: bool,
}

impl FusedMbConv {
    /// Channels of the expanded tensor.
    pub fn expanded(&self) -> usize {
        self.expand_w.shape().first().copied().unwrap_or(0)
    }
}

/// What QuantizeLinear and DequantizeLinear share: the integer type and the axis a 1-D
/// scale runs along (one scale per index of that axis); a scale of one value covers the
/// whole tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quantization {
    /// Normalised (non-negative); only read for per-axis scales.
    pub axis: usize,
    /// The quantized type: QuantizeLinear's output, DequantizeLinear's input.
    pub dtype: DType,
}

/// QuantizeLinear of one value, as the ONNX reference computes it: the division in f32,
/// rounded half to even, saturated to `range`. NaN becomes 0 (ONNX leaves it undefined).
pub fn quantize(x: f32, scale: f32, zero_point: i32, (lo, hi): (i32, i32)) -> i32 {
    let q = (x / scale).round_ties_even() + zero_point as f32;
    if q.is_nan() { 0 } else { q.clamp(lo as f32, hi as f32) as i32 }
}

/// DequantizeLinear of one value: (q − zero_point) · scale in f32.
pub fn dequantize(q: i32, scale: f32, zero_point: i32) -> f32 {
    (q - zero_point) as f32 * scale
}

#[derive(Clone, Debug, PartialEq)]
pub struct Conv {
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    /// Padding before each spatial dim.
    pub pads_begin: Vec<usize>,
    /// Padding after each spatial dim.
    pub pads_end: Vec<usize>,
    pub group: usize,
    /// Activation fused into the epilogue (applied after bias and residual).
    pub act: Option<Unary>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unary {
    Sigmoid,
    Relu,
    Tanh,
    Exp,
    Log,
    Sqrt,
    Neg,
    Abs,
    Ceil,
    Floor,
    Round,
    Reciprocal,
    Softplus,
    Softsign,
    Erf,
    Not,
    Elu {
        alpha: f32,
    },
    Selu {
        alpha: f32,
        gamma: f32,
    },
    LeakyRelu {
        alpha: f32,
    },
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    HardSwish,
    Clip {
        min: f32,
        max: f32,
    },
    /// x · sigmoid(x) (SiLU), recognised from Sigmoid + Mul.
    Swish,
    /// x · Φ(x) = ½x(1 + erf(x/√2)); with `tanh`, ½x(1 + tanh(√(2/π)(x + 0.044715x³))).
    Gelu {
        tanh: bool,
    },
    /// DequantizeLinear(QuantizeLinear(x)) with one scale and zero point: x snapped to
    /// the nearest of the `lo..=hi` quantization levels, staying in f32. This is how a
    /// QDQ model's activations run (the levels as [`quantize`] and [`dequantize`] compute
    /// them, bit for bit); NaN stays NaN.
    QuantizeDequantize {
        scale: f32,
        zero_point: i32,
        lo: i32,
        hi: i32,
    },
    /// A QDQ model's swish, each step re-quantized as the model spells it:
    /// a = snap_input(x), y = snap_output(a · snap_gate(sigmoid(a))). Recognised from the
    /// snap, Sigmoid, snap, Mul and snap it is exported as, so that it fuses like Swish.
    QuantizedSwish {
        input: Levels,
        gate: Levels,
        output: Levels,
    },
    /// A QDQ model's sigmoid gate: snap_output(sigmoid(snap_input(x))).
    QuantizedSigmoid {
        input: Levels,
        output: Levels,
    },
}

/// The levels a QuantizeLinear → DequantizeLinear pair snaps to: scale · (q − zero_point)
/// for q in `lo..=hi`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Levels {
    pub scale: f32,
    pub zero_point: i32,
    pub lo: i32,
    pub hi: i32,
}

impl Levels {
    /// The snap to these levels as an activation.
    pub fn snap(self) -> Unary {
        let Levels { scale, zero_point, lo, hi } = self;
        Unary::QuantizeDequantize { scale, zero_point, lo, hi }
    }

    /// The levels a snap snaps to.
    pub fn of(u: Unary) -> Option<Levels> {
        match u {
            Unary::QuantizeDequantize { scale, zero_point, lo, hi } => Some(Levels { scale, zero_point, lo, hi }),
            _ => None,
        }
    }
}

impl Unary {
    pub fn name(&self) -> &'static str {
        match self {
            Unary::Sigmoid => "Sigmoid",
            Unary::Relu => "Relu",
            Unary::Tanh => "Tanh",
            Unary::Exp => "Exp",
            Unary::Log => "Log",
            Unary::Sqrt => "Sqrt",
            Unary::Neg => "Neg",
            Unary::Abs => "Abs",
            Unary::Ceil => "Ceil",
            Unary::Floor => "Floor",
            Unary::Round => "Round",
            Unary::Reciprocal => "Reciprocal",
            Unary::Softplus => "Softplus",
            Unary::Softsign => "Softsign",
            Unary::Erf => "Erf",
            Unary::Not => "Not",
            Unary::Elu { .. } => "Elu",
            Unary::Selu { .. } => "Selu",
            Unary::LeakyRelu { .. } => "LeakyRelu",
            Unary::HardSigmoid { .. } => "HardSigmoid",
            Unary::HardSwish => "HardSwish",
            Unary::Swish => "Swish",
            Unary::Clip { .. } => "Clip",
            Unary::Gelu { .. } => "Gelu",
            Unary::QuantizeDequantize { .. } => "QuantizeDequantize",
            Unary::QuantizedSwish { .. } => "QuantizedSwish",
            Unary::QuantizedSigmoid { .. } => "QuantizedSigmoid",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binary {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Max,
    Min,
    /// x if x >= 0 else slope * x; the slope broadcasts onto x.
    PRelu,
    Mod {
        fmod: bool,
    },
    Equal,
    Less,
    Greater,
    And,
    Or,
}

impl Binary {
    pub fn name(&self) -> &'static str {
        match self {
            Binary::Add => "Add",
            Binary::Sub => "Sub",
            Binary::Mul => "Mul",
            Binary::Div => "Div",
            Binary::Pow => "Pow",
            Binary::Max => "Max",
            Binary::Min => "Min",
            Binary::PRelu => "PRelu",
            Binary::Mod { .. } => "Mod",
            Binary::Equal => "Equal",
            Binary::Less => "Less",
            Binary::Greater => "Greater",
            Binary::And => "And",
            Binary::Or => "Or",
        }
    }

    /// Comparisons and logic produce bool.
    pub fn yields_bool(&self) -> bool {
        matches!(self, Binary::Equal | Binary::Less | Binary::Greater | Binary::And | Binary::Or)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Gemm {
    pub alpha: f32,
    pub beta: f32,
    pub trans_a: bool,
    pub trans_b: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    Max,
    Average,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Pool {
    pub kind: PoolKind,
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    pub pads_begin: Vec<usize>,
    pub pads_end: Vec<usize>,
    /// Average pool: count padding cells in the divisor.
    pub count_include_pad: bool,
    pub ceil_mode: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceKind {
    Mean,
    Sum,
    Max,
    Min,
    Prod,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Reduce {
    pub kind: ReduceKind,
    /// Sorted, deduplicated, non-negative axes.
    pub axes: Vec<usize>,
    pub keepdims: bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PadMode {
    Constant(f32),
    Reflect,
    Edge,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Pad {
    pub mode: PadMode,
    pub begin: Vec<usize>,
    pub end: Vec<usize>,
}

/// One axis of a Slice, normalised: indices `start, start+step, ...` (`len` of them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SliceAxis {
    pub axis: usize,
    pub start: usize,
    pub step: isize,
    pub len: usize,
}

impl Op {
    /// The name shown in op histograms.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Input { .. } => "Input",
            Op::Const(_) => "Const",
            Op::Conv(_) => "Conv",
            Op::BatchNorm { .. } => "BatchNormalization",
            Op::Unary(u) => u.name(),
            Op::Binary(b) => b.name(),
            Op::Gemm(_) => "Gemm",
            Op::MatMul => "MatMul",
            Op::Pool(p) => match p.kind {
                PoolKind::Max => "MaxPool",
                PoolKind::Average => "AveragePool",
            },
            Op::GlobalPool(PoolKind::Max) => "GlobalMaxPool",
            Op::GlobalPool(PoolKind::Average) => "GlobalAveragePool",
            Op::Reduce(r) => match r.kind {
                ReduceKind::Mean => "ReduceMean",
                ReduceKind::Sum => "ReduceSum",
                ReduceKind::Max => "ReduceMax",
                ReduceKind::Min => "ReduceMin",
                ReduceKind::Prod => "ReduceProd",
            },
            Op::Reshape { .. } => "Reshape",
            Op::Transpose { .. } => "Transpose",
            Op::Softmax { log: false, .. } => "Softmax",
            Op::Softmax { log: true, .. } => "LogSoftmax",
            Op::Pad(_) => "Pad",
            Op::Concat { .. } => "Concat",
            Op::Split { .. } => "Split",
            Op::Slice { .. } => "Slice",
            Op::Gather { .. } => "Gather",
            Op::Tile { .. } => "Tile",
            Op::Expand { .. } => "Expand",
            Op::Cast { .. } => "Cast",
            Op::Where => "Where",
            Op::Quantize(_) => "QuantizeLinear",
            Op::Dequantize(_) => "DequantizeLinear",
            Op::SqueezeExcite(_) => "SqueezeExcite",
            Op::MbConv(_) => "MBConv",
            Op::FusedMbConv(_) => "FusedMBConv",
            Op::Released => "Released",
        }
    }

    /// Ops that are evaluated at compile time when all their inputs are constant.
    /// Heavy compute ops (Conv, Gemm, pools) are left to the backend.
    pub fn is_foldable(&self) -> bool {
        matches!(
            self,
            Op::Unary(_)
                | Op::Binary(_)
                | Op::Reshape { .. }
                | Op::Transpose { .. }
                | Op::Concat { .. }
                | Op::Split { .. }
                | Op::Slice { .. }
                | Op::Gather { .. }
                | Op::Tile { .. }
                | Op::Expand { .. }
                | Op::Cast { .. }
                | Op::Where
                | Op::Quantize(_)
                | Op::Dequantize(_)
                | Op::Reduce(_)
                | Op::Pad(_)
        )
    }
}
