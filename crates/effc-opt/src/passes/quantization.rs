use effc_ir::op::{Op, PadMode, PoolKind, Unary};
use effc_ir::{Graph, NodeId, Result, ValueRef};

use super::util::nodes_in_order;
use crate::Pass;

/// How a QDQ model's activations run: a QuantizeLinear → DequantizeLinear pair of one
/// scale and zero point becomes one f32 op snapping values to the quantization levels
/// ([`Unary::QuantizeDequantize`]), and such a snap of values already on the same levels
/// (a pair that quantizer tools put after reshapes, transposes, zero pads and max pools,
/// which only move or pick values) goes. Runs with and without fusion: without it the
/// pairs would need quantized tensors at run time.
pub struct FoldQuantizePairs;

impl Pass for FoldQuantizePairs {
    fn name(&self) -> &'static str {
        "quantize-dequantize"
    }

    fn run(&self, g: &mut Graph) -> Result<usize> {
        let mut changes = 0;
        for id in nodes_in_order(g) {
            if !g.contains(id) {
                continue;
            }
            if let Some((source, snap)) = pair(g, id) {
                g.node_mut(id).op = Op::Unary(snap);
                g.set_input(id, 0, Some(source));
                g.set_input(id, 1, None);
                g.set_input(id, 2, None);
                changes += 1;
            }
            // Checked right away: a later pass may fuse the snap before it into a conv.
            if let Op::Unary(snap @ Unary::QuantizeDequantize { .. }) = g.node(id).op
                && let Some(x) = g.input(id, 0)
                && on_levels(g, x, snap)
            {
                g.replace_uses(ValueRef::new(id, 0), x);
                g.remove_node(id);
                changes += 1;
            }
        }
        Ok(changes)
    }
}

/// For a DequantizeLinear reading a QuantizeLinear with the same single scale and zero
/// point: the QuantizeLinear's input and the snap the two compute.
fn pair(g: &Graph, dq: NodeId) -> Option<(ValueRef, Unary)> {
    let Op::Dequantize(_) = g.node(dq).op else { return None };
    let q = g.input(dq, 0)?.node;
    let Op::Quantize(_) = g.node(q).op else { return None };
    let snap = snap_of(g, q)?;
    (snap_of(g, dq)? == snap).then_some((g.input(q, 0)?, snap))
}

/// The snap of a QuantizeLinear or DequantizeLinear with one constant scale and zero
/// point.
fn snap_of(g: &Graph, id: NodeId) -> Option<Unary> {
    let (Op::Quantize(q) | Op::Dequantize(q)) = &g.node(id).op else { return None };
    let (lo, hi) = q.dtype.quant_range()?;
    let scale = g.const_value(g.input(id, 1)?)?;
    let zero_point = match g.input(id, 2) {
        Some(z) => g.const_value(z)?.to_i64_vec().ok()?,
        None => vec![0],
    };
    let (&[scale], &[zero_point]) = (scale.to_f32_vec().as_slice(), zero_point.as_slice()) else { return None };
    let zero_point = i32::try_from(zero_point).ok().filter(|z| (lo..=hi).contains(z))?;
    (scale.is_finite() && scale > 0.0).then_some(Unary::QuantizeDequantize { scale, zero_point, lo, hi })
}

/// Whether every value of `v` is already one of `snap`'s levels: `v` comes from the same
/// snap through ops that only move, pick or pad values (padding with a level).
fn on_levels(g: &Graph, mut v: ValueRef, snap: Unary) -> bool {
    // The chains quantizer tools write are a few ops long; a bound keeps a long one cheap.
    for _ in 0..16 {
        let node = g.node(v.node);
        let passes_levels = match &node.op {
            Op::Unary(u) => return *u == snap,
            Op::Conv(c) => return c.act == Some(snap),
            Op::Reshape { .. } | Op::Transpose { .. } | Op::Slice { .. } => true,
            Op::Pool(p) => p.kind == PoolKind::Max,
            Op::GlobalPool(kind) => *kind == PoolKind::Max,
            Op::Pad(p) => match p.mode {
                PadMode::Constant(fill) => effc_ir::eval::unary_f64(snap, fill as f64) == fill as f64,
                PadMode::Edge | PadMode::Reflect => true,
            },
            _ => false,
        };
        match g.input(v.node, 0) {
            Some(x) if passes_levels => v = x,
            _ => return false,
        }
    }
    false
}
