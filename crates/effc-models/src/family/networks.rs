//! Whole networks of the family (EfficientNet B0–B7 and Lite, EfficientNetV2-B0,
//! MobileNetV2/V3) from the
//! blocks of [`super`], with seeded weights.

use super::{
    Act, Exporter, MbConvSpec, MixSpec, SeStyle, Weights, activation, conv_bn_styled, fused_mbconv_styled,
    mbconv_styled, mixnet_block,
};
use crate::writer::{GraphBuilder, attr_int, attr_ints};

/// One stage of the EfficientNet-B0 baseline: (expand ratio, kernel, stride, output
/// channels, repeats).
const B0_STAGES: [(usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
];

/// A member of the EfficientNet family.
#[derive(Clone, Debug, PartialEq)]
pub struct Family {
    pub name: String,
    pub width: f64,
    pub depth: f64,
    pub resolution: usize,
    /// Lite variants: relu6, no squeeze-excite, stem and head not scaled.
    pub lite: bool,
}

impl Family {
    /// EfficientNet-B0 … B7 (`b` = 0..=7) with the published multipliers.
    pub fn efficientnet(b: usize) -> Option<Self> {
        let (width, depth, resolution) = *[
            (1.0, 1.0, 224),
            (1.0, 1.1, 240),
            (1.1, 1.2, 260),
            (1.2, 1.4, 300),
            (1.4, 1.8, 380),
            (1.6, 2.2, 456),
            (1.8, 2.6, 528),
            (2.0, 3.1, 600),
        ]
        .get(b)?;
        Some(Family { name: format!("efficientnet_b{b}"), width, depth, resolution, lite: false })
    }

    /// EfficientNet-Lite0 … Lite4.
    pub fn lite(n: usize) -> Option<Self> {
        let (width, depth, resolution) =
            *[(1.0, 1.0, 224), (1.0, 1.1, 240), (1.1, 1.2, 260), (1.2, 1.4, 280), (1.4, 1.8, 300)].get(n)?;
        Some(Family { name: format!("efficientnet_lite{n}"), width, depth, resolution, lite: true })
    }

    /// Channels scaled by the width multiplier, rounded to a multiple of 8 (never more
    /// than 10 % below the exact value).
    pub fn channels(&self, c: usize) -> usize {
        let v = c as f64 * self.width;
        let mut r = ((v + 4.0) as usize / 8 * 8).max(8);
        if (r as f64) < 0.9 * v {
            r += 8;
        }
        r
    }

    /// The MBConv blocks, in order.
    pub fn blocks(&self) -> Vec<MbConvSpec> {
        let act = if self.lite { Act::Relu6 } else { Act::Swish };
        let mut c_in = if self.lite { 32 } else { self.channels(32) };
        let mut out = Vec::new();
        for (i, &(e, k, s, c, n)) in B0_STAGES.iter().enumerate() {
            let c_out = self.channels(c);
            let fixed = self.lite && (i == 0 || i == B0_STAGES.len() - 1);
            let repeats = if fixed { n } else { (n as f64 * self.depth).ceil() as usize };
            for r in 0..repeats {
                let stride = if r == 0 { s } else { 1 };
                let se = (!self.lite).then_some((c_in / 4).max(1));
                out.push(MbConvSpec {
                    expanded: None,
                    c_in,
                    c_out,
                    expand_ratio: e,
                    kernel: k,
                    stride,
                    se,
                    act,
                    se_style: SeStyle::Conv,
                });
                c_in = c_out;
            }
        }
        out
    }
}

/// Writes a whole family member in an exporter's spelling (torchvision layout: GAP
/// squeeze-excite, Flatten + Gemm head; see [`Exporter`] for each style's quirks), with
/// seeded weights. `batch` may be symbolic. The weights depend only on `seed`, so styles
/// with the same padding compute the same function.
pub fn efficientnet(
    f: &Family,
    batch: crate::writer::Dim,
    resolution: usize,
    classes: usize,
    seed: u64,
) -> effc_onnx::proto::ModelProto {
    efficientnet_styled(f, batch, resolution, classes, seed, Exporter::ExplicitBn)
}

/// [`efficientnet`] in the given exporter's spelling.
pub fn efficientnet_styled(
    f: &Family,
    batch: crate::writer::Dim,
    resolution: usize,
    classes: usize,
    seed: u64,
    style: Exporter,
) -> effc_onnx::proto::ModelProto {
    use effc_onnx::proto::tensor_proto::DataType;
    let mut b = GraphBuilder::new(style.opset());
    let mut w = Weights::new(seed);
    let r = resolution as i64;
    let mut x = if style == Exporter::KerasNhwc {
        // NHWC input, rescaled per channel, then transposed into the convs' layout.
        let x = b.input("input", DataType::Float, &[batch, r.into(), r.into(), 3.into()]);
        // Keras' Rescaling and Normalization layers: x·(1/255)·255 − mean, ÷ std, + 0.
        let scale = b.weight_f32("rescale", &[], &[1.0 / 255.0]);
        let unscale = b.weight_f32("unscale", &[], &[255.0]);
        let mean = b.weight_f32("mean", &[3], &[0.485, 0.456, 0.406]);
        let std = b.weight_f32("std", &[3], &[0.229, 0.224, 0.225]);
        let zero = b.weight_f32("zero", &[1, 1, 1, 3], &[0.0; 3]);
        let y = b.node("Mul", &[&x, &scale], vec![]);
        let y = b.node("Mul", &[&y, &unscale], vec![]);
        let y = b.node("Sub", &[&y, &mean], vec![]);
        let y = b.node("Div", &[&y, &std], vec![]);
        let y = b.node("Add", &[&y, &zero], vec![]);
        b.node("Transpose", &[&y], vec![attr_ints("perm", &[0, 3, 1, 2])])
    } else {
        b.input("input", DataType::Float, &[batch, 3.into(), r.into(), r.into()])
    };
    let act = if f.lite { Act::Relu6 } else { Act::Swish };
    let stem = if f.lite { 32 } else { f.channels(32) };
    x = conv_bn_styled(&mut b, &mut w, &x, [3, stem, 3, 2, 1], style);
    let mut y = activation(&mut b, &x, act);
    let blocks = f.blocks();
    for s in &blocks {
        y = mbconv_styled(&mut b, &mut w, &y, s, style);
    }
    let last = blocks.last().map_or(stem, |s| s.c_out);
    let head = if f.lite { 1280 } else { 4 * last };
    y = conv_bn_styled(&mut b, &mut w, &y, [last, head, 1, 1, 1], style);
    y = activation(&mut b, &y, act);
    y = b.node("GlobalAveragePool", &[&y], vec![]);
    let (fc_w, fc_b) = (w.he(classes * head, head), vec![0.0; classes]);
    if style == Exporter::KerasNhwc {
        let shape = b.weight_i64("flat", &[-1, head as i64]);
        y = b.node("Reshape", &[&y, &shape], vec![]);
        let wt: Vec<f32> =
            (0..head).flat_map(|i| (0..classes).map(move |o| (i, o))).map(|(i, o)| fc_w[o * head + i]).collect();
        let wt = b.weight_f32("fc_w", &[head as i64, classes as i64], &wt);
        let bias = b.weight_f32("fc_b", &[classes as i64], &fc_b);
        y = b.node("MatMul", &[&y, &wt], vec![]);
        y = b.node("Add", &[&y, &bias], vec![]);
        b.node("Softmax", &[&y], vec![attr_int("axis", -1)]);
    } else {
        y = if style == Exporter::Dynamo {
            let shape = b.weight_i64("flat", &[-1, head as i64]);
            b.node("Reshape", &[&y, &shape], vec![])
        } else {
            b.node("Flatten", &[&y], vec![attr_int("axis", 1)])
        };
        linear(&mut b, &y, &fc_w, &fc_b);
    }
    // Name the model output as exporters do.
    b.graph.node.last_mut().expect("the head was just added").output = vec!["logits".into()];
    b.output("logits");
    let mut model = b.build();
    if style == Exporter::KerasNhwc {
        model.opset_import.push(effc_onnx::proto::OperatorSetIdProto { domain: "ai.onnx.ml".into(), version: 2 });
    }
    model
}

/// A MobileNet (inverted-residual family) architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MobileNet {
    /// MobileNetV2: relu6, no squeeze-excite, kernel 3.
    V2,
    /// MobileNetV3-Large: relu or hard-swish, hard-sigmoid squeeze-excite, Linear +
    /// hard-swish + Linear head.
    V3Large,
    /// MobileNetV3-Small: as Large, with 11 blocks, a 576-channel last conv and a
    /// 1024-wide hidden Linear.
    V3Small,
}

/// One MobileNetV3 block as torchvision's table spells it: (kernel, expanded channels,
/// output channels, squeeze-excite, activation, stride).
type V3Row = (usize, usize, usize, bool, Act, usize);

/// MobileNetV3 blocks from a stem of `c_in` channels.
fn v3_blocks(mut c_in: usize, rows: &[V3Row]) -> Vec<MbConvSpec> {
    let mut blocks = Vec::new();
    for &(k, exp, c, se, act, s) in rows {
        blocks.push(MbConvSpec {
            c_in,
            c_out: c,
            expand_ratio: 1,
            expanded: Some(exp),
            kernel: k,
            stride: s,
            se: se.then(|| make_divisible(exp as f64 / 4.0)),
            act,
            se_style: SeStyle::Conv,
        });
        c_in = c;
    }
    blocks
}

fn make_divisible(v: f64) -> usize {
    let r = ((v + 4.0) as usize / 8 * 8).max(8);
    if (r as f64) < 0.9 * v { r + 8 } else { r }
}

impl MobileNet {
    /// Width of the V3 heads' hidden Linear layer (V2 has none).
    fn hidden(self) -> Option<usize> {
        match self {
            MobileNet::V2 => None,
            MobileNet::V3Large => Some(1280),
            MobileNet::V3Small => Some(1024),
        }
    }

    /// Stem channels, the blocks and the last conv's channels (torchvision's tables).
    pub fn layout(self) -> (usize, Vec<MbConvSpec>, usize) {
        let mut blocks = Vec::new();
        match self {
            MobileNet::V2 => {
                let mut c_in = 32;
                for (t, c, n, s) in [
                    (1, 16, 1, 1),
                    (6, 24, 2, 2),
                    (6, 32, 3, 2),
                    (6, 64, 4, 2),
                    (6, 96, 3, 1),
                    (6, 160, 3, 2),
                    (6, 320, 1, 1),
                ] {
                    for r in 0..n {
                        let stride = if r == 0 { s } else { 1 };
                        blocks.push(MbConvSpec {
                            c_in,
                            c_out: c,
                            expand_ratio: t,
                            expanded: None,
                            kernel: 3,
                            stride,
                            se: None,
                            act: Act::Relu6,
                            se_style: SeStyle::Conv,
                        });
                        c_in = c;
                    }
                }
                (32, blocks, 1280)
            }
            MobileNet::V3Large => {
                let rows: [V3Row; 15] = [
                    (3, 16, 16, false, Act::Relu, 1),
                    (3, 64, 24, false, Act::Relu, 2),
                    (3, 72, 24, false, Act::Relu, 1),
                    (5, 72, 40, true, Act::Relu, 2),
                    (5, 120, 40, true, Act::Relu, 1),
                    (5, 120, 40, true, Act::Relu, 1),
                    (3, 240, 80, false, Act::HardSwish, 2),
                    (3, 200, 80, false, Act::HardSwish, 1),
                    (3, 184, 80, false, Act::HardSwish, 1),
                    (3, 184, 80, false, Act::HardSwish, 1),
                    (3, 480, 112, true, Act::HardSwish, 1),
                    (3, 672, 112, true, Act::HardSwish, 1),
                    (5, 672, 160, true, Act::HardSwish, 2),
                    (5, 960, 160, true, Act::HardSwish, 1),
                    (5, 960, 160, true, Act::HardSwish, 1),
                ];
                (16, v3_blocks(16, &rows), 960)
            }
            MobileNet::V3Small => {
                let rows: [V3Row; 11] = [
                    (3, 16, 16, true, Act::Relu, 2),
                    (3, 72, 24, false, Act::Relu, 2),
                    (3, 88, 24, false, Act::Relu, 1),
                    (5, 96, 40, true, Act::HardSwish, 2),
                    (5, 240, 40, true, Act::HardSwish, 1),
                    (5, 240, 40, true, Act::HardSwish, 1),
                    (5, 120, 48, true, Act::HardSwish, 1),
                    (5, 144, 48, true, Act::HardSwish, 1),
                    (5, 288, 96, true, Act::HardSwish, 2),
                    (5, 576, 96, true, Act::HardSwish, 1),
                    (5, 576, 96, true, Act::HardSwish, 1),
                ];
                (16, v3_blocks(16, &rows), 576)
            }
        }
    }
}

/// Writes a MobileNet with seeded weights in an exporter's spelling (NCHW styles).
pub fn mobilenet(
    net: MobileNet,
    batch: crate::writer::Dim,
    resolution: usize,
    classes: usize,
    seed: u64,
    style: Exporter,
) -> effc_onnx::proto::ModelProto {
    // The style's opset: its spelling of e.g. ReduceMean depends on it.
    let (mut b, mut w, x) = begin(style, seed, batch, resolution);
    let (stem, blocks, last) = net.layout();
    let act = if net == MobileNet::V2 { Act::Relu6 } else { Act::HardSwish };
    let mut y = conv_bn_styled(&mut b, &mut w, &x, [3, stem, 3, 2, 1], style);
    y = activation(&mut b, &y, act);
    for s in &blocks {
        y = mbconv_styled(&mut b, &mut w, &y, s, style);
    }
    let c = blocks.last().map_or(stem, |s| s.c_out);
    y = conv_bn_styled(&mut b, &mut w, &y, [c, last, 1, 1, 1], style);
    y = activation(&mut b, &y, act);
    y = pool_flatten(&mut b, &y);
    let mut width = last;
    if let Some(hidden) = net.hidden() {
        y = linear(&mut b, &y, &w.he(hidden * last, last), &vec![0.0; hidden]);
        y = b.node("HardSwish", &[&y], vec![]);
        width = hidden;
    }
    linear(&mut b, &y, &w.he(classes * width, width), &vec![0.0; classes]);
    finish(b)
}

/// A network's writer at `style`'s opset, its seeded weights, and its NCHW image input.
fn begin(style: Exporter, seed: u64, batch: crate::writer::Dim, resolution: usize) -> (GraphBuilder, Weights, String) {
    use effc_onnx::proto::tensor_proto::DataType;
    let mut b = GraphBuilder::new(style.opset());
    let r = resolution as i64;
    let x = b.input("input", DataType::Float, &[batch, 3.into(), r.into(), r.into()]);
    (b, Weights::new(seed), x)
}

/// Global average pooling and Flatten, as PyTorch heads write them.
fn pool_flatten(b: &mut GraphBuilder, y: &str) -> String {
    let y = b.node("GlobalAveragePool", &[y], vec![]);
    b.node("Flatten", &[&y], vec![attr_int("axis", 1)])
}

/// Names the last node's output `logits`, as exporters do, and makes it the model output.
fn finish(mut b: GraphBuilder) -> effc_onnx::proto::ModelProto {
    if let Some(last) = b.graph.node.last_mut() {
        last.output = vec!["logits".into()];
    }
    b.output("logits");
    b.build()
}

/// A PyTorch Linear layer: Gemm(x, W[out, in], b) with transB.
fn linear(b: &mut GraphBuilder, x: &str, w: &[f32], bias: &[f32]) -> String {
    let (o, i) = (bias.len() as i64, (w.len() / bias.len()) as i64);
    let wt = b.weight_f32("fc_w", &[o, i], w);
    let bt = b.weight_f32("fc_b", &[o], bias);
    b.node("Gemm", &[x, &wt, &bt], vec![attr_int("transB", 1)])
}

/// EfficientNetV2-B0's stages as timm's `tf_efficientnetv2_b0` defines them: (block kind,
/// expand ratio, kernel, stride, output channels, repeats, squeeze-excite).
const V2_B0_STAGES: [(V2Block, usize, usize, usize, usize, usize, bool); 6] = [
    (V2Block::Conv, 1, 3, 1, 16, 1, false),
    (V2Block::Fused, 4, 3, 2, 32, 2, false),
    (V2Block::Fused, 4, 3, 2, 48, 2, false),
    (V2Block::MbConv, 4, 3, 2, 96, 3, true),
    (V2Block::MbConv, 6, 3, 1, 112, 5, true),
    (V2Block::MbConv, 6, 3, 2, 192, 8, true),
];

/// The kinds of block EfficientNetV2 stacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum V2Block {
    /// One k×k conv + activation (expand ratio 1, no projection).
    Conv,
    Fused,
    MbConv,
}

/// EfficientNetV2-B0 with seeded weights in an exporter's spelling (NCHW styles; timm's
/// `tf_` models are [`Exporter::TfSamePadding`]): a 3×3 stem, a single-conv stage, two
/// Fused-MBConv stages, three MBConv stages with squeeze-excite (squeezed to a quarter of
/// the block's input channels), a 1×1 head conv to 1280, pooling and a Linear classifier.
pub fn efficientnet_v2_b0(
    batch: crate::writer::Dim,
    resolution: usize,
    classes: usize,
    seed: u64,
    style: Exporter,
) -> effc_onnx::proto::ModelProto {
    let (mut b, mut w, x) = begin(style, seed, batch, resolution);
    let act = Act::Swish;
    let mut c = 32;
    let mut y = conv_bn_styled(&mut b, &mut w, &x, [3, c, 3, 2, 1], style);
    y = activation(&mut b, &y, act);
    for (kind, ratio, kernel, stride, c_out, repeats, se) in V2_B0_STAGES {
        for i in 0..repeats {
            let stride = if i == 0 { stride } else { 1 };
            let s = MbConvSpec {
                c_in: c,
                c_out,
                expand_ratio: ratio,
                expanded: None,
                kernel,
                stride,
                se: se.then_some((c / 4).max(1)),
                act,
                se_style: SeStyle::Conv,
            };
            y = match kind {
                V2Block::Conv => {
                    let z = conv_bn_styled(&mut b, &mut w, &y, [c, c_out, kernel, stride, 1], style);
                    let z = activation(&mut b, &z, act);
                    if s.residual() { b.node("Add", &[&z, &y], vec![]) } else { z }
                }
                V2Block::Fused => fused_mbconv_styled(&mut b, &mut w, &y, &s, style),
                V2Block::MbConv => mbconv_styled(&mut b, &mut w, &y, &s, style),
            };
            c = c_out;
        }
    }
    y = conv_bn_styled(&mut b, &mut w, &y, [c, 1280, 1, 1, 1], style);
    y = activation(&mut b, &y, act);
    y = pool_flatten(&mut b, &y);
    linear(&mut b, &y, &w.he(classes * 1280, 1280), &vec![0.0; classes]);
    finish(b)
}

/// MixNet-S's blocks as timm's `mixnet_s` defines them: (repeats, depthwise kernels,
/// expansion groups, projection groups, stride, expand ratio, output channels, squeeze
/// ratio of the block input (0: none), swish (else relu)).
type MixRow = (usize, &'static [usize], usize, usize, usize, usize, usize, f64, bool);
const MIXNET_S: [MixRow; 11] = [
    (1, &[3], 1, 1, 1, 1, 16, 0.0, false),
    (1, &[3], 2, 2, 2, 6, 24, 0.0, false),
    (1, &[3], 2, 2, 1, 3, 24, 0.0, false),
    (1, &[3, 5, 7], 1, 1, 2, 6, 40, 0.5, true),
    (3, &[3, 5], 2, 2, 1, 6, 40, 0.5, true),
    (1, &[3, 5, 7], 1, 2, 2, 6, 80, 0.25, true),
    (2, &[3, 5], 1, 2, 1, 6, 80, 0.25, true),
    (1, &[3, 5, 7], 2, 2, 1, 6, 120, 0.5, true),
    (2, &[3, 5, 7, 9], 2, 2, 1, 3, 120, 0.5, true),
    (1, &[3, 5, 7, 9, 11], 1, 1, 2, 6, 200, 0.5, true),
    (2, &[3, 5, 7, 9], 1, 2, 1, 6, 200, 0.5, true),
];

/// MixNet-S with seeded weights, spelled as timm exports it (explicit BatchNormalization
/// after every mixed conv's Concat): a 3×3 stem to 16 channels, 16 blocks with mixed
/// depthwise kernels and grouped 1×1 convs, a 1×1 head conv to 1536, pooling and a Linear
/// classifier.
pub fn mixnet_s(
    batch: crate::writer::Dim,
    resolution: usize,
    classes: usize,
    seed: u64,
) -> effc_onnx::proto::ModelProto {
    let style = Exporter::ExplicitBn;
    let (mut b, mut w, x) = begin(style, seed, batch, resolution);
    let mut c = 16;
    let mut y = conv_bn_styled(&mut b, &mut w, &x, [3, c, 3, 2, 1], style);
    y = activation(&mut b, &y, Act::Relu);
    for (repeats, kernels, exp_groups, pwl_groups, stride, ratio, c_out, se, swish) in MIXNET_S {
        for i in 0..repeats {
            let s = MixSpec {
                c_in: c,
                c_out,
                expand_ratio: ratio,
                exp_groups,
                dw_kernels: kernels.to_vec(),
                pwl_groups,
                stride: if i == 0 { stride } else { 1 },
                se: (se > 0.0).then(|| ((c as f64 * se) as usize).max(1)),
                act: if swish { Act::Swish } else { Act::Relu },
            };
            y = mixnet_block(&mut b, &mut w, &y, &s);
            c = c_out;
        }
    }
    y = conv_bn_styled(&mut b, &mut w, &y, [c, 1536, 1, 1, 1], style);
    y = activation(&mut b, &y, Act::Relu);
    y = pool_flatten(&mut b, &y);
    linear(&mut b, &y, &w.he(classes * 1536, 1536), &vec![0.0; classes]);
    finish(b)
}
