//! Writes EfficientNet-family building blocks through [`GraphBuilder`], spelled the way
//! exporters spell them (explicit BatchNormalization, Sigmoid+Mul swish, Clip relu6,
//! HardSigmoid+Mul hard-swish, GlobalAveragePool squeeze-excite).

use crate::writer::{GraphBuilder, attr_float, attr_int, attr_ints};

mod networks;
pub use networks::{Family, MobileNet, efficientnet, efficientnet_styled, efficientnet_v2_b0, mixnet_s, mobilenet};

/// The activation of a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    Swish,
    Relu6,
    HardSwish,
    Relu,
}

/// How the squeeze-excite FC layers are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SeStyle {
    /// 1×1 convs on the pooled [N, C, 1, 1] tensor (torchvision, timm).
    #[default]
    Conv,
    /// Flatten, Gemm (transB), Gemm, Reshape back (PyTorch Linear layers).
    Gemm,
    /// Reshape, MatMul + Add, MatMul + Add, Unsqueeze back.
    MatMul,
    /// 1×1 convs, the pool squeezed to [N, C] and reshaped back to [N, C, 1, 1] first, and
    /// the hidden vector reshaped to itself (tf2onnx 1.17 on Keras' EfficientNet).
    SqueezedConv,
}

/// One MBConv (inverted residual) block.
#[derive(Clone, Debug)]
pub struct MbConvSpec {
    pub c_in: usize,
    pub c_out: usize,
    /// Expansion as a ratio of `c_in` (EfficientNet); see `expanded` for absolute counts.
    pub expand_ratio: usize,
    /// Expanded channels given directly (MobileNetV3's 200, 184, …); overrides the ratio.
    pub expanded: Option<usize>,
    pub kernel: usize,
    pub stride: usize,
    /// Squeezed channels of the SE branch; `None` for no SE.
    pub se: Option<usize>,
    pub act: Act,
    pub se_style: SeStyle,
}

impl MbConvSpec {
    /// Channels after expansion.
    pub fn c_exp(&self) -> usize {
        self.expanded.unwrap_or(self.c_in * self.expand_ratio)
    }

    /// The residual is added when the block keeps shape.
    pub fn residual(&self) -> bool {
        self.stride == 1 && self.c_in == self.c_out
    }
}

/// Deterministic weights: a small LCG, scaled for unit-variance activations.
pub struct Weights {
    state: u64,
}

impl Weights {
    pub fn new(seed: u64) -> Self {
        Weights { state: seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407) }
    }

    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f32 {
        self.state = self.state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// `n` values with the variance of He initialisation for `fan_in` inputs.
    pub fn he(&mut self, n: usize, fan_in: usize) -> Vec<f32> {
        let scale = (6.0 / fan_in as f32).sqrt();
        (0..n).map(|_| self.uniform() * scale).collect()
    }
}

/// Applies `act` to `x` the way exporters write it.
pub fn activation(b: &mut GraphBuilder, x: &str, act: Act) -> String {
    match act {
        Act::Swish => {
            let s = b.node("Sigmoid", &[x], vec![]);
            b.node("Mul", &[x, &s], vec![])
        }
        Act::Relu6 => {
            let (lo, hi) = (b.weight_f32("relu6_lo", &[], &[0.0]), b.weight_f32("relu6_hi", &[], &[6.0]));
            b.node("Clip", &[x, &lo, &hi], vec![])
        }
        Act::HardSwish => {
            let s = b.node("HardSigmoid", &[x], vec![attr_float("alpha", 1.0 / 6.0), attr_float("beta", 0.5)]);
            b.node("Mul", &[x, &s], vec![])
        }
        Act::Relu => b.node("Relu", &[x], vec![]),
    }
}

/// Which exporter's spelling to imitate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Exporter {
    /// torchvision through the TorchScript exporter: BatchNorm folded into conv biases,
    /// Identity nodes in front of weights, symmetric pads.
    TorchvisionLegacy,
    /// Explicit BatchNormalization nodes, symmetric pads.
    #[default]
    ExplicitBn,
    /// timm `tf_efficientnet_*`: TF "same" padding computed at run time from the input
    /// shape (Shape → Gather → Cast → Div → Ceil → … → Pad) in front of unpadded convs.
    TfSamePadding,
    /// Keras via tf2onnx: NHWC input with a Transpose, input rescaling, static Pads before
    /// strided convs, BatchNorm folded, MatMul squeeze-excite, MatMul + Add + Softmax head
    /// and an unused `ai.onnx.ml` opset import.
    KerasNhwc,
    /// torchvision through the dynamo exporter: opset 18, BatchNorm folded, ReduceMean
    /// (axes as an input) squeeze-excite, Reshape + Gemm head.
    Dynamo,
    /// timm `efficientnet_b0`: explicit BatchNorm, ReduceMean (axes attribute, keepdims)
    /// squeeze-excite.
    Timm,
    /// lukemelas `efficientnet_pytorch`: a static Pad in front of every k×k conv whose pads
    /// come through ConstantOfShape → Concat → Reshape → Slice → Transpose → Cast.
    Lukemelas,
    /// geffnet's exportable configs at opset 11: a Pad with constant TF-"same" pads (one
    /// more row and column at the end for strided convs) in front of every k×k conv,
    /// explicit BatchNorm.
    Geffnet,
}

impl Exporter {
    pub const ALL: [Exporter; 8] = [
        Exporter::TorchvisionLegacy,
        Exporter::ExplicitBn,
        Exporter::TfSamePadding,
        Exporter::KerasNhwc,
        Exporter::Dynamo,
        Exporter::Timm,
        Exporter::Lukemelas,
        Exporter::Geffnet,
    ];

    /// The opset this exporter writes; some spellings (ReduceMean's axes input) depend on it.
    pub fn opset(self) -> i64 {
        match self {
            Exporter::Geffnet => 11,
            Exporter::KerasNhwc | Exporter::Timm => 13,
            Exporter::Dynamo => 18,
            _ => 17,
        }
    }

    fn se_pool(self) -> SePool {
        match self {
            Exporter::Dynamo => SePool::ReduceMeanInput,
            Exporter::Timm => SePool::ReduceMeanAttr,
            _ => SePool::GlobalAveragePool,
        }
    }
}

/// How the squeeze-excite mean over H, W is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SePool {
    #[default]
    GlobalAveragePool,
    /// ReduceMean with `axes` as an attribute (opsets before 18).
    ReduceMeanAttr,
    /// ReduceMean with `axes` as an input (opset 18 on).
    ReduceMeanInput,
}

/// F.pad's (left, right, top, bottom) spelled the way `efficientnet_pytorch` exports it.
pub fn lukemelas_pad(b: &mut GraphBuilder, x: &str, [wl, wr, ht, hb]: [i64; 4]) -> String {
    use effc_onnx::proto::tensor_proto::DataType;
    let four = b.weight_i64("pad_n", &[4]);
    let zero = crate::writer::tensor_i64("v", &[1], &[0]);
    let zeros = b.node("ConstantOfShape", &[&four], vec![crate::writer::attr_tensor("value", zero)]);
    let given = b.weight_i64("pad_given", &[wl, wr, ht, hb]);
    let all = b.node("Concat", &[&given, &zeros], vec![attr_int("axis", 0)]);
    let pairs_shape = b.weight_i64("pad_pairs", &[-1, 2]);
    let pairs = b.node("Reshape", &[&all, &pairs_shape], vec![]);
    let (st, en, ax, sp) = (
        b.weight_i64("st", &[-1]),
        b.weight_i64("en", &[i64::MIN]),
        b.weight_i64("ax", &[0]),
        b.weight_i64("sp", &[-1]),
    );
    let rev = b.node("Slice", &[&pairs, &st, &en, &ax, &sp], vec![]);
    let tr = b.node("Transpose", &[&rev], vec![attr_ints("perm", &[1, 0])]);
    let flat_shape = b.weight_i64("pad_flat", &[-1]);
    let flat = b.node("Reshape", &[&tr, &flat_shape], vec![]);
    let pads = b.node("Cast", &[&flat], vec![attr_int("to", DataType::Int64 as i64)]);
    b.node("Pad", &[x, &pads], vec![])
}

/// Conv (no bias) + explicit BatchNormalization with statistics that keep the output
/// near unit scale.
#[allow(clippy::too_many_arguments)]
pub fn conv_bn(
    b: &mut GraphBuilder,
    w: &mut Weights,
    x: &str,
    c_in: usize,
    c_out: usize,
    kernel: usize,
    stride: usize,
    group: usize,
) -> String {
    conv_bn_styled(b, w, x, [c_in, c_out, kernel, stride, group], Exporter::ExplicitBn)
}

/// TF "same" padding of the spatial dims of `x`, computed from its run-time shape the
/// way timm's `tf_` models export it; returns the padded tensor.
pub fn tf_same_pad(b: &mut GraphBuilder, x: &str, kernel: usize, stride: usize) -> String {
    use effc_onnx::proto::tensor_proto::DataType;
    let shape = b.node("Shape", &[x], vec![]);
    let hw_idx = b.weight_i64("hw_idx", &[2, 3]);
    let hw = b.node("Gather", &[&shape, &hw_idx], vec![attr_int("axis", 0)]);
    let hw = b.node("Cast", &[&hw], vec![attr_int("to", DataType::Float as i64)]);
    let s = b.weight_f32("stride", &[], &[stride as f32]);
    let one = b.weight_f32("one", &[], &[1.0]);
    let k = b.weight_f32("kernel", &[], &[kernel as f32]);
    let zero = b.weight_f32("zero", &[], &[0.0]);
    let two = b.weight_f32("two", &[], &[2.0]);
    let out = b.node("Div", &[&hw, &s], vec![]);
    let out = b.node("Ceil", &[&out], vec![]);
    let t = b.node("Sub", &[&out, &one], vec![]);
    let t = b.node("Mul", &[&t, &s], vec![]);
    let t = b.node("Add", &[&t, &k], vec![]);
    let t = b.node("Sub", &[&t, &hw], vec![]);
    let total = b.node("Max", &[&t, &zero], vec![]);
    let half = b.node("Div", &[&total, &two], vec![]);
    let begin = b.node("Floor", &[&half], vec![]);
    let end = b.node("Sub", &[&total, &begin], vec![]);
    let begin = b.node("Cast", &[&begin], vec![attr_int("to", DataType::Int64 as i64)]);
    let end = b.node("Cast", &[&end], vec![attr_int("to", DataType::Int64 as i64)]);
    let zeros = b.weight_i64("nc", &[0, 0]);
    let pads = b.node("Concat", &[&zeros, &begin, &zeros, &end], vec![attr_int("axis", 0)]);
    b.node("Pad", &[x, &pads], vec![])
}

/// [`conv_bn`] in an exporter's spelling; `dims` = [c_in, c_out, kernel, stride, group].
/// The weights drawn from `w` do not depend on the style.
pub fn conv_bn_styled(b: &mut GraphBuilder, w: &mut Weights, x: &str, dims: [usize; 5], style: Exporter) -> String {
    let [c_in, c_out, kernel, stride, group] = dims;
    let fan_in = c_in / group * kernel * kernel;
    let k = kernel as i64;
    let wv = w.he(c_out * fan_in, fan_in);
    let gamma: Vec<f32> = (0..c_out).map(|_| 0.8 + 0.2 * w.uniform()).collect();
    let beta: Vec<f32> = (0..c_out).map(|_| 0.1 * w.uniform()).collect();
    let mean: Vec<f32> = (0..c_out).map(|_| 0.1 * w.uniform()).collect();
    let var: Vec<f32> = (0..c_out).map(|_| 1.0 + 0.5 * w.uniform().abs()).collect();
    let eps = 1e-3f32;
    let wdims = [c_out as i64, (c_in / group) as i64, k, k];
    let folded = matches!(style, Exporter::TorchvisionLegacy | Exporter::KerasNhwc | Exporter::Dynamo);
    let p = (kernel / 2) as i64;
    let (input, pads) = match style {
        Exporter::TfSamePadding if kernel > 1 || stride > 1 => (tf_same_pad(b, x, kernel, stride), [0; 4]),
        Exporter::Lukemelas if kernel > 1 => (lukemelas_pad(b, x, [p; 4]), [0; 4]),
        Exporter::Geffnet if kernel > 1 => {
            let begin = if stride > 1 { p - 1 } else { p };
            let pads = b.weight_i64("same_pad", &[0, 0, begin, begin, 0, 0, p, p]);
            (b.node("Pad", &[x, &pads], vec![]), [0; 4])
        }
        Exporter::KerasNhwc if stride > 1 => {
            // Keras' ZeroPadding2D before a "valid" strided conv: one more row and column
            // at the end, as TF "same" gives for even sizes.
            let pads = b.weight_i64("zero_pad", &[0, 0, p - 1, p - 1, 0, 0, p, p]);
            (b.node("Pad", &[x, &pads], vec![]), [0; 4])
        }
        _ => (x.to_string(), [p; 4]),
    };
    let attrs = vec![
        attr_ints("kernel_shape", &[k, k]),
        attr_ints("strides", &[stride as i64, stride as i64]),
        attr_ints("pads", &pads),
        attr_int("group", group as i64),
    ];
    if !folded {
        let weight = b.weight_f32("w", &wdims, &wv);
        let y = b.node("Conv", &[&input, &weight], attrs);
        let c = c_out as i64;
        let names = [
            b.weight_f32("bn_g", &[c], &gamma),
            b.weight_f32("bn_b", &[c], &beta),
            b.weight_f32("bn_m", &[c], &mean),
            b.weight_f32("bn_v", &[c], &var),
        ];
        return b.node(
            "BatchNormalization",
            &[&y, &names[0], &names[1], &names[2], &names[3]],
            vec![attr_float("epsilon", eps)],
        );
    }
    let scale: Vec<f32> = (0..c_out).map(|o| gamma[o] / (var[o] + eps).sqrt()).collect();
    if style == Exporter::KerasNhwc && group > 1 {
        // tf2onnx leaves a depthwise conv's BN as a per-channel Mul and Add.
        let weight = b.weight_f32("w", &wdims, &wv);
        let y = b.node("Conv", &[&input, &weight], attrs);
        let c = c_out as i64;
        let shift: Vec<f32> = (0..c_out).map(|o| beta[o] - mean[o] * scale[o]).collect();
        let scale = b.weight_f32("bn_scale", &[1, c, 1, 1], &scale);
        let y = b.node("Mul", &[&y, &scale], vec![]);
        let shift = b.weight_f32("bn_shift", &[1, c, 1, 1], &shift);
        return b.node("Add", &[&y, &shift], vec![]);
    }
    let per = wv.len() / c_out;
    let wf: Vec<f32> = wv.iter().enumerate().map(|(i, v)| v * scale[i / per]).collect();
    let bf: Vec<f32> = (0..c_out).map(|o| beta[o] - mean[o] * scale[o]).collect();
    let weight = b.weight_f32("w", &wdims, &wf);
    let bias = b.weight_f32("b", &[c_out as i64], &bf);
    let weight = if style == Exporter::TorchvisionLegacy { b.node("Identity", &[&weight], vec![]) } else { weight };
    b.node("Conv", &[&input, &weight, &bias], attrs)
}

/// A dense layer y = W·x + b on [N, in] in the given style; W is [out, in].
fn dense(
    b: &mut GraphBuilder,
    x: &str,
    wv: &[f32],
    bv: &[f32],
    inputs: usize,
    outputs: usize,
    style: SeStyle,
) -> String {
    let (i, o) = (inputs as i64, outputs as i64);
    let bias = b.weight_f32("fc_b", &[o], bv);
    if style == SeStyle::Gemm {
        let wt = b.weight_f32("fc_w", &[o, i], wv);
        return b.node("Gemm", &[x, &wt, &bias], vec![attr_int("transB", 1)]);
    }
    let transposed: Vec<f32> = (0..inputs).flat_map(|c| (0..outputs).map(move |r| wv[r * inputs + c])).collect();
    let wt = b.weight_f32("fc_w", &[i, o], &transposed);
    let y = b.node("MatMul", &[x, &wt], vec![]);
    b.node("Add", &[&y, &bias], vec![])
}

/// Squeeze-excite on `x` (C channels): GAP → FC → act → FC → gate → Mul.
pub fn squeeze_excite(b: &mut GraphBuilder, w: &mut Weights, x: &str, c: usize, squeezed: usize, act: Act) -> String {
    squeeze_excite_styled(b, w, x, c, squeezed, act, (SeStyle::Conv, SePool::GlobalAveragePool))
}

/// [`squeeze_excite`] with the FC layers written in `style` and the mean as `pool`.
pub fn squeeze_excite_styled(
    b: &mut GraphBuilder,
    w: &mut Weights,
    x: &str,
    c: usize,
    squeezed: usize,
    act: Act,
    (style, pool): (SeStyle, SePool),
) -> String {
    let p = match pool {
        SePool::GlobalAveragePool => b.node("GlobalAveragePool", &[x], vec![]),
        SePool::ReduceMeanAttr => b.node("ReduceMean", &[x], vec![attr_ints("axes", &[2, 3]), attr_int("keepdims", 1)]),
        SePool::ReduceMeanInput => {
            let axes = b.weight_i64("se_mean_axes", &[2, 3]);
            b.node("ReduceMean", &[x, &axes], vec![attr_int("keepdims", 1)])
        }
    };
    let (ci, si) = (c as i64, squeezed as i64);
    let (w1v, b1v) = (w.he(c * squeezed, c), w.he(squeezed, c));
    let (w2v, b2v) = (w.he(c * squeezed, squeezed), w.he(c, squeezed));
    // MobileNetV3 spelling (hard-swish or relu blocks): relu inside, hard-sigmoid gate.
    let mobile = matches!(act, Act::HardSwish | Act::Relu);
    let inner = if mobile { Act::Relu } else { act };
    let g = if matches!(style, SeStyle::Conv | SeStyle::SqueezedConv) {
        let squeezed_conv = style == SeStyle::SqueezedConv;
        let p = if squeezed_conv {
            let axes = b.weight_i64("se_squeeze_axes", &[2, 3]);
            let flat = b.node("Squeeze", &[&p, &axes], vec![]);
            let shape = b.weight_i64("se_new_shape", &[-1, ci, 1, 1]);
            b.node("Reshape", &[&flat, &shape], vec![])
        } else {
            p
        };
        let w1 = b.weight_f32("se_w1", &[si, ci, 1, 1], &w1v);
        let b1 = b.weight_f32("se_b1", &[si], &b1v);
        let h = b.node("Conv", &[&p, &w1, &b1], vec![]);
        let h = activation(b, &h, inner);
        let h = if squeezed_conv {
            let shape = b.weight_i64("se_new_shape", &[-1, si, 1, 1]);
            b.node("Reshape", &[&h, &shape], vec![])
        } else {
            h
        };
        let w2 = b.weight_f32("se_w2", &[ci, si, 1, 1], &w2v);
        let b2 = b.weight_f32("se_b2", &[ci], &b2v);
        b.node("Conv", &[&h, &w2, &b2], vec![])
    } else {
        let flat = if style == SeStyle::Gemm {
            b.node("Flatten", &[&p], vec![attr_int("axis", 1)])
        } else {
            let shape = b.weight_i64("se_flat", &[-1, ci]);
            b.node("Reshape", &[&p, &shape], vec![])
        };
        let h = dense(b, &flat, &w1v, &b1v, c, squeezed, style);
        let h = activation(b, &h, inner);
        dense(b, &h, &w2v, &b2v, squeezed, c, style)
    };
    let g = if mobile {
        b.node("HardSigmoid", &[&g], vec![attr_float("alpha", 1.0 / 6.0), attr_float("beta", 0.5)])
    } else {
        b.node("Sigmoid", &[&g], vec![])
    };
    let g = match style {
        SeStyle::Conv | SeStyle::SqueezedConv => g,
        SeStyle::Gemm => {
            let shape = b.weight_i64("se_back", &[-1, ci, 1, 1]);
            b.node("Reshape", &[&g, &shape], vec![])
        }
        SeStyle::MatMul => {
            let axes = b.weight_i64("se_axes", &[2, 3]);
            b.node("Unsqueeze", &[&g, &axes], vec![])
        }
    };
    b.node("Mul", &[x, &g], vec![])
}

/// One MBConv block on `x`; returns the block's output.
pub fn mbconv(b: &mut GraphBuilder, w: &mut Weights, x: &str, s: &MbConvSpec) -> String {
    mbconv_styled(b, w, x, s, Exporter::ExplicitBn)
}

/// [`mbconv`] in an exporter's spelling.
pub fn mbconv_styled(b: &mut GraphBuilder, w: &mut Weights, x: &str, s: &MbConvSpec, style: Exporter) -> String {
    let c_exp = s.c_exp();
    let mut y = x.to_string();
    if c_exp != s.c_in {
        y = conv_bn_styled(b, w, &y, [s.c_in, c_exp, 1, 1, 1], style);
        y = activation(b, &y, s.act);
    }
    y = conv_bn_styled(b, w, &y, [c_exp, c_exp, s.kernel, s.stride, c_exp], style);
    y = activation(b, &y, s.act);
    if let Some(sq) = s.se {
        let se_style = if style == Exporter::KerasNhwc { SeStyle::SqueezedConv } else { s.se_style };
        y = squeeze_excite_styled(b, w, &y, c_exp, sq, s.act, (se_style, style.se_pool()));
    }
    y = conv_bn_styled(b, w, &y, [c_exp, s.c_out, 1, 1, 1], style);
    if s.residual() {
        y = b.node("Add", &[&y, x], vec![]);
    }
    y
}

/// One Fused-MBConv block on `x` (timm's EdgeResidual, torchvision's FusedMBConv): a
/// dense k×k expansion conv (`s.kernel`, `s.stride`) + activation, the optional
/// squeeze-excite, a 1×1 projection, the residual when the block keeps shape. With an
/// expand ratio of 1 and no expansion channels of its own it is still written as two
/// convs (EdgeTPU's form).
pub fn fused_mbconv_styled(b: &mut GraphBuilder, w: &mut Weights, x: &str, s: &MbConvSpec, style: Exporter) -> String {
    let c_exp = s.c_exp();
    let mut y = conv_bn_styled(b, w, x, [s.c_in, c_exp, s.kernel, s.stride, 1], style);
    y = activation(b, &y, s.act);
    if let Some(sq) = s.se {
        let se_style = if style == Exporter::KerasNhwc { SeStyle::SqueezedConv } else { s.se_style };
        y = squeeze_excite_styled(b, w, &y, c_exp, sq, s.act, (se_style, style.se_pool()));
    }
    y = conv_bn_styled(b, w, &y, [c_exp, s.c_out, 1, 1, 1], style);
    if s.residual() {
        y = b.node("Add", &[&y, x], vec![]);
    }
    y
}

/// One MobileNetV4 Universal Inverted Bottleneck as timm writes it (`UniversalInvertedResidual`):
/// an optional leading depthwise conv without activation, a 1×1 expansion + activation, an
/// optional middle depthwise conv + activation, a 1×1 projection, an optional layer scale
/// (a per-channel Mul), and the residual when the block keeps shape. Its forms: ExtraDW
/// (both depthwise convs), ConvNext-like (leading only), IB (middle only, an MBConv),
/// FFN (neither).
#[derive(Clone, Debug)]
pub struct UibSpec {
    pub c_in: usize,
    pub c_out: usize,
    pub expanded: usize,
    /// Kernel of the leading depthwise conv, if any.
    pub start_kernel: Option<usize>,
    /// Kernel of the middle depthwise conv, if any.
    pub mid_kernel: Option<usize>,
    pub stride: usize,
    /// Which depthwise conv carries the stride when both exist (timm's
    /// `dw_kernel_size_mid` blocks downsample in the middle one).
    pub stride_in_mid: bool,
    pub act: Act,
    /// A per-channel learned scale on the projection before the residual.
    pub layer_scale: bool,
}

impl UibSpec {
    /// The residual is added when the block keeps shape.
    pub fn residual(&self) -> bool {
        self.stride == 1 && self.c_in == self.c_out
    }
}

/// One UIB block on `x` in an exporter's spelling; returns its output.
pub fn uib_styled(b: &mut GraphBuilder, w: &mut Weights, x: &str, s: &UibSpec, style: Exporter) -> String {
    let stride_start = if s.mid_kernel.is_some() && s.stride_in_mid { 1 } else { s.stride };
    let mut y = x.to_string();
    if let Some(k) = s.start_kernel {
        y = conv_bn_styled(b, w, &y, [s.c_in, s.c_in, k, stride_start, s.c_in], style);
    }
    y = conv_bn_styled(b, w, &y, [s.c_in, s.expanded, 1, 1, 1], style);
    y = activation(b, &y, s.act);
    if let Some(k) = s.mid_kernel {
        let stride = if s.start_kernel.is_none() || s.stride_in_mid { s.stride } else { 1 };
        y = conv_bn_styled(b, w, &y, [s.expanded, s.expanded, k, stride, s.expanded], style);
        y = activation(b, &y, s.act);
    }
    y = conv_bn_styled(b, w, &y, [s.expanded, s.c_out, 1, 1, 1], style);
    if s.layer_scale {
        let gamma: Vec<f32> = (0..s.c_out).map(|_| 0.5 + 0.25 * w.uniform()).collect();
        let g = b.weight_f32("layer_scale", &[s.c_out as i64, 1, 1], &gamma);
        y = b.node("Mul", &[&y, &g], vec![]);
    }
    if s.residual() {
        y = b.node("Add", &[&y, x], vec![]);
    }
    y
}

/// One depthwise-separable block (MobileNetV1, LCNet, MNASNet's first block with an
/// activated pointwise): a depthwise k×k conv + activation, an optional squeeze-excite
/// (squeezed to `se` channels), then a 1×1 conv + activation, with no expansion and no
/// residual; `dims` = [c_in, c_out, kernel, stride].
pub fn depthwise_separable_styled(
    b: &mut GraphBuilder,
    w: &mut Weights,
    x: &str,
    (dims, se, act): ([usize; 4], Option<usize>, Act),
    style: Exporter,
) -> String {
    let [c_in, c_out, kernel, stride] = dims;
    let mut y = conv_bn_styled(b, w, x, [c_in, c_in, kernel, stride, c_in], style);
    y = activation(b, &y, act);
    if let Some(sq) = se {
        y = squeeze_excite_styled(b, w, &y, c_in, sq, act, (SeStyle::Conv, style.se_pool()));
    }
    y = conv_bn_styled(b, w, &y, [c_in, c_out, 1, 1, 1], style);
    activation(b, &y, act)
}

/// A MixNet conv as timm writes `MixedConv2d`: the channels split into `kernels.len()`
/// groups (equal, the first taking the remainder), one conv per group (depthwise with its
/// own kernel size, or 1×1 from the group's channels to its share of `c_out`), the results
/// concatenated, then one BatchNormalization over them all (exporters fold BN only into
/// a conv it directly follows, so it stays).
pub fn mixed_conv(
    b: &mut GraphBuilder,
    w: &mut Weights,
    x: &str,
    [c_in, c_out]: [usize; 2],
    kernels: &[usize],
    (stride, depthwise): (usize, bool),
) -> String {
    let split = |c: usize| {
        let n = kernels.len();
        let mut parts = vec![c / n; n];
        parts[0] += c - c / n * n;
        parts
    };
    let (ins, outs) = (split(c_in), split(c_out));
    let sizes: Vec<i64> = ins.iter().map(|&c| c as i64).collect();
    let parts = if b.opset >= 13 {
        let s = b.weight_i64("split", &sizes);
        b.node_n("Split", &[x, &s], vec![attr_int("axis", 1)], kernels.len())
    } else {
        b.node_n("Split", &[x], vec![attr_int("axis", 1), attr_ints("split", &sizes)], kernels.len())
    };
    let mut ys = Vec::new();
    for (i, (&k, part)) in kernels.iter().zip(&parts).enumerate() {
        let (ci, co) = (ins[i], if depthwise { ins[i] } else { outs[i] });
        let group = if depthwise { ci } else { 1 };
        let fan_in = ci / group * k * k;
        let wv = w.he(co * fan_in, fan_in);
        let weight = b.weight_f32("w", &[co as i64, (ci / group) as i64, k as i64, k as i64], &wv);
        let p = (k / 2) as i64;
        let attrs = vec![
            attr_ints("kernel_shape", &[k as i64, k as i64]),
            attr_ints("strides", &[stride as i64, stride as i64]),
            attr_ints("pads", &[p, p, p, p]),
            attr_int("group", group as i64),
        ];
        ys.push(b.node("Conv", &[part, &weight], attrs));
    }
    let refs: Vec<&str> = ys.iter().map(String::as_str).collect();
    let y = b.node("Concat", &refs, vec![attr_int("axis", 1)]);
    let c = if depthwise { c_in } else { c_out };
    let gamma: Vec<f32> = (0..c).map(|_| 0.8 + 0.2 * w.uniform()).collect();
    let beta: Vec<f32> = (0..c).map(|_| 0.1 * w.uniform()).collect();
    let mean: Vec<f32> = (0..c).map(|_| 0.1 * w.uniform()).collect();
    let var: Vec<f32> = (0..c).map(|_| 1.0 + 0.5 * w.uniform().abs()).collect();
    let names = [
        b.weight_f32("bn_g", &[c as i64], &gamma),
        b.weight_f32("bn_b", &[c as i64], &beta),
        b.weight_f32("bn_m", &[c as i64], &mean),
        b.weight_f32("bn_v", &[c as i64], &var),
    ];
    b.node("BatchNormalization", &[&y, &names[0], &names[1], &names[2], &names[3]], vec![attr_float("epsilon", 1e-3)])
}

/// One MixNet block (timm's `InvertedResidual` with mixed kernels): the expansion as
/// `exp_groups` grouped 1×1 convs (1: a plain conv), the depthwise with `dw_kernels`, an
/// optional squeeze-excite, the projection as `pwl_groups` grouped 1×1 convs, the residual
/// when the block keeps shape.
#[derive(Clone, Debug)]
pub struct MixSpec {
    pub c_in: usize,
    pub c_out: usize,
    pub expand_ratio: usize,
    pub exp_groups: usize,
    pub dw_kernels: Vec<usize>,
    pub pwl_groups: usize,
    pub stride: usize,
    pub se: Option<usize>,
    pub act: Act,
}

/// Writes a [`MixSpec`] block on `x` (explicit BatchNormalization spelling).
pub fn mixnet_block(b: &mut GraphBuilder, w: &mut Weights, x: &str, s: &MixSpec) -> String {
    let c_exp = s.c_in * s.expand_ratio;
    let pointwise = |b: &mut GraphBuilder, w: &mut Weights, y: &str, dims: [usize; 2], groups: usize| {
        if groups == 1 {
            conv_bn_styled(b, w, y, [dims[0], dims[1], 1, 1, 1], Exporter::ExplicitBn)
        } else {
            mixed_conv(b, w, y, dims, &vec![1; groups], (1, false))
        }
    };
    let mut y = x.to_string();
    if s.expand_ratio != 1 {
        y = pointwise(b, w, &y, [s.c_in, c_exp], s.exp_groups);
        y = activation(b, &y, s.act);
    }
    y = if s.dw_kernels.len() == 1 {
        conv_bn_styled(b, w, &y, [c_exp, c_exp, s.dw_kernels[0], s.stride, c_exp], Exporter::ExplicitBn)
    } else {
        mixed_conv(b, w, &y, [c_exp, c_exp], &s.dw_kernels, (s.stride, true))
    };
    y = activation(b, &y, s.act);
    if let Some(sq) = s.se {
        y = squeeze_excite_styled(b, w, &y, c_exp, sq, Act::Swish, (SeStyle::Conv, SePool::GlobalAveragePool));
    }
    y = pointwise(b, w, &y, [c_exp, s.c_out], s.pwl_groups);
    if s.stride == 1 && s.c_in == s.c_out {
        y = b.node("Add", &[&y, x], vec![]);
    }
    y
}
