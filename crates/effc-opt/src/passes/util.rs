//! Small graph queries shared by the passes.

use effc_ir::op::{Levels, Op};
use effc_ir::{Graph, NodeId, ValueRef};

/// `v` feeds exactly one node input and is not a model output, so its producer may be
/// rewritten to produce something else.
pub fn single_use(g: &Graph, v: ValueRef) -> bool {
    g.users(v).len() == 1 && !g.is_output(v)
}

/// Node ids in dependency order (passes match producers before consumers).
/// Removes the constant behind `v` once nothing reads it, so that a pass replacing weights
/// does not keep the old ones alive until dead-code removal (both copies at once).
pub fn remove_if_unused_const(g: &mut Graph, v: ValueRef) {
    if g.contains(v.node) && matches!(g.node(v.node).op, Op::Const(_)) && g.users(v).is_empty() && !g.is_output(v) {
        g.remove_node(v.node);
    }
}

pub fn nodes_in_order(g: &Graph) -> Vec<NodeId> {
    g.topo_order().unwrap_or_else(|_| g.node_ids().collect())
}

/// The value `conv_out` now computes what `fused` computed: it takes over its name and
/// consumers, and the fused node goes.
pub fn absorb(g: &mut Graph, conv_out: ValueRef, fused: ValueRef) {
    g.value_mut(conv_out).name = g.value(fused).name.clone();
    g.replace_uses(fused, conv_out);
    g.remove_node(fused.node);
}

/// The levels of a snap node (a QDQ model's QuantizeLinear → DequantizeLinear pair).
pub fn snap_levels(g: &Graph, id: NodeId) -> Option<Levels> {
    match g.node(id).op {
        Op::Unary(u) => Levels::of(u),
        _ => None,
    }
}
