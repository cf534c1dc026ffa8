use effc_ir::op::{Binary, Op, Unary};
use effc_ir::{Graph, NodeId, Result, ValueRef};

use super::util::{nodes_in_order, single_use, snap_levels};
use crate::Pass;

/// Recognises activations spelled as several ops:
/// - Sigmoid(x) · x, in either operand order → Swish(x);
/// - HardSigmoid(α = 1/6, β = ½)(x) · x → HardSwish(x);
/// - ½ · x · (1 + Erf(x/√2)), the products in any order and grouping, x/√2 as a Div or a
///   Mul → Gelu(x) (how exporters wrote GELU before opset 20).
///
/// - relu6(x + 3) / 6, the division as a Div by 6 or a Mul by 1/6 → HardSigmoid(1/6, ½)(x),
///   and x · relu6(x + 3) / 6 → HardSwish(x) (PyTorch's decomposed spellings; the
///   product before or after the division).
///
/// In QDQ models (every step re-quantized), with snaps standing for QuantizeLinear →
/// DequantizeLinear pairs:
/// - snap(a · snap(Sigmoid(a))) with a = snap(x) → QuantizedSwish(x);
/// - snap(Sigmoid(snap(x))) → QuantizedSigmoid(x) (the squeeze-excite gate).
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
            if !g.contains(id) {
                continue;
            }
            if let Some((x, act)) = sixth_of_relu6(g, id) {
                g.node_mut(id).op = Op::Unary(act);
                g.set_input(id, 1, None);
                g.set_input(id, 0, Some(x));
                changes += 1;
                continue;
            }
            if let Some((x, act, parts)) = quantized_activation(g, id) {
                g.node_mut(id).op = Op::Unary(act);
                g.set_input(id, 0, Some(x));
                for p in parts {
                    g.remove_node(p);
                }
                changes += 1;
                continue;
            }
            if g.node(id).op != Op::Binary(Binary::Mul) {
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
            if let Some(x) = erf_gelu(g, id) {
                g.node_mut(id).op = Op::Unary(Unary::Gelu { tanh: false });
                g.set_input(id, 1, None);
                g.set_input(id, 0, Some(x));
                changes += 1;
                continue;
            }
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

/// If the snap `id` ends a QDQ swish or sigmoid: its input x, the activation, and the
/// nodes it replaces.
fn quantized_activation(g: &Graph, id: NodeId) -> Option<(ValueRef, Unary, Vec<NodeId>)> {
    let output = snap_levels(g, id)?;
    let inner = g.input(id, 0)?;
    if !single_use(g, inner) {
        return None;
    }
    match g.node(inner.node).op {
        // snap(Sigmoid(a)), a = snap(x) read only here.
        Op::Unary(Unary::Sigmoid) => {
            let a = g.input(inner.node, 0)?;
            let input = snap_levels(g, a.node).filter(|_| single_use(g, a))?;
            Some((g.input(a.node, 0)?, Unary::QuantizedSigmoid { input, output }, vec![inner.node, a.node]))
        }
        // snap(a · snap(Sigmoid(a))), a = snap(x).
        Op::Binary(Binary::Mul) => {
            let (p, q) = (g.input(inner.node, 0)?, g.input(inner.node, 1)?);
            let (a, gate) = [(p, q), (q, p)].into_iter().find(|&(a, gate)| {
                single_use(g, gate)
                    && snap_levels(g, gate.node).is_some()
                    && g.input(gate.node, 0).is_some_and(|s| {
                        single_use(g, s)
                            && g.node(s.node).op == Op::Unary(Unary::Sigmoid)
                            && g.input(s.node, 0) == Some(a)
                    })
            })?;
            let input = snap_levels(g, a.node)?;
            let gate_levels = snap_levels(g, gate.node)?;
            let sigmoid = g.input(gate.node, 0)?.node;
            let mut parts = vec![inner.node, gate.node, sigmoid];
            // a is read by the Sigmoid and the Mul; if nothing else reads it, it goes too.
            let x = if g.users(a).len() == 2 && !g.is_output(a) {
                parts.push(a.node);
                g.input(a.node, 0)?
            } else {
                a
            };
            Some((x, Unary::QuantizedSwish { input, gate: gate_levels, output }, parts))
        }
        _ => None,
    }
}

/// If `v` is relu6(x + 3) (a Clip(0, 6) of x + 3, each used only here), returns x.
fn relu6_plus_3(g: &Graph, v: ValueRef) -> Option<ValueRef> {
    let Op::Unary(Unary::Clip { min, max }) = g.node(v.node).op else { return None };
    if min != 0.0 || max != 6.0 || !single_use(g, v) {
        return None;
    }
    let sum = g.input(v.node, 0)?;
    if g.node(sum.node).op != Op::Binary(Binary::Add) || !single_use(g, sum) {
        return None;
    }
    let (a, b) = (g.input(sum.node, 0)?, g.input(sum.node, 1)?);
    [(a, b), (b, a)].into_iter().find(|&(_, c)| scalar(g, c).is_some_and(|c| c == 3.0)).map(|(x, _)| x)
}

/// If node `id` divides by 6 (a Div by 6 or a Mul by 1/6) relu6(x + 3), or x · relu6(x + 3),
/// returns x and the activation it computes: HardSigmoid(1/6, ½) or HardSwish.
fn sixth_of_relu6(g: &Graph, id: NodeId) -> Option<(ValueRef, Unary)> {
    let (a, b) = (g.input(id, 0)?, g.input(id, 1)?);
    let divided = match g.node(id).op {
        Op::Binary(Binary::Div) => scalar(g, b).is_some_and(|d| d == 6.0).then_some(a),
        Op::Binary(Binary::Mul) => [(a, b), (b, a)]
            .into_iter()
            .find(|&(_, c)| scalar(g, c).is_some_and(|c| near(c, 1.0 / 6.0)))
            .map(|(v, _)| v),
        _ => None,
    }?;
    if let Some(x) = relu6_plus_3(g, divided) {
        return Some((x, Unary::HardSigmoid { alpha: 1.0 / 6.0, beta: 0.5 }));
    }
    // x · relu6(x + 3), then divided.
    if g.node(divided.node).op != Op::Binary(Binary::Mul) || !single_use(g, divided) {
        return None;
    }
    let (p, q) = (g.input(divided.node, 0)?, g.input(divided.node, 1)?);
    [(p, q), (q, p)].into_iter().find(|&(x, r)| relu6_plus_3(g, r) == Some(x)).map(|(x, _)| (x, Unary::HardSwish))
}

/// The one element of a constant with a single element.
fn scalar(g: &Graph, v: ValueRef) -> Option<f64> {
    g.const_value(v).and_then(|t| t.scalar_value().ok())
}

fn near(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * b.abs()
}

/// The leaves of the product tree under `v`: `v` itself, or the factors of a Mul used only
/// in this product (at most `depth` levels down).
fn product_leaves(g: &Graph, v: ValueRef, is_root: bool, depth: usize, out: &mut Vec<ValueRef>) {
    let inner = g.node(v.node).op == Op::Binary(Binary::Mul) && (is_root || single_use(g, v)) && depth > 0;
    match (inner, g.input(v.node, 0), g.input(v.node, 1)) {
        (true, Some(a), Some(b)) => {
            product_leaves(g, a, false, depth - 1, out);
            product_leaves(g, b, false, depth - 1, out);
        }
        _ => out.push(v),
    }
}

/// If `x · c` or `x / d` (used once) scales x by 1/√2, returns x.
fn over_sqrt2(g: &Graph, v: ValueRef) -> Option<ValueRef> {
    if !single_use(g, v) {
        return None;
    }
    let (a, b) = (g.input(v.node, 0)?, g.input(v.node, 1)?);
    match g.node(v.node).op {
        Op::Binary(Binary::Div) => scalar(g, b).filter(|&d| near(d, std::f64::consts::SQRT_2)).map(|_| a),
        Op::Binary(Binary::Mul) => [(a, b), (b, a)]
            .into_iter()
            .find(|&(_, c)| scalar(g, c).is_some_and(|c| near(c, std::f64::consts::FRAC_1_SQRT_2)))
            .map(|(x, _)| x),
        _ => None,
    }
}

/// If `v` is 1 + Erf(x/√2) (each part used once), returns x.
fn one_plus_erf(g: &Graph, v: ValueRef) -> Option<ValueRef> {
    if !single_use(g, v) || g.node(v.node).op != Op::Binary(Binary::Add) {
        return None;
    }
    let (a, b) = (g.input(v.node, 0)?, g.input(v.node, 1)?);
    let (e, _) = [(a, b), (b, a)].into_iter().find(|&(_, one)| scalar(g, one).is_some_and(|c| near(c, 1.0)))?;
    if !single_use(g, e) || g.node(e.node).op != Op::Unary(Unary::Erf) {
        return None;
    }
    over_sqrt2(g, g.input(e.node, 0)?)
}

/// If the product at `mul` is ½ · x · (1 + Erf(x/√2)) with x of the product's shape,
/// returns x.
fn erf_gelu(g: &Graph, mul: NodeId) -> Option<ValueRef> {
    let root = ValueRef::new(mul, 0);
    let mut leaves = Vec::new();
    product_leaves(g, root, true, 3, &mut leaves);
    let (constants, values): (Vec<ValueRef>, Vec<ValueRef>) = leaves.into_iter().partition(|&v| scalar(g, v).is_some());
    let product: f64 = constants.iter().filter_map(|&c| scalar(g, c)).product();
    let &[a, b] = values.as_slice() else { return None };
    if !near(product, 0.5) {
        return None;
    }
    let x = [(a, b), (b, a)].into_iter().find_map(|(x, gate)| (one_plus_erf(g, gate) == Some(x)).then_some(x))?;
    (g.value(x).shape == g.value(root).shape && g.value(x).dtype.is_float()).then_some(x)
}
