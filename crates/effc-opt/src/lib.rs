//! Graph passes over effc's IR.
//!
//! A pass is a named rewrite that reports how many changes it made. [`optimize`] runs a
//! pipeline of passes repeatedly until none changes anything (a fixed point), and returns
//! what each pass did so `effc compile --print-passes` can show it.

#![forbid(unsafe_code)]
// Passes run on graphs derived from untrusted files: what does not match is left alone
// or reported, never a panic.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::unreachable, clippy::indexing_slicing)]

mod passes;

use std::sync::Arc;

use effc_ir::fusion::Fusion;
use effc_ir::{Graph, Result};

pub use passes::{
    CollapseReshapes, DeadCode, DetectSqueezeExcite, FoldBatchNorm, FoldChannelAffine, FoldQuantizePairs, FormMbConv,
    FuseConvEpilogue, MergePadIntoConv, MergeSplitConvs, RecognizeActivations, Unfused, explain_unfused,
};

/// One graph rewrite.
pub trait Pass {
    /// Short kebab-case name, as printed by `--print-passes`.
    fn name(&self) -> &'static str;
    /// Applies the rewrite everywhere it matches; returns the number of changes.
    fn run(&self, g: &mut Graph) -> Result<usize>;
}

/// What one pass changed over the whole run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassReport {
    pub name: &'static str,
    pub changes: usize,
}

/// Which passes to run.
#[derive(Clone)]
pub struct PassOptions {
    /// Fusion passes (off with `--no-fuse`). Cleanup passes always run.
    pub fuse: bool,
    /// The backend's answer to what can be fused where.
    pub fusion: Arc<dyn Fusion + Send + Sync>,
}

/// The standard pipeline, in order.
pub fn pipeline(opts: &PassOptions) -> Vec<Box<dyn Pass>> {
    let mut passes: Vec<Box<dyn Pass>> =
        vec![Box::new(FoldQuantizePairs), Box::new(MergePadIntoConv), Box::new(CollapseReshapes)];
    if opts.fuse {
        passes.push(Box::new(MergeSplitConvs));
        passes.push(Box::new(FoldBatchNorm));
        // Before constant affine maps fold into convs: relu6(x + 3) / 6 would lose its + 3.
        passes.push(Box::new(RecognizeActivations));
        passes.push(Box::new(FoldChannelAffine));
        passes.push(Box::new(FuseConvEpilogue { fusion: opts.fusion.clone() }));
        passes.push(Box::new(DetectSqueezeExcite { fusion: opts.fusion.clone() }));
        passes.push(Box::new(FormMbConv { fusion: opts.fusion.clone() }));
    }
    passes.push(Box::new(DeadCode));
    passes
}

/// Upper bound on pipeline rounds; each round must make progress, so this only guards
/// against a pair of passes that undo each other.
const MAX_ROUNDS: usize = 32;

/// Runs `passes` until a full round changes nothing. When the pipeline has `dead-code`,
/// what a rewrite leaves unused is removed right after it (and counted there), not at the
/// end of the round: a dead node still counts as a reader of its inputs, and a pass later
/// in the round would take a value it orphaned as shared (an emptied Pad kept
/// `form-mbconv` from taking the expansion into its block).
pub fn optimize(g: &mut Graph, passes: &[Box<dyn Pass>]) -> Result<Vec<PassReport>> {
    let mut reports: Vec<PassReport> = passes.iter().map(|p| PassReport { name: p.name(), changes: 0 }).collect();
    let dead_code = passes.iter().position(|p| p.name() == DeadCode.name());
    for _ in 0..MAX_ROUNDS {
        let mut changed = 0;
        for (i, p) in passes.iter().enumerate() {
            let n = p.run(g)?;
            let pruned = if n > 0 && dead_code.is_some_and(|d| d != i) { g.prune_dead() } else { 0 };
            for (index, count) in [(Some(i), n), (dead_code, pruned)] {
                if let Some(r) = index.and_then(|j| reports.get_mut(j)) {
                    r.changes += count;
                }
            }
            changed += n;
        }
        if changed == 0 {
            return Ok(reports);
        }
    }
    Err(effc_ir::Error::other("passes did not reach a fixed point"))
}
