use effc_ir::op::{Op, PadMode};
use effc_ir::{Graph, Result};

use crate::Pass;

/// Folds a zero-valued constant `Pad` of the spatial dims into the padding of the Conv it
/// feeds, as TF-style "same" exports and lukemelas' EfficientNet emit before every conv.
pub struct MergePadIntoConv;

impl Pass for MergePadIntoConv {
    fn name(&self) -> &'static str {
        "merge-pad-into-conv"
    }

    fn run(&self, g: &mut Graph) -> Result<usize> {
        let mut changes = 0;
        for conv_id in g.node_ids().collect::<Vec<_>>() {
            if !matches!(g.node(conv_id).op, Op::Conv(_)) {
                continue;
            }
            let Some(padded) = g.input(conv_id, 0) else {
                continue;
            };
            let Op::Pad(pad) = &g.node(padded.node).op else {
                continue;
            };
            let zero_fill = matches!(pad.mode, PadMode::Constant(v) if v == 0.0);
            let (Some((lead_begin, begin)), Some((lead_end, end))) =
                (pad.begin.split_at_checked(2), pad.end.split_at_checked(2))
            else {
                continue;
            };
            let spatial_only = lead_begin.iter().chain(lead_end).all(|&p| p == 0);
            if !zero_fill || !spatial_only {
                continue;
            }
            let (begin, end) = (begin.to_vec(), end.to_vec());
            let Some(source) = g.input(padded.node, 0) else {
                continue;
            };
            let Op::Conv(conv) = &mut g.node_mut(conv_id).op else { continue };
            if conv.pads_begin.len() != begin.len() || conv.pads_end.len() != end.len() {
                continue;
            }
            for (p, b) in conv.pads_begin.iter_mut().zip(&begin) {
                *p += b;
            }
            for (p, e) in conv.pads_end.iter_mut().zip(&end) {
                *p += e;
            }
            g.set_input(conv_id, 0, Some(source));
            changes += 1;
        }
        Ok(changes)
    }
}
