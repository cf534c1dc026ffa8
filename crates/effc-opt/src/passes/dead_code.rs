use effc_ir::{Graph, Result};

use crate::Pass;

/// Removes nodes that no model output depends on.
pub struct DeadCode;

impl Pass for DeadCode {
    fn name(&self) -> &'static str {
        "dead-code"
    }

    fn run(&self, g: &mut Graph) -> Result<usize> {
        Ok(g.prune_dead())
    }
}
