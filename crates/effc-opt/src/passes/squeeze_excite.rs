use std::sync::Arc;

use effc_ir::fusion::{Fusion, Site};
use effc_ir::op::{Binary, Conv, Dense, Op, PoolKind, ReduceKind, SqueezeExcite, Unary};
use effc_ir::{Graph, NodeId, Result, Tensor, ValueRef};

use super::util::{absorb, nodes_in_order, single_use, snap_levels};
use crate::Pass;

/// Recognises squeeze-excite: x · gate(FC2(act(FC1(mean_HW(x))))), where the mean is a
/// GlobalAveragePool or a ReduceMean over H, W with keepdims, and the gate is sigmoid or
/// hard-sigmoid. The FCs are either 1×1 convs (activations already fused into them) or,
/// as Keras/tf2onnx and some PyTorch exports write them, a reshape to [N, C], Gemm or
/// MatMul (+ Add) layers with separate activations, and a reshape back to [N, C, 1, 1].
/// Both activations must be ones the backend computes in the fused block.
pub struct DetectSqueezeExcite {
    pub fusion: Arc<dyn Fusion + Send + Sync>,
}

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
    let (w, b) = conv_params(g, id)?;
    let (&o, &i) = (w.shape().first()?, w.shape().get(1)?);
    Some(Dense { w: w.reshaped(vec![o, i]).ok()?, b, act: c.act })
}

/// A conv node's constant weights and bias (zeros when it has none), if both are constant.
pub(crate) fn conv_params(g: &Graph, id: NodeId) -> Option<(Tensor, Tensor)> {
    let w = g.const_value(g.input(id, 1)?)?.clone();
    let out = *w.shape().first()?;
    let b = match g.input(id, 2) {
        Some(b) => g.const_value(b)?.clone(),
        None => Tensor::from_f32(vec![out], vec![0.0; out]).ok()?,
    };
    Some((w, b))
}

fn is_spatial_mean(g: &Graph, id: NodeId) -> bool {
    match &g.node(id).op {
        Op::GlobalPool(PoolKind::Average) => true,
        Op::Reduce(r) => r.kind == ReduceKind::Mean && r.keepdims && r.axes == [2, 3],
        _ => false,
    }
}

/// Matches the gate branch of `mul` for the scaled value `x` (in a QDQ model, with the
/// pooled means snapped); returns the block without its output snap, and the nodes to
/// delete.
fn match_se(g: &Graph, x: ValueRef, gate: ValueRef) -> Option<(SqueezeExcite, Vec<NodeId>)> {
    if g.value(x).shape.len() != 4 || !single_use(g, gate) {
        return None;
    }
    let expand = dense_of_conv(g, gate.node)?;
    if !matches!(expand.act, Some(Unary::Sigmoid | Unary::HardSigmoid { .. } | Unary::QuantizedSigmoid { .. })) {
        return None;
    }
    let hidden = g.input(gate.node, 0)?;
    if !single_use(g, hidden) {
        return None;
    }
    let reduce = dense_of_conv(g, hidden.node)?;
    let mut parts = vec![gate.node, hidden.node];
    let mut pooled = g.input(hidden.node, 0)?;
    let snapped = snap_levels(g, pooled.node);
    if snapped.is_some() {
        if !single_use(g, pooled) {
            return None;
        }
        parts.push(pooled.node);
        pooled = g.input(pooled.node, 0)?;
    }
    if !single_use(g, pooled) || !is_spatial_mean(g, pooled.node) || g.input(pooled.node, 0) != Some(x) {
        return None;
    }
    parts.push(pooled.node);
    Some((SqueezeExcite { reduce, expand, pooled: snapped, scaled: None }, parts))
}

/// A Gemm (alpha = beta = 1, constant B and C) or MatMul (+ Add of a constant bias) with
/// constant weights, as a dense layer; also returns the nodes it spans and its input.
fn dense_of_matmul(g: &Graph, v: ValueRef) -> Option<(Dense, Vec<NodeId>, ValueRef)> {
    let node = g.node(v.node);
    let (w, b, nodes, input) = match &node.op {
        Op::Gemm(gm) if gm.alpha == 1.0 && !gm.trans_a => {
            let w = g.const_value(g.input(v.node, 1)?)?;
            let w = if gm.trans_b { w.clone() } else { transpose2(w)? };
            let b = match g.input(v.node, 2) {
                Some(c) if gm.beta == 1.0 => Some(g.const_value(c)?.clone()),
                Some(_) => return None,
                None => None,
            };
            (w, b, vec![v.node], g.input(v.node, 0)?)
        }
        Op::Binary(Binary::Add) => {
            let (a, c) = (g.input(v.node, 0)?, g.input(v.node, 1)?);
            let (mm, bias) = if g.const_value(c).is_some() { (a, c) } else { (c, a) };
            if g.node(mm.node).op != Op::MatMul || !single_use(g, mm) {
                return None;
            }
            let w = transpose2(g.const_value(g.input(mm.node, 1)?)?)?;
            (w, Some(g.const_value(bias)?.clone()), vec![v.node, mm.node], g.input(mm.node, 0)?)
        }
        Op::MatMul => {
            let w = transpose2(g.const_value(g.input(v.node, 1)?)?)?;
            (w, None, vec![v.node], g.input(v.node, 0)?)
        }
        _ => return None,
    };
    let out = *w.shape().first()?;
    let b = match b {
        Some(b) if b.numel() == out => b.reshaped(vec![out]).ok()?,
        Some(_) => return None,
        None => Tensor::from_f32(vec![out], vec![0.0; out]).ok()?,
    };
    Some((Dense { w, b, act: None }, nodes, input))
}

/// [in, out] → [out, in] for a 2-D f32 constant.
fn transpose2(t: &Tensor) -> Option<Tensor> {
    let &[r, c] = t.shape() else { return None };
    if c == 0 {
        return None;
    }
    let v = t.to_f32_vec();
    Tensor::from_f32(vec![c, r], (0..c).flat_map(|j| v.iter().skip(j).step_by(c).copied()).collect()).ok()
}

/// The Gemm/MatMul spelling: Reshape [N,C,1,1] ← gate ← FC2 ← [act] ← FC1 ← Reshape [N,C] ← mean.
fn match_se_dense(g: &Graph, x: ValueRef, gate: ValueRef) -> Option<(Dense, Dense, Vec<NodeId>)> {
    let &[n, c, _, _] = g.value(x).shape.as_slice() else { return None };
    if !single_use(g, gate) || !matches!(g.node(gate.node).op, Op::Reshape { .. }) {
        return None;
    }
    if g.value(gate).shape != [n, c, 1, 1] {
        return None;
    }
    let mut remove = vec![gate.node];
    let s = g.input(gate.node, 0)?;
    let gate_act = match &g.node(s.node).op {
        Op::Unary(u @ (Unary::Sigmoid | Unary::HardSigmoid { .. })) if single_use(g, s) => *u,
        _ => return None,
    };
    remove.push(s.node);
    let f2 = g.input(s.node, 0)?;
    if !single_use(g, f2) {
        return None;
    }
    let (mut expand, nodes, h) = dense_of_matmul(g, f2)?;
    expand.act = Some(gate_act);
    remove.extend(nodes);
    let (act1, f1) = match &g.node(h.node).op {
        Op::Unary(u) if single_use(g, h) => {
            remove.push(h.node);
            (Some(*u), g.input(h.node, 0)?)
        }
        _ => (None, h),
    };
    if !single_use(g, f1) {
        return None;
    }
    let (mut reduce, nodes, flat) = dense_of_matmul(g, f1)?;
    reduce.act = act1;
    remove.extend(nodes);
    if !single_use(g, flat) || !matches!(g.node(flat.node).op, Op::Reshape { .. }) || g.value(flat).shape != [n, c] {
        return None;
    }
    remove.push(flat.node);
    let pooled = g.input(flat.node, 0)?;
    if !single_use(g, pooled) || !is_spatial_mean(g, pooled.node) || g.input(pooled.node, 0) != Some(x) {
        return None;
    }
    remove.push(pooled.node);
    let fits = reduce.inputs() == c && expand.outputs() == c && expand.inputs() == reduce.outputs();
    fits.then_some((reduce, expand, remove))
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
            let Some((x, (mut se, parts))) = [(a, b), (b, a)].into_iter().find_map(|(x, gate)| {
                match_se(g, x, gate)
                    .or_else(|| {
                        match_se_dense(g, x, gate).map(|(reduce, expand, parts)| {
                            (SqueezeExcite { reduce, expand, pooled: None, scaled: None }, parts)
                        })
                    })
                    .map(|m| (x, m))
            }) else {
                continue;
            };
            let fusable = |d: &Dense| d.act.is_none_or(|u| self.fusion.can_fuse(Site::SqueezeExcite, u));
            if !fusable(&se.reduce) || !fusable(&se.expand) {
                continue;
            }
            // A QDQ model snaps the product: the block takes that snap in.
            let product = ValueRef::new(mul, 0);
            let output_snap = match g.users(product).as_slice() {
                &[(reader, _)] if !g.is_output(product) => snap_levels(g, reader).map(|l| (reader, l)),
                _ => None,
            };
            if se.pooled.is_some() != output_snap.is_some() {
                continue;
            }
            if let Some((reader, levels)) = output_snap {
                se.scaled = Some(levels);
                absorb(g, product, ValueRef::new(reader, 0));
            }
            g.node_mut(mul).op = Op::SqueezeExcite(Box::new(se));
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
    c.group > 1 && c.group == channels && g.value(w).shape.get(..2) == Some(&[channels, 1][..])
}
