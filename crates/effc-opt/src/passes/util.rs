//! Small graph queries shared by the passes.

use effc_ir::{Graph, NodeId, ValueRef};

/// `v` feeds exactly one node input and is not a model output, so its producer may be
/// rewritten to produce something else.
pub fn single_use(g: &Graph, v: ValueRef) -> bool {
    g.users(v).len() == 1 && !g.is_output(v)
}

/// Node ids in dependency order (passes match producers before consumers).
pub fn nodes_in_order(g: &Graph) -> Vec<NodeId> {
    g.topo_order().unwrap_or_else(|_| g.node_ids().collect())
}
