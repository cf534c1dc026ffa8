use std::sync::Arc;

use effc_ir::fusion::{Fusion, Site};
use effc_ir::op::{Conv, FusedMbConv, MbConv, Op, StartDepthwise};
use effc_ir::{Graph, NodeId, Result, ValueRef};

use super::squeeze_excite::{conv_params, dense_of_conv, is_depthwise, pointwise_weights};
use super::util::{nodes_in_order, single_use};
use crate::Pass;

/// Forms MBConv super-ops: [expand 1×1 + act] → depthwise k×k + act → [squeeze-excite] →
/// project 1×1 [+ block input]; and Fused-MBConv super-ops: dense k×k expansion + act →
/// project 1×1 [+ block input]. Runs after BatchNorm folding, activation recognition,
/// epilogue fusion and SE detection, so each part is already one node. The expansion's
/// and the depthwise's activations must be ones the backend computes in the super-op.
pub struct FormMbConv {
    pub fusion: Arc<dyn Fusion + Send + Sync>,
}

struct Found {
    block: Block,
    input: ValueRef,
    remove: Vec<NodeId>,
}

/// The super-op a projection closes.
enum Block {
    Mb(Box<MbConv>),
    Fused(Box<FusedMbConv>),
}

impl Block {
    /// The activations computed inside the super-op.
    fn inner_activations(&self) -> Vec<effc_ir::op::Unary> {
        match self {
            Block::Mb(b) => {
                let start = b.start.as_ref().and_then(|s| s.conv.act);
                let expand = b.expand.as_ref().and_then(|e| e.act);
                start.into_iter().chain(expand).chain(b.dw.act).chain(b.project.act).collect()
            }
            Block::Fused(b) => {
                let start = b.start.as_ref().and_then(|s| s.conv.act);
                start.into_iter().chain(b.expand.act).chain(b.project.act).collect()
            }
        }
    }

    fn into_op(self) -> Op {
        match self {
            Block::Mb(b) => Op::MbConv(b),
            Block::Fused(b) => Op::FusedMbConv(b),
        }
    }
}

/// Why a conv did not become part of an MBConv: the first rule of [`match_block`] that
/// failed, as `effc compile` prints it.
type Refusal = &'static str;

fn match_block(g: &Graph, proj: NodeId) -> std::result::Result<Found, Refusal> {
    // The projection may carry the block's residual input.
    let project = pointwise_weights(g, proj).ok_or("not a 1×1, stride-1, unpadded conv with constant weights")?;
    let mut remove = vec![];
    let mut d = g.input(proj, 0).ok_or("no input")?;
    if !single_use(g, d) {
        return Err("its input has other users");
    }
    if project.act.is_some() {
        // An activated 1×1 conv closes a block where it is not the expansion of the next
        // one: after a dense k×k conv a Fused-MBConv (MobileNetV4's conv pairs), after a
        // depthwise conv (and its squeeze-excite) a depthwise-separable block (MobileNetV1,
        // LCNet).
        if expands_mbconv(g, ValueRef::new(proj, 0)) {
            return Err("it expands the next block (an activated depthwise conv that a projection reads)");
        }
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
        if se.is_some() {
            return Err("its squeeze-excite reads a dense conv (a Fused-MBConv with squeeze-excite is not fused yet)");
        }
        return match_fused(g, proj, project, (d.node, dw), remove);
    }
    if g.input(d.node, 3).is_some() {
        return Err("the depthwise conv adds a residual");
    }
    if dw.kernel.len() != 2 {
        return Err("the depthwise conv is not 2-D");
    }
    let (dw_w, dw_b) = conv_params(g, d.node).ok_or("the depthwise weights or bias are not constant")?;
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
    // A UIB block's leading depthwise conv goes in with its expansion.
    let (start, input) = match expand {
        Some(_) => leading_depthwise(g, proj, input, &mut remove),
        None => (None, input),
    };
    let residual = adds_block_input(g, proj, input)?;
    remove.push(proj);
    let block = MbConv { start, expand, dw: dw.clone(), dw_w, dw_b, se, project, residual };
    Ok(Found { block: Block::Mb(Box::new(block)), input, remove })
}

/// Whether `v` is the expansion output of a block that follows: its one reader is a
/// projection (a 1×1 conv without an activation: an FFN or ConvNext-like block), or an
/// activated depthwise conv followed (through its squeeze-excite, if any) by a projection
/// (an MBConv).
fn expands_mbconv(g: &Graph, v: ValueRef) -> bool {
    let one_reader = |v: ValueRef| match g.users(v).as_slice() {
        &[(u, _)] => Some(u),
        _ => None,
    };
    let projection = |p: NodeId| match &g.node(p).op {
        Op::Conv(_) => pointwise_weights(g, p).is_some_and(|d| d.act.is_none()),
        _ => false,
    };
    let Some(next) = one_reader(v) else { return false };
    if projection(next) {
        return true;
    }
    if !matches!(&g.node(next).op, Op::Conv(c) if c.act.is_some() && is_depthwise(g, next, c)) {
        return false;
    }
    // Past the depthwise conv and its squeeze-excite, if any, a projection.
    let Some(mut after) = one_reader(ValueRef::new(next, 0)) else { return false };
    if matches!(g.node(after).op, Op::SqueezeExcite(_)) {
        let Some(p) = one_reader(ValueRef::new(after, 0)) else { return false };
        after = p;
    }
    projection(after)
}

/// The rest of [`match_block`] when the projection reads a conv that is not depthwise: a
/// Fused-MBConv if that conv is a dense, activated, 2-D conv with constant weights.
fn match_fused(
    g: &Graph,
    proj: NodeId,
    project: effc_ir::op::Dense,
    (exp, conv): (NodeId, &Conv),
    mut remove: Vec<NodeId>,
) -> std::result::Result<Found, Refusal> {
    // A conv without an activation is the previous block's projection (or a linear conv).
    if conv.act.is_none() || conv.group != 1 {
        return Err("the conv before it is neither depthwise nor a dense conv with an activation");
    }
    if conv.kernel.len() != 2 {
        return Err("the expansion conv is not 2-D");
    }
    if g.input(exp, 3).is_some() {
        return Err("the expansion conv adds a residual");
    }
    let (expand_w, expand_b) = conv_params(g, exp).ok_or("the expansion weights or bias are not constant")?;
    let input = g.input(exp, 0).ok_or("the expansion conv has no input")?;
    // A 1×1 expansion may follow a UIB block's leading depthwise conv (ConvNext-like form).
    let (start, input) = if conv.kernel.iter().all(|&k| k == 1) {
        leading_depthwise(g, proj, input, &mut remove)
    } else {
        (None, input)
    };
    // Two 1×1 convs on one pixel per sample are a squeeze-excite's FC layers, which the
    // squeeze-excite it belongs to takes once its spelling is normalised.
    if g.value(input).shape.get(2..).is_some_and(|s| s.iter().product::<usize>() <= 1) {
        return Err("the expansion reads a single pixel (a squeeze-excite's FC layers)");
    }
    let residual = adds_block_input(g, proj, input)?;
    remove.extend([exp, proj]);
    let block = FusedMbConv { start, expand: conv.clone(), expand_w, expand_b, project, residual };
    Ok(Found { block: Block::Fused(Box::new(block)), input, remove })
}

/// Whether projection `proj` adds the block's input (the residual), which is the only
/// value a block may add.
fn adds_block_input(g: &Graph, proj: NodeId, input: ValueRef) -> std::result::Result<bool, Refusal> {
    match g.input(proj, 3) {
        None => Ok(false),
        Some(r) if r == input => Ok(true),
        Some(_) => Err("it adds a residual that is not the block's input"),
    }
}

/// The depthwise conv that computes `input`, if the block closed by `proj` takes it as its
/// leading depthwise (MobileNetV4's UIB): `input` has no other reader, the conv has
/// constant weights and no residual of its own, and the block's residual (if any) is the
/// conv's input. Returns the start and the block's new input; the conv joins `remove`.
fn leading_depthwise(
    g: &Graph,
    proj: NodeId,
    input: ValueRef,
    remove: &mut Vec<NodeId>,
) -> (Option<StartDepthwise>, ValueRef) {
    let found = (|| {
        let Op::Conv(c) = &g.node(input.node).op else { return None };
        if !single_use(g, input) || !is_depthwise(g, input.node, c) || c.kernel.len() != 2 {
            return None;
        }
        if g.input(input.node, 3).is_some() {
            return None;
        }
        let start_input = g.input(input.node, 0)?;
        if g.input(proj, 3).is_some_and(|r| r != start_input) {
            return None;
        }
        let (w, b) = conv_params(g, input.node)?;
        Some((StartDepthwise { conv: c.clone(), w, b }, start_input))
    })();
    match found {
        Some((start, start_input)) => {
            remove.push(input.node);
            (Some(start), start_input)
        }
        None => (None, input),
    }
}

/// A conv left outside every super-op, and the first rule that kept it out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unfused {
    /// The conv's node name.
    pub node: String,
    pub reason: String,
}

/// For every conv of an optimised graph that is not inside a super-op: why. A 1×1 conv is
/// asked as a projection; a depthwise conv, or an activated conv that could expand a block
/// (1×1 before a depthwise, dense k×k before a projection), through the conv that reads
/// it; a dense conv without an activation is no part of any super-op.
pub fn explain_unfused(g: &Graph, fusion: &dyn Fusion) -> Vec<Unfused> {
    let mut out = Vec::new();
    for id in nodes_in_order(g) {
        let Op::Conv(c) = &g.node(id).op else { continue };
        let pointwise = pointwise_weights(g, id).is_some();
        let role = match (pointwise, is_depthwise(g, id, c)) {
            (true, _) if c.act.is_none() => None,
            (true, _) => Some(("expansion", "1×1 expansion")),
            (false, true) => Some(("depthwise", "depthwise")),
            (false, false) if c.act.is_some() => Some(("expansion", "dense k×k")),
            (false, false) => {
                out.push(Unfused {
                    node: g.node(id).name.clone(),
                    reason: "a dense k×k conv without an activation, which no super-op takes".into(),
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

/// Whether the backend computes the block's inner activations fused.
fn fusable(b: &Block, fusion: &dyn Fusion) -> bool {
    b.inner_activations().into_iter().all(|u| fusion.can_fuse(Site::MbConv, u))
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
            let node = g.add_node(name, found.block.into_op(), &[Some(found.input)], vec![info]);
            g.replace_uses(out, ValueRef::new(node, 0));
            for n in found.remove {
                g.remove_node(n);
            }
            changes += 1;
        }
        Ok(changes)
    }
}
