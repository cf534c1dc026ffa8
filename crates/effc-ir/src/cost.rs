//! Work and size accounting: multiply-accumulates per op class and parameter counts.
//! Arithmetic saturates: these are estimates, computed for hostile graphs too (before
//! code generation refuses their sizes), where exact products can overflow u64.

use crate::Graph;
use crate::op::Op;

/// Multiply-accumulates of one inference, split the way EfficientNet's cost splits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Macs {
    /// 1×1 convolutions with group 1 (expand, project, SE, head).
    pub conv1x1: u64,
    /// Depthwise convolutions (one input channel per group).
    pub depthwise: u64,
    /// Every other convolution (stem, grouped, k×k dense).
    pub conv_other: u64,
    /// Gemm and MatMul.
    pub gemm: u64,
}

impl Macs {
    pub fn total(&self) -> u64 {
        sum([self.conv1x1, self.depthwise, self.conv_other, self.gemm])
    }
}

/// Saturating product.
fn prod(values: impl IntoIterator<Item = usize>) -> u64 {
    values.into_iter().fold(1u64, |acc, v| acc.saturating_mul(v as u64))
}

/// Saturating sum.
fn sum(values: impl IntoIterator<Item = u64>) -> u64 {
    values.into_iter().fold(0u64, u64::saturating_add)
}

/// Counts the multiply-accumulates of every Conv, Gemm and MatMul in `g`.
pub fn macs(g: &Graph) -> Macs {
    let mut m = Macs::default();
    for id in g.node_ids() {
        let node = g.node(id);
        let out = &node.outputs[0];
        match &node.op {
            Op::Conv(c) => {
                let Some(w) = g.input(id, 1) else { continue };
                let w = &g.value(w).shape;
                let n = prod(w[1..].iter().copied().chain([out.numel()]));
                let c_in = w[1].saturating_mul(c.group);
                let class = if c.group == 1 && c.kernel.iter().all(|&k| k == 1) {
                    &mut m.conv1x1
                } else if c.group > 1 && c.group == c_in {
                    &mut m.depthwise
                } else {
                    &mut m.conv_other
                };
                *class = class.saturating_add(n);
            }
            Op::Gemm(gm) => {
                let Some(a) = g.input(id, 0) else { continue };
                let a = &g.value(a).shape;
                let k = if gm.trans_a { a[0] } else { a[1] };
                m.gemm = m.gemm.saturating_add(prod([out.numel(), k]));
            }
            Op::MbConv(b) => {
                let Some(x) = g.input(id, 0) else { continue };
                let xs = &g.value(x).shape;
                let (started, start_macs) = start_cost(b.start.as_ref(), xs);
                m.depthwise = m.depthwise.saturating_add(start_macs);
                let xs = started.as_ref().unwrap_or(xs);
                let pixels_in = [xs[0], xs[2], xs[3]];
                let pixels_out = [out.shape[0], out.shape[2], out.shape[3]];
                let c_exp = b.dw_w.shape()[0];
                let mut one_by_one = Vec::new();
                if let Some(e) = &b.expand {
                    one_by_one.push(prod(pixels_in.into_iter().chain([e.inputs(), e.outputs()])));
                }
                let taps = b.dw.kernel.iter().copied();
                m.depthwise = m.depthwise.saturating_add(prod(pixels_out.into_iter().chain([c_exp]).chain(taps)));
                if let Some(se) = &b.se {
                    one_by_one.push(prod([xs[0], se_macs(se) as usize]));
                }
                one_by_one.push(prod(pixels_out.into_iter().chain([b.project.inputs(), b.project.outputs()])));
                m.conv1x1 = sum(one_by_one.into_iter().chain([m.conv1x1]));
            }
            Op::FusedMbConv(b) => {
                if let Some(x) = g.input(id, 0) {
                    m.depthwise = m.depthwise.saturating_add(start_cost(b.start.as_ref(), &g.value(x).shape).1);
                }
                let pixels_out = [out.shape[0], out.shape[2], out.shape[3]];
                let expand = b.expand_w.shape().iter().copied();
                m.conv_other = m.conv_other.saturating_add(prod(pixels_out.into_iter().chain(expand)));
                let project = prod(pixels_out.into_iter().chain([b.project.inputs(), b.project.outputs()]));
                m.conv1x1 = m.conv1x1.saturating_add(project);
            }
            Op::SqueezeExcite(se) => {
                m.conv1x1 = m.conv1x1.saturating_add(prod([out.shape[0], se_macs(se) as usize]));
            }
            Op::MatMul => {
                let Some(a) = g.input(id, 0) else { continue };
                let k = *g.value(a).shape.last().unwrap_or(&0);
                m.gemm = m.gemm.saturating_add(prod([out.numel(), k]));
            }
            _ => {}
        }
    }
    m
}

/// A block's leading depthwise conv on an input of shape `x`: its output shape and its
/// multiply-accumulates (none without one, or when its shape does not fit).
fn start_cost(start: Option<&crate::op::StartDepthwise>, x: &[usize]) -> (Option<Vec<usize>>, u64) {
    let Some(out) = start.and_then(|s| s.output_shape(x).ok()) else { return (None, 0) };
    let taps = start.map_or(1, |s| s.conv.kernel.iter().product::<usize>());
    let macs = prod(out.iter().copied().chain([taps]));
    (Some(out), macs)
}

/// Multiply-accumulates of one sample through a squeeze-excite block's two FC layers.
fn se_macs(se: &crate::op::SqueezeExcite) -> u64 {
    sum([prod([se.reduce.inputs(), se.reduce.outputs()]), prod([se.expand.inputs(), se.expand.outputs()])])
}

/// Number of float constant elements the graph holds: the model's learned parameters.
/// Integer constants (shapes, axes) are not parameters.
pub fn params(g: &Graph) -> u64 {
    sum(g.node_ids().map(|id| match &g.node(id).op {
        Op::Const(t) if t.dtype().is_float() => t.numel() as u64,
        Op::SqueezeExcite(se) => dense_params(&se.reduce) + dense_params(&se.expand),
        Op::MbConv(b) => {
            start_params(b.start.as_ref())
                + b.expand.as_ref().map_or(0, dense_params)
                + (b.dw_w.numel() + b.dw_b.numel()) as u64
                + b.se.as_ref().map_or(0, |se| dense_params(&se.reduce) + dense_params(&se.expand))
                + dense_params(&b.project)
        }
        Op::FusedMbConv(b) => {
            start_params(b.start.as_ref()) + (b.expand_w.numel() + b.expand_b.numel()) as u64 + dense_params(&b.project)
        }
        _ => 0,
    }))
}

fn start_params(start: Option<&crate::op::StartDepthwise>) -> u64 {
    start.map_or(0, |s| (s.w.numel() + s.b.numel()) as u64)
}

/// A constant's elements exist in memory, so their counts add up without overflow.
fn dense_params(d: &crate::op::Dense) -> u64 {
    (d.w.numel() + d.b.numel()) as u64
}

/// Estimated bytes of activations read and written by one inference: every op reads its
/// run-time inputs and writes its outputs once; an MBConv block also writes and reads back
/// its expanded and depthwise tensors (the SE branch and the projection's residual add
/// make no extra pass), a Fused-MBConv block its expanded tensor, and either its leading
/// depthwise conv's output. The backend subtracts what its schedule avoids (streamed
/// expansions). Weights are not counted.
pub fn activation_traffic(g: &Graph) -> u64 {
    let bytes = |v: crate::ValueRef| {
        let i = g.value(v);
        prod([i.numel(), i.dtype.size_bytes()])
    };
    let mut parts = Vec::new();
    for id in g.node_ids() {
        let node = g.node(id);
        match &node.op {
            Op::Const(_) => continue,
            // Copied in from the caller's buffer.
            Op::Input { .. } => parts.push(bytes(crate::ValueRef::new(id, 0)).saturating_mul(2)),
            _ => {}
        }
        for v in g.inputs(id).into_iter().flatten() {
            if g.const_value(v).is_none() {
                parts.push(bytes(v));
            }
        }
        parts.extend((0..node.outputs.len()).map(|p| bytes(crate::ValueRef::new(id, p))));
        if let Op::MbConv(b) = &node.op
            && let Some(x) = g.input(id, 0)
        {
            let xs = &g.value(x).shape;
            let (started, _) = start_cost(b.start.as_ref(), xs);
            if let Some(s) = &started {
                parts.push(prod([2, 4].into_iter().chain(s.iter().copied())));
            }
            let xs = started.as_ref().unwrap_or(xs);
            let out = &node.outputs[0].shape;
            let c_exp = b.dw_w.shape()[0];
            if b.expand.is_some() {
                parts.push(prod([2, 4, xs[0], xs[2], xs[3], c_exp]));
            }
            parts.push(prod([2, 4, out[0], out[2], out[3], c_exp]));
        }
        if let Op::FusedMbConv(b) = &node.op {
            let out = &node.outputs[0].shape;
            if let Some(x) = g.input(id, 0)
                && let (Some(s), _) = start_cost(b.start.as_ref(), &g.value(x).shape)
            {
                parts.push(prod([2, 4].into_iter().chain(s)));
            }
            parts.push(prod([2, 4, out[0], out[2], out[3], b.expanded()]));
        }
    }
    // Outputs are copied out to the caller.
    parts.extend(g.outputs.iter().map(|(_, v)| bytes(*v).saturating_mul(2)));
    sum(parts)
}
