use effc_ir::op::{Binary, Op, Unary};
use effc_ir::{Graph, NodeId, Result, ValueRef};

use super::util::{nodes_in_order, single_use};
use crate::Pass;

/// Recognises activations spelled as several ops:
/// - Sigmoid(x) · x, in either operand order → Swish(x);
/// - HardSigmoid(α = 1/6, β = ½)(x) · x → HardSwish(x).
///
/// Relu6 needs no rewrite: Clip(0, 6) already imports as one Clip op, whether its bounds
/// were attributes or inputs.
pub struct RecognizeActivations;

/// If `mul` is x · f(x) with f's output used only there, returns (x, f's node).
fn gated_product(g: &Graph, mul: NodeId, gate: impl Fn(&Unary) -> bool) -> Option<(ValueRef, NodeId)> {
    let (a, b) = (g.input(mul, 0)?, g.input(mul, 1)?);
    for (x, s) in [(a, b), (b, a)] {
        if let Op::Unary(u) = &g.node(s.node).op
            && gate(u)
            && g.input(s.node, 0) == Some(x)
            && single_use(g, s)
        {
            return Some((x, s.node));
        }
    }
    None
}

impl Pass for RecognizeActivations {
    fn name(&self) -> &'static str {
        "recognize-activations"
    }

    fn run(&self, g: &mut Graph) -> Result<usize> {
        let mut changes = 0;
        for id in nodes_in_order(g) {
            if !g.contains(id) || g.node(id).op != Op::Binary(Binary::Mul) {
                continue;
            }
            let swish = gated_product(g, id, |u| *u == Unary::Sigmoid).map(|m| (m, Unary::Swish));
            let hard = || {
                gated_product(g, id, |u| {
                    matches!(u, Unary::HardSigmoid { alpha, beta }
                        if (*alpha - 1.0 / 6.0).abs() < 1e-6 && (*beta - 0.5).abs() < 1e-6)
                })
                .map(|m| (m, Unary::HardSwish))
            };
            let Some(((x, gate), act)) = swish.or_else(hard) else { continue };
            g.node_mut(id).op = Op::Unary(act);
            g.set_input(id, 1, None);
            g.set_input(id, 0, Some(x));
            g.remove_node(gate);
            changes += 1;
        }
        Ok(changes)
    }
}
