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

/// Why a conv did not become part of an MBConv: the first rule of [`match_block`] that
/// failed, as `effc compile` prints it.
type Refusal = &'static str;

fn match_block(g: &Graph, proj: NodeId) -> std::result::Result<Found, Refusal> {
    // The projection may carry the block's residual input.
    let project = pointwise_weights(g, proj).ok_or("not a 1×1, stride-1, unpadded conv with constant weights")?;
    if project.act.is_some() {
        return Err("a projection has no activation, this conv has one");
    }
    let mut remove = vec![];
    let mut d = g.input(proj, 0).ok_or("no input")?;
    if !single_use(g, d) {
        return Err("its input has other users");
    }
    let se = match &g.node(d.node).op {
        Op::SqueezeExcite(se) => {
            let se = (**se).clone();
            remove.push(d.node);
            d = g.input(d.node, 0).ok_or("the squeeze-excite has no input")?;
            if !single_use(g, d) {
                return Err("the squeeze-excite's input has other users");
            }
            Some(se)
        }
        _ => None,
    };
    let Op::Conv(dw) = &g.node(d.node).op else {
        return Err("its input is neither a depthwise conv nor a squeeze-excite over one");
    };
    if !is_depthwise(g, d.node, dw) {
        return Err("the conv before it is not depthwise");
    }
    if g.input(d.node, 3).is_some() {
        return Err("the depthwise conv adds a residual");
    }
    if dw.kernel.len() != 2 {
        return Err("the depthwise conv is not 2-D");
    }
    let dw_w =
        g.input(d.node, 1).and_then(|w| g.const_value(w)).ok_or("the depthwise weights are not constant")?.clone();
    let c_exp = *dw_w.shape().first().ok_or("the depthwise weights have no shape")?;
    let dw_b = match g.input(d.node, 2) {
        Some(b) => g.const_value(b).ok_or("the depthwise bias is not constant")?.clone(),
        None => Tensor::from_f32(vec![c_exp], vec![0.0; c_exp]).map_err(|_| "the depthwise bias")?,
    };
    remove.push(d.node);
    let e = g.input(d.node, 0).ok_or("the depthwise conv has no input")?;
    // An expansion conv has an activation; a conv without one is the previous block's
    // projection, so this block has no expansion.
    let expand = dense_of_conv(g, e.node).filter(|x| x.act.is_some() && single_use(g, e));
    let input = match &expand {
        Some(_) => {
            remove.push(e.node);
            g.input(e.node, 0).ok_or("the expansion has no input")?
        }
        None => e,
    };
    let residual = match g.input(proj, 3) {
        None => false,
        Some(r) if r == input => true,
        Some(_) => return Err("it adds a residual that is not the block's input"),
    };
    remove.push(proj);
    let block = MbConv { expand, dw: dw.clone(), dw_w, dw_b, se, project, residual };
    Ok(Found { block, input, remove })
}

/// A conv left outside every super-op, and the first rule that kept it out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unfused {
    /// The conv's node name.
    pub node: String,
    pub reason: String,
}

/// For every conv of an optimised graph that is not inside a super-op: why. A 1×1 conv is
/// asked as a projection; a depthwise conv (and an expansion before one) through the
/// conv that reads it; any other conv is a dense k×k conv, which no super-op takes yet.
pub fn explain_unfused(g: &Graph, fusion: &dyn Fusion) -> Vec<Unfused> {
    let mut out = Vec::new();
    for id in nodes_in_order(g) {
        let Op::Conv(c) = &g.node(id).op else { continue };
        let pointwise = pointwise_weights(g, id).is_some();
        let role = match (pointwise, is_depthwise(g, id, c)) {
            (true, _) if c.act.is_none() => None,
            (true, _) => Some(("expansion", "1×1 expansion")),
            (false, true) => Some(("depthwise", "depthwise")),
            (false, false) => {
                out.push(Unfused {
                    node: g.node(id).name.clone(),
                    reason: "a dense k×k conv, which no super-op takes".into(),
                });
                continue;
            }
        };
        let reason = match role.map(|r| (r, next_conv(g, ValueRef::new(id, 0)))) {
            None => why_not_projection(g, id, fusion),
            Some(((part, _), Ok(next))) => format!(
                "as the {part} of the block projected by '{}': {}",
                g.node(next).name,
                why_not_projection(g, next, fusion)
            ),
            Some(((_, kind), Err(why))) => format!("as a {kind} conv: {why}"),
        };
        out.push(Unfused { node: g.node(id).name.clone(), reason });
    }
    out
}

/// The conv that reads `v` (through a squeeze-excite or a depthwise conv), if `v` has one
/// reader that leads to a 1×1 conv.
fn next_conv(g: &Graph, v: ValueRef) -> std::result::Result<NodeId, String> {
    let users = g.users(v);
    let &[(user, _)] = users.as_slice() else {
        return Err(format!("its output has {} users", users.len()));
    };
    match &g.node(user).op {
        Op::SqueezeExcite(_) => next_conv(g, ValueRef::new(user, 0)),
        Op::Conv(c) if is_depthwise(g, user, c) => next_conv(g, ValueRef::new(user, 0)),
        Op::Conv(_) if pointwise_weights(g, user).is_some() => Ok(user),
        op => Err(format!("its output feeds {} '{}', not a projection", op.name(), g.node(user).name)),
    }
}

fn why_not_projection(g: &Graph, proj: NodeId, fusion: &dyn Fusion) -> String {
    match match_block(g, proj) {
        Err(why) => why.to_string(),
        Ok(found) if !fusable(&found.block, fusion) => "the backend cannot fuse its activations".to_string(),
        Ok(_) => "it matches, but was not fused (an earlier block holds one of its parts)".to_string(),
    }
}

/// Whether the backend computes the expansion's and the depthwise's activations fused.
fn fusable(b: &MbConv, fusion: &dyn Fusion) -> bool {
    let acts = b.expand.as_ref().and_then(|e| e.act).into_iter().chain(b.dw.act);
    acts.into_iter().all(|u| fusion.can_fuse(Site::MbConv, u))
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
            let Ok(found) = match_block(g, id) else { continue };
            if !fusable(&found.block, self.fusion.as_ref()) {
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
