use std::sync::Arc;

use effc_ir::fusion::{Fusion, Site};
use effc_ir::op::{Binary, Op};
use effc_ir::{Graph, Result, ValueRef};

use super::util::{absorb, nodes_in_order, single_use};
use crate::Pass;

/// Fuses what follows a Conv into its epilogue, so the result is written once:
/// - Add(conv, r) with r of the conv's shape → conv with residual r (only while the conv
///   has no activation: the epilogue is act(conv + bias + residual));
/// - an elementwise activation of the conv → conv with that activation, where the backend
///   can compute it there.
pub struct FuseConvEpilogue {
    pub fusion: Arc<dyn Fusion + Send + Sync>,
}

impl Pass for FuseConvEpilogue {
    fn name(&self) -> &'static str {
        "fuse-conv-epilogue"
    }

    fn run(&self, g: &mut Graph) -> Result<usize> {
        let mut changes = 0;
        for id in nodes_in_order(g) {
            if !g.contains(id) {
                continue;
            }
            match g.node(id).op.clone() {
                Op::Unary(u) => {
                    let Some(x) = g.input(id, 0) else { continue };
                    let fusable = matches!(&g.node(x.node).op, Op::Conv(c) if c.act.is_none()) && single_use(g, x);
                    if !fusable || g.value(x).dtype != effc_ir::DType::F32 || !self.fusion.can_fuse(Site::Conv, u) {
                        continue;
                    }
                    if let Op::Conv(c) = &mut g.node_mut(x.node).op {
                        c.act = Some(u);
                    }
                    absorb(g, x, ValueRef::new(id, 0));
                    changes += 1;
                }
                Op::Binary(Binary::Add) => {
                    let (Some(a), Some(b)) = (g.input(id, 0), g.input(id, 1)) else { continue };
                    let out_shape = g.value(ValueRef::new(id, 0)).shape.clone();
                    for (conv_v, other) in [(a, b), (b, a)] {
                        let ok = matches!(&g.node(conv_v.node).op, Op::Conv(c) if c.act.is_none())
                            && g.input(conv_v.node, 3).is_none()
                            && single_use(g, conv_v)
                            && g.const_value(other).is_none()
                            && g.value(other).shape == out_shape
                            && g.value(conv_v).shape == out_shape
                            && other.node != conv_v.node;
                        if ok {
                            g.set_input(conv_v.node, 3, Some(other));
                            absorb(g, conv_v, ValueRef::new(id, 0));
                            changes += 1;
                            break;
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(changes)
    }
}
