//! Work and size accounting: multiply-accumulates per op class and parameter counts.

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
        self.conv1x1 + self.depthwise + self.conv_other + self.gemm
    }
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
                let per_output: u64 = w[1..].iter().map(|&d| d as u64).product();
                let n = out.numel() as u64 * per_output;
                let c_in = w[1] * c.group;
                if c.group == 1 && c.kernel.iter().all(|&k| k == 1) {
                    m.conv1x1 += n;
                } else if c.group > 1 && c.group == c_in {
                    m.depthwise += n;
                } else {
                    m.conv_other += n;
                }
            }
            Op::Gemm(gm) => {
                let Some(a) = g.input(id, 0) else { continue };
                let a = &g.value(a).shape;
                let k = if gm.trans_a { a[0] } else { a[1] };
                m.gemm += out.numel() as u64 * k as u64;
            }
            Op::MbConv(b) => {
                let Some(x) = g.input(id, 0) else { continue };
                let xs = &g.value(x).shape;
                let pixels_in = (xs[0] * xs[2] * xs[3]) as u64;
                let pixels_out = (out.shape[0] * out.shape[2] * out.shape[3]) as u64;
                let c_exp = b.dw_w.shape()[0] as u64;
                if let Some(e) = &b.expand {
                    m.conv1x1 += pixels_in * (e.inputs() * e.outputs()) as u64;
                }
                m.depthwise += pixels_out * c_exp * b.dw.kernel.iter().product::<usize>() as u64;
                if let Some(se) = &b.se {
                    let fc =
                        (se.reduce.inputs() * se.reduce.outputs() + se.expand.inputs() * se.expand.outputs()) as u64;
                    m.conv1x1 += xs[0] as u64 * fc;
                }
                m.conv1x1 += pixels_out * (b.project.inputs() * b.project.outputs()) as u64;
            }
            Op::SqueezeExcite(se) => {
                let n = out.shape[0] as u64;
                m.conv1x1 +=
                    n * (se.reduce.inputs() * se.reduce.outputs() + se.expand.inputs() * se.expand.outputs()) as u64;
            }
            Op::MatMul => {
                let Some(a) = g.input(id, 0) else { continue };
                let k = *g.value(a).shape.last().unwrap_or(&0);
                m.gemm += out.numel() as u64 * k as u64;
            }
            _ => {}
        }
    }
    m
}

/// Number of float constant elements the graph holds: the model's learned parameters.
/// Integer constants (shapes, axes) are not parameters.
pub fn params(g: &Graph) -> u64 {
    g.node_ids()
        .map(|id| match &g.node(id).op {
            Op::Const(t) if t.dtype().is_float() => t.numel() as u64,
            Op::SqueezeExcite(se) => dense_params(&se.reduce) + dense_params(&se.expand),
            Op::MbConv(b) => {
                b.expand.as_ref().map_or(0, dense_params)
                    + (b.dw_w.numel() + b.dw_b.numel()) as u64
                    + b.se.as_ref().map_or(0, |se| dense_params(&se.reduce) + dense_params(&se.expand))
                    + dense_params(&b.project)
            }
            _ => 0,
        })
        .sum()
}

fn dense_params(d: &crate::op::Dense) -> u64 {
    (d.w.numel() + d.b.numel()) as u64
}

/// Estimated bytes of activations read and written by one inference: every op reads its
/// run-time inputs and writes its outputs once; an MBConv block also writes and reads back
/// its expanded and depthwise tensors (the SE branch and the projection's residual add
/// make no extra pass). The backend subtracts what its schedule avoids (streamed
/// expansions). Weights are not counted.
pub fn activation_traffic(g: &Graph) -> u64 {
    let bytes = |v: crate::ValueRef| {
        let i = g.value(v);
        (i.numel() * i.dtype.size_bytes()) as u64
    };
    let mut total = 0u64;
    for id in g.node_ids() {
        let node = g.node(id);
        match &node.op {
            Op::Const(_) => continue,
            // Copied in from the caller's buffer.
            Op::Input { .. } => total += 2 * bytes(crate::ValueRef::new(id, 0)),
            _ => {}
        }
        for v in g.inputs(id).into_iter().flatten() {
            if g.const_value(v).is_none() {
                total += bytes(v);
            }
        }
        total += (0..node.outputs.len()).map(|p| bytes(crate::ValueRef::new(id, p))).sum::<u64>();
        if let Op::MbConv(b) = &node.op
            && let Some(x) = g.input(id, 0)
        {
            let xs = &g.value(x).shape;
            let out = &node.outputs[0].shape;
            let c_exp = b.dw_w.shape()[0] as u64;
            if b.expand.is_some() {
                total += 2 * 4 * (xs[0] * xs[2] * xs[3]) as u64 * c_exp;
            }
            total += 2 * 4 * (out[0] * out[2] * out[3]) as u64 * c_exp;
        }
    }
    // Outputs are copied out to the caller.
    total + g.outputs.iter().map(|(_, v)| 2 * bytes(*v)).sum::<u64>()
}
