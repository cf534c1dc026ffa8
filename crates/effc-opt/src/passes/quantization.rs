use effc_ir::op::{Op, Pad, PadMode, PoolKind, Unary};
use effc_ir::{DType, Graph, NodeId, Result, ValueInfo, ValueRef};

use super::util::nodes_in_order;
use crate::Pass;

/// How a QDQ model's activations run: a QuantizeLinear → DequantizeLinear pair of one
/// scale and zero point becomes one f32 op snapping values to the quantization levels
/// ([`Unary::QuantizeDequantize`]), and such a snap of values already on the same levels
/// (a pair that quantizer tools put after reshapes, transposes, zero pads and max pools,
/// which only move or pick values) goes. Runs with and without fusion: without it the
/// pairs would need quantized tensors at run time.
///
/// A DequantizeLinear after such an op on quantized values (the QOperator form's uint8
/// reshapes and pads, onnxruntime's Direct8BitOp and QPad) first moves above it, to meet
/// its QuantizeLinear; and pairs of one QuantizeLinear read by several DequantizeLinears
/// (one per reader in the QOperator form) become one snap.
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
            // A moved DequantizeLinear pairs in this same run, before `form-mbconv` sees
            // the conv before it without its snap.
            let mut id = id;
            while let Some(moved) = hoist(g, id) {
                changes += 1;
                id = moved;
            }
            if let Some((source, snap)) = pair(g, id) {
                changes += 1;
                let twin =
                    g.users(source).into_iter().map(|(n, _)| n).find(|&n| n != id && g.node(n).op == Op::Unary(snap));
                if let Some(twin) = twin {
                    g.replace_uses(ValueRef::new(id, 0), ValueRef::new(twin, 0));
                    g.remove_node(id);
                    continue;
                }
                g.node_mut(id).op = Op::Unary(snap);
                g.set_input(id, 0, Some(source));
                g.set_input(id, 1, None);
                g.set_input(id, 2, None);
            }
            if snap_before_pad(g, id) {
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

/// DequantizeLinear(L(x)) → L(DequantizeLinear(x)) for a DequantizeLinear of one scale
/// and zero point and an op L that only moves, picks or pads values (the fill
/// dequantized); the moved DequantizeLinear, if it rewrote.
fn hoist(g: &mut Graph, dq: NodeId) -> Option<NodeId> {
    let Some(Unary::QuantizeDequantize { scale, zero_point, .. }) = snap_of(g, dq) else { return None };
    if !matches!(g.node(dq).op, Op::Dequantize(_)) {
        return None;
    }
    let moved = g.input(dq, 0)?;
    let op = match &g.node(moved.node).op {
        op @ (Op::Reshape { .. } | Op::Transpose { .. } | Op::Slice { .. }) => op.clone(),
        Op::Pool(p) if p.kind == PoolKind::Max => Op::Pool(p.clone()),
        Op::Pad(p) => match p.mode {
            // A quantized fill is an integer of the quantized type.
            PadMode::Constant(fill) => {
                let fill = effc_ir::op::dequantize(fill as i32, scale, zero_point);
                Op::Pad(Pad { mode: PadMode::Constant(fill), ..p.clone() })
            }
            PadMode::Edge | PadMode::Reflect => Op::Pad(p.clone()),
        },
        _ => return None,
    };
    let x = g.input(moved.node, 0)?;
    if g.inputs(moved.node).iter().skip(1).any(Option::is_some) {
        return None;
    }
    let params = g.inputs(dq);
    let out = g.value(ValueRef::new(dq, 0)).clone();
    let float_x = ValueInfo {
        name: format!("{}::dequantized", g.value(x).name),
        dtype: DType::F32,
        shape: g.value(x).shape.clone(),
    };
    let name = g.node(dq).name.clone();
    let dq_op = g.node(dq).op.clone();
    let new_dq = g.add_node(
        name.clone(),
        dq_op,
        &[Some(x), params.get(1).copied().flatten(), params.get(2).copied().flatten()],
        vec![float_x],
    );
    let new_op = g.add_node(name, op, &[Some(ValueRef::new(new_dq, 0))], vec![out]);
    // Every DequantizeLinear of the same parameters reading `moved` (one per reader in
    // the QOperator form) takes the one moved copy.
    let twins: Vec<NodeId> = (g.users(moved).into_iter().map(|(n, _)| n))
        .filter(|&n| g.node(n).op == g.node(dq).op && g.inputs(n) == params)
        .collect();
    for twin in twins {
        g.replace_uses(ValueRef::new(twin, 0), ValueRef::new(new_op, 0));
        g.remove_node(twin);
    }
    Some(new_dq)
}

/// snap(Pad(x)) → Pad(snap(x)) for a Pad read only by the snap, filling with one of its
/// levels (the QOperator form quantizes after the explicit Pad before a stem): the Pad
/// can then merge into the conv after the snap. Whether it rewrote.
fn snap_before_pad(g: &mut Graph, id: NodeId) -> bool {
    let Op::Unary(snap @ Unary::QuantizeDequantize { .. }) = g.node(id).op else { return false };
    let Some(padded) = g.input(id, 0) else { return false };
    let Op::Pad(Pad { mode: PadMode::Constant(fill), .. }) = g.node(padded.node).op else { return false };
    let single_reader = g.users(padded).len() == 1 && !g.is_output(padded);
    if !single_reader || effc_ir::eval::unary_f64(snap, fill as f64) != fill as f64 {
        return false;
    }
    let Some(x) = g.input(padded.node, 0) else { return false };
    if g.inputs(padded.node).iter().skip(1).any(Option::is_some) {
        return false;
    }
    let snapped = ValueRef::new(id, 0);
    g.replace_uses(snapped, padded);
    g.set_input(id, 0, Some(x));
    g.set_input(padded.node, 0, Some(snapped));
    g.value_mut(snapped).shape = g.value(x).shape.clone();
    true
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
