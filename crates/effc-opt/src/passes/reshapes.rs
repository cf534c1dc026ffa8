use effc_ir::op::Op;
use effc_ir::{Graph, Result, ValueRef};

use super::util::nodes_in_order;
use crate::Pass;

/// Collapses chains of shape changes (Reshape, Flatten, Squeeze and Unsqueeze are all
/// `Reshape` in the IR): a Reshape of a Reshape reads the first one's input, and a Reshape
/// back to its input's shape disappears. tf2onnx writes Keras' squeeze-excite as
/// GlobalAveragePool → Squeeze → Reshape [N, C, 1, 1] → Conv, which is then the same as
/// torchvision's GlobalAveragePool → Conv.
pub struct CollapseReshapes;

impl Pass for CollapseReshapes {
    fn name(&self) -> &'static str {
        "collapse-reshapes"
    }

    fn run(&self, g: &mut Graph) -> Result<usize> {
        let mut changes = 0;
        for id in nodes_in_order(g) {
            if !g.contains(id) || !matches!(g.node(id).op, Op::Reshape { .. }) {
                continue;
            }
            let Some(x) = g.input(id, 0) else { continue };
            if matches!(g.node(x.node).op, Op::Reshape { .. })
                && let Some(source) = g.input(x.node, 0)
            {
                // The data's order never changes, so only the last shape matters.
                g.set_input(id, 0, Some(source));
                changes += 1;
                continue;
            }
            let out = ValueRef::new(id, 0);
            if g.value(out).shape == g.value(x).shape && !g.is_output(out) {
                g.replace_uses(out, x);
                g.remove_node(id);
                changes += 1;
            }
        }
        Ok(changes)
    }
}
