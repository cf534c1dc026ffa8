use effc_ir::op::Op;
use effc_ir::{Graph, Result, Tensor, ValueRef};

use super::util::{nodes_in_order, remove_if_unused_const, single_use};
use crate::Pass;

/// Folds an inference BatchNormalization into the Conv before it, depthwise convs
/// included: w' = w · s per output channel, b' = (b − mean) · s + β, with s = γ/√(var+ε).
pub struct FoldBatchNorm;

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
            let conv = conv_out.node;
            let folds = matches!(&g.node(conv).op, Op::Conv(c) if c.act.is_none())
                && g.input(conv, 3).is_none()
                && single_use(g, conv_out);
            if !folds {
                continue;
            }
            let param = |i| g.input(bn, i).and_then(|v| g.const_value(v)).map(Tensor::to_f32_vec);
            let (Some(gamma), Some(beta), Some(mean), Some(var)) = (param(1), param(2), param(3), param(4)) else {
                continue;
            };
            let Some(w_old) = g.input(conv, 1) else { continue };
            let Some(&m) = g.const_value(w_old).and_then(|w| w.shape().first()) else { continue };
            let Some(per_out) = g.const_value(w_old).and_then(|w| w.numel().checked_div(m)) else { continue };
            let bias = match g.input(conv, 2) {
                Some(b) => match g.const_value(b) {
                    Some(t) => t.to_f32_vec(),
                    None => continue,
                },
                None => vec![0.0; m],
            };
            // Shape inference gave every parameter m values; a file that lies is left alone.
            if [&gamma, &beta, &mean, &var, &bias].iter().any(|p| p.len() != m) {
                continue;
            }
            let scale: Vec<f32> = gamma.iter().zip(&var).map(|(g, v)| g / (v + epsilon).sqrt()).collect();
            let new_b: Vec<f32> =
                bias.iter().zip(&mean).zip(&scale).zip(&beta).map(|(((b, mu), s), be)| (b - mu) * s + be).collect();
            let name = g.node(conv).name.clone();
            // Scale the weights in place when this conv alone holds them (no second copy
            // of the model's weights while the pass runs), else into a new constant.
            let in_place = single_use(g, w_old)
                && match &mut g.node_mut(w_old.node).op {
                    Op::Const(t) => t.f32_mut().map(|v| scale_rows(v, &scale, per_out)).is_some(),
                    _ => false,
                };
            if !in_place && let Some(t) = g.const_value(w_old) {
                let mut t = t.clone();
                let mut new_w = t.to_f32_vec();
                scale_rows(&mut new_w, &scale, per_out);
                t = Tensor::from_f32(t.shape().to_vec(), new_w)?;
                let w_new = g.add_const(format!("{name}::w_bn"), t);
                g.set_input(conv, 1, Some(w_new));
                remove_if_unused_const(g, w_old);
            }
            let b_new = g.add_const(format!("{name}::b_bn"), Tensor::from_f32(vec![m], new_b)?);
            let b_old = g.input(conv, 2);
            g.set_input(conv, 2, Some(b_new));
            if let Some(b_old) = b_old {
                remove_if_unused_const(g, b_old);
            }
            // The conv now produces what the BN produced, under the BN's name.
            let bn_out = ValueRef::new(bn, 0);
            g.value_mut(conv_out).name = g.value(bn_out).name.clone();
            g.replace_uses(bn_out, conv_out);
            g.remove_node(bn);
            changes += 1;
        }
        Ok(changes)
    }
}

/// Multiplies each output channel's `per_out` weights by its scale.
fn scale_rows(w: &mut [f32], scale: &[f32], per_out: usize) {
    for (row, &s) in w.chunks_exact_mut(per_out).zip(scale) {
        row.iter_mut().for_each(|x| *x *= s);
    }
}
