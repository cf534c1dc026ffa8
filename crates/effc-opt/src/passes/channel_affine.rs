//! Per-output-channel affine maps after a conv, folded into its weights and bias: an
//! inference BatchNormalization, and the Mul / Add / Sub by per-channel constants that
//! exporters write BN as (tf2onnx writes every depthwise BN of a Keras model so).

use effc_ir::op::{Binary, Op};
use effc_ir::{Graph, NodeId, Result, Tensor, ValueRef};

use super::util::{absorb, nodes_in_order, remove_if_unused_const, single_use};
use crate::Pass;

/// Folds an inference BatchNormalization into the Conv before it, depthwise convs
/// included: w' = w · s per output channel, b' = (b − mean) · s + β, with s = γ/√(var+ε).
pub struct FoldBatchNorm;

/// Folds `conv · k`, `conv + k` and `conv − k`, with k a constant that is one value per
/// output channel (shape [C, 1, 1], [1, C, 1, 1], ...) or a scalar, into the conv.
pub struct FoldChannelAffine;

/// y[c] = x[c] · scale[c] + shift[c]; no scale means 1.
struct Affine {
    scale: Option<Vec<f32>>,
    shift: Vec<f32>,
}

impl Pass for FoldBatchNorm {
    fn name(&self) -> &'static str {
        "fold-batchnorm"
    }

    fn run(&self, g: &mut Graph) -> Result<usize> {
        let mut changes = 0;
        for bn in nodes_in_order(g) {
            if !g.contains(bn) {
                continue;
            }
            let Op::BatchNorm { epsilon } = g.node(bn).op else { continue };
            let Some(conv_out) = g.input(bn, 0) else { continue };
            let param = |i| g.input(bn, i).and_then(|v| g.const_value(v)).map(Tensor::to_f32_vec);
            let (Some(gamma), Some(beta), Some(mean), Some(var)) = (param(1), param(2), param(3), param(4)) else {
                continue;
            };
            let Some((scale, shift)) = effc_ir::op::batch_norm_affine(epsilon, [&gamma, &beta, &mean, &var]) else {
                continue;
            };
            if fold_into_conv(g, conv_out, Affine { scale: Some(scale), shift }, bn)? {
                changes += 1;
            }
        }
        Ok(changes)
    }
}

impl Pass for FoldChannelAffine {
    fn name(&self) -> &'static str {
        "fold-channel-affine"
    }

    fn run(&self, g: &mut Graph) -> Result<usize> {
        let mut changes = 0;
        for id in nodes_in_order(g) {
            if !g.contains(id) {
                continue;
            }
            let Op::Binary(op @ (Binary::Mul | Binary::Add | Binary::Sub)) = g.node(id).op else { continue };
            let (Some(a), Some(b)) = (g.input(id, 0), g.input(id, 1)) else { continue };
            // Mul and Add take the conv on either side; Sub only as conv − k.
            let orders: &[(ValueRef, ValueRef)] = if op == Binary::Sub { &[(a, b)] } else { &[(a, b), (b, a)] };
            for &(conv_out, k) in orders {
                let Some(k) = per_channel(g, conv_out, k, ValueRef::new(id, 0)) else { continue };
                let affine = match op {
                    Binary::Mul => Affine { shift: vec![0.0; k.len()], scale: Some(k) },
                    Binary::Add => Affine { scale: None, shift: k },
                    _ => Affine { scale: None, shift: k.iter().map(|v| -v).collect() },
                };
                if fold_into_conv(g, conv_out, affine, id)? {
                    changes += 1;
                    break;
                }
            }
        }
        Ok(changes)
    }
}

/// The per-channel values of constant `k` if `result` = conv_out ∘ k keeps the conv's
/// shape and k broadcasts along its channel dim (dim 1) only.
fn per_channel(g: &Graph, conv_out: ValueRef, k: ValueRef, result: ValueRef) -> Option<Vec<f32>> {
    if !matches!(g.node(conv_out.node).op, Op::Conv(_)) || g.value(result).shape != g.value(conv_out).shape {
        return None;
    }
    let t = g.const_value(k)?;
    if !t.dtype().is_float() {
        return None;
    }
    let out = &g.value(conv_out).shape;
    let channels = *out.get(1)?;
    let offset = out.len().checked_sub(t.shape().len())?;
    let along_channels = t.shape().iter().enumerate().all(|(i, &d)| d == 1 || (i + offset == 1 && d == channels));
    let values = t.to_f32_vec();
    match values.as_slice() {
        &[v] => Some(vec![v; channels]),
        _ if along_channels && values.len() == channels => Some(values),
        _ => None,
    }
}

/// Folds `affine`, which node `by` applies to the conv output `conv_out`, into the conv
/// (w' = w · scale per output channel, b' = b · scale + shift) and drops `by`. Returns
/// false, changing nothing, unless the conv has no activation or residual yet, constant
/// weights and bias, one value per output channel, and `conv_out` is read only by `by`.
fn fold_into_conv(g: &mut Graph, conv_out: ValueRef, affine: Affine, by: NodeId) -> Result<bool> {
    let conv = conv_out.node;
    let folds = matches!(&g.node(conv).op, Op::Conv(c) if c.act.is_none())
        && g.input(conv, 3).is_none()
        && single_use(g, conv_out);
    let Some(w_old) = g.input(conv, 1).filter(|_| folds) else { return Ok(false) };
    let Some(&m) = g.const_value(w_old).and_then(|w| w.shape().first()) else { return Ok(false) };
    let Some(per_out) = g.const_value(w_old).and_then(|w| w.numel().checked_div(m)) else { return Ok(false) };
    let bias = match g.input(conv, 2) {
        Some(b) => match g.const_value(b) {
            Some(t) => t.to_f32_vec(),
            None => return Ok(false),
        },
        None => vec![0.0; m],
    };
    // Shape inference gave every parameter m values; a file that lies is left alone.
    if affine.shift.len() != m || bias.len() != m || affine.scale.as_ref().is_some_and(|s| s.len() != m) {
        return Ok(false);
    }
    let new_b: Vec<f32> = match &affine.scale {
        Some(scale) => bias.iter().zip(scale).zip(&affine.shift).map(|((b, s), t)| b * s + t).collect(),
        None => bias.iter().zip(&affine.shift).map(|(b, t)| b + t).collect(),
    };
    let name = g.node(conv).name.clone();
    if let Some(scale) = &affine.scale {
        // Scale the weights in place when this conv alone holds them (no second copy of
        // the model's weights while the pass runs), else into a new constant.
        let in_place = single_use(g, w_old)
            && match &mut g.node_mut(w_old.node).op {
                Op::Const(t) => t.f32_mut().map(|v| scale_rows(v, scale, per_out)).is_some(),
                _ => false,
            };
        if !in_place && let Some(t) = g.const_value(w_old) {
            let mut new_w = t.to_f32_vec();
            scale_rows(&mut new_w, scale, per_out);
            let t = Tensor::from_f32(t.shape().to_vec(), new_w)?;
            let w_new = g.add_const(format!("{name}::w_folded"), t);
            g.set_input(conv, 1, Some(w_new));
            remove_if_unused_const(g, w_old);
        }
    }
    let b_new = g.add_const(format!("{name}::b_folded"), Tensor::from_f32(vec![m], new_b)?);
    let b_old = g.input(conv, 2);
    g.set_input(conv, 2, Some(b_new));
    if let Some(b_old) = b_old {
        remove_if_unused_const(g, b_old);
    }
    absorb(g, conv_out, ValueRef::new(by, 0));
    Ok(true)
}

/// Multiplies each output channel's `per_out` weights by its scale.
fn scale_rows(w: &mut [f32], scale: &[f32], per_out: usize) {
    for (row, &s) in w.chunks_exact_mut(per_out).zip(scale) {
        row.iter_mut().for_each(|x| *x *= s);
    }
}
