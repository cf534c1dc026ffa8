use effc_ir::op::{Binary, Conv, Dense, Op, PoolKind, ReduceKind, SqueezeExcite, Unary};
use effc_ir::{Graph, NodeId, Result, Tensor, ValueRef};

use super::util::{nodes_in_order, single_use};
use crate::Pass;

/// Recognises squeeze-excite: x · gate(FC2(act(FC1(mean_HW(x))))), where the mean is a
/// GlobalAveragePool or a ReduceMean over H, W with keepdims, the FCs are 1×1 convs (with
/// their activations already fused) and the gate is sigmoid or hard-sigmoid.
pub struct DetectSqueezeExcite;

/// A 1×1, group-1, unpadded conv without residual and with constant weights, as a dense
/// layer.
pub(crate) fn dense_of_conv(g: &Graph, id: NodeId) -> Option<Dense> {
    if g.input(id, 3).is_some() {
        return None;
    }
    pointwise_weights(g, id)
}

/// The dense layer a 1×1, group-1, unpadded 2-D conv with constant weights computes
/// (ignoring any residual input).
pub(crate) fn pointwise_weights(g: &Graph, id: NodeId) -> Option<Dense> {
    let Op::Conv(c) = &g.node(id).op else { return None };
    let pointwise = c.kernel.len() == 2
        && c.kernel.iter().all(|&k| k == 1)
        && c.strides.iter().all(|&s| s == 1)
        && c.pads_begin.iter().chain(&c.pads_end).all(|&p| p == 0)
        && c.group == 1;
    if !pointwise {
        return None;
    }
    let w = g.const_value(g.input(id, 1)?)?;
    let (o, i) = (w.shape()[0], w.shape()[1]);
    let b = match g.input(id, 2) {
        Some(b) => g.const_value(b)?.clone(),
        None => Tensor::from_f32(vec![o], vec![0.0; o]).ok()?,
    };
    Some(Dense { w: w.reshaped(vec![o, i]).ok()?, b, act: c.act })
}

fn is_spatial_mean(g: &Graph, id: NodeId) -> bool {
    match &g.node(id).op {
        Op::GlobalPool(PoolKind::Average) => true,
        Op::Reduce(r) => r.kind == ReduceKind::Mean && r.keepdims && r.axes == [2, 3],
        _ => false,
    }
}

/// Matches the gate branch of `mul` for the scaled value `x`; returns (reduce, expand,
/// the nodes to delete).
fn match_se(g: &Graph, x: ValueRef, gate: ValueRef) -> Option<(Dense, Dense, [NodeId; 3])> {
    if g.value(x).shape.len() != 4 || !single_use(g, gate) {
        return None;
    }
    let expand = dense_of_conv(g, gate.node)?;
    if !matches!(expand.act, Some(Unary::Sigmoid | Unary::HardSigmoid { .. })) {
        return None;
    }
    let hidden = g.input(gate.node, 0)?;
    if !single_use(g, hidden) {
        return None;
    }
    let reduce = dense_of_conv(g, hidden.node)?;
    let pooled = g.input(hidden.node, 0)?;
    if !single_use(g, pooled) || !is_spatial_mean(g, pooled.node) || g.input(pooled.node, 0) != Some(x) {
        return None;
    }
    Some((reduce, expand, [gate.node, hidden.node, pooled.node]))
}

impl Pass for DetectSqueezeExcite {
    fn name(&self) -> &'static str {
        "detect-squeeze-excite"
    }

    fn run(&self, g: &mut Graph) -> Result<usize> {
        let mut changes = 0;
        for mul in nodes_in_order(g) {
            if !g.contains(mul) || g.node(mul).op != Op::Binary(Binary::Mul) {
                continue;
            }
            let (Some(a), Some(b)) = (g.input(mul, 0), g.input(mul, 1)) else { continue };
            let Some((x, (reduce, expand, parts))) =
                [(a, b), (b, a)].into_iter().find_map(|(x, gate)| match_se(g, x, gate).map(|m| (x, m)))
            else {
                continue;
            };
            g.node_mut(mul).op = Op::SqueezeExcite(Box::new(SqueezeExcite { reduce, expand }));
            g.set_input(mul, 1, None);
            g.set_input(mul, 0, Some(x));
            for p in parts {
                g.remove_node(p);
            }
            changes += 1;
        }
        Ok(changes)
    }
}

/// Whether `c` is a depthwise convolution (one input and one output channel per group).
pub(crate) fn is_depthwise(g: &Graph, id: NodeId, c: &Conv) -> bool {
    let (Some(x), Some(w)) = (g.input(id, 0), g.input(id, 1)) else { return false };
    let channels = g.value(x).shape.get(1).copied().unwrap_or(0);
    c.group > 1 && c.group == channels && g.value(w).shape[0] == channels && g.value(w).shape[1] == 1
}
