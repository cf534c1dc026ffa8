use std::sync::Arc;

use effc_ir::fusion::{Fusion, Site};
use effc_ir::op::{MbConv, Op};
use effc_ir::{Graph, NodeId, Result, Tensor, ValueRef};

use super::squeeze_excite::{dense_of_conv, is_depthwise, pointwise_weights};
use super::util::{nodes_in_order, single_use};
use crate::Pass;

/// Forms MBConv super-ops: [expand 1×1 + act] → depthwise k×k + act → [squeeze-excite] →
/// project 1×1 [+ block input]. Runs after BatchNorm folding, activation recognition,
/// epilogue fusion and SE detection, so each part is already one node. The expansion's
/// and the depthwise's activations must be ones the backend computes in the super-op.
pub struct FormMbConv {
    pub fusion: Arc<dyn Fusion + Send + Sync>,
}

struct Found {
    block: MbConv,
    input: ValueRef,
    remove: Vec<NodeId>,
}

fn match_block(g: &Graph, proj: NodeId) -> Option<Found> {
    // The projection may carry the block's residual input.
    let project = pointwise_weights(g, proj)?;
    if project.act.is_some() {
        return None;
    }
    let mut remove = vec![];
    let mut d = g.input(proj, 0)?;
    if !single_use(g, d) {
        return None;
    }
    let se = match &g.node(d.node).op {
        Op::SqueezeExcite(se) => {
            let se = (**se).clone();
            remove.push(d.node);
            d = g.input(d.node, 0)?;
            if !single_use(g, d) {
                return None;
            }
            Some(se)
        }
        _ => None,
    };
    let Op::Conv(dw) = &g.node(d.node).op else { return None };
    if !is_depthwise(g, d.node, dw) || g.input(d.node, 3).is_some() || dw.kernel.len() != 2 {
        return None;
    }
    let dw_w = g.const_value(g.input(d.node, 1)?)?.clone();
    let c_exp = *dw_w.shape().first()?;
    let dw_b = match g.input(d.node, 2) {
        Some(b) => g.const_value(b)?.clone(),
        None => Tensor::from_f32(vec![c_exp], vec![0.0; c_exp]).ok()?,
    };
    remove.push(d.node);
    let e = g.input(d.node, 0)?;
    // An expansion conv has an activation; a conv without one is the previous block's
    // projection, so this block has no expansion.
    let expand = dense_of_conv(g, e.node).filter(|x| x.act.is_some() && single_use(g, e));
    let input = match &expand {
        Some(_) => {
            remove.push(e.node);
            g.input(e.node, 0)?
        }
        None => e,
    };
    let residual = match g.input(proj, 3) {
        None => false,
        Some(r) if r == input => true,
        Some(_) => return None,
    };
    remove.push(proj);
    let block = MbConv { expand, dw: dw.clone(), dw_w, dw_b, se, project, residual };
    Some(Found { block, input, remove })
}

impl Pass for FormMbConv {
    fn name(&self) -> &'static str {
        "form-mbconv"
    }

    fn run(&self, g: &mut Graph) -> Result<usize> {
        let mut changes = 0;
        for id in nodes_in_order(g) {
            if !g.contains(id) || !matches!(g.node(id).op, Op::Conv(_)) {
                continue;
            }
            let Some(found) = match_block(g, id) else { continue };
            let b = &found.block;
            let acts = b.expand.as_ref().and_then(|e| e.act).into_iter().chain(b.dw.act);
            if !acts.into_iter().all(|u| self.fusion.can_fuse(Site::MbConv, u)) {
                continue;
            }
            let out = ValueRef::new(id, 0);
            let info = g.value(out).clone();
            let name = g.node(id).name.clone();
            let node = g.add_node(name, Op::MbConv(Box::new(found.block)), &[Some(found.input)], vec![info]);
            g.replace_uses(out, ValueRef::new(node, 0));
            for n in found.remove {
                g.remove_node(n);
            }
            changes += 1;
        }
        Ok(changes)
    }
}
