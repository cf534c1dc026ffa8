//! The question fusion passes ask the backend: can this activation run fused there?
//!
//! Which activations a fused epilogue can apply depends on the code that runs it (the
//! micro-kernels of one instruction set, or JIT code), so the passes do not keep a list:
//! the backend implements [`Fusion`] for the kernel variant it will use and the pipeline
//! hands it to the passes that form epilogues and super-ops.

use crate::op::Unary;

/// Where a fused activation would be computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Site {
    /// The epilogue of a Conv (dense, grouped or depthwise), after bias and residual.
    Conv,
    /// The first FC of a squeeze-excite block, or its gate.
    SqueezeExcite,
    /// The expansion or depthwise stage of an MBConv super-op.
    MbConv,
}

/// What the backend can fuse.
pub trait Fusion {
    /// Whether `act` can be applied in the epilogue at `site`, as fast as the op without
    /// it would run (a fusion that moves an op to slower code is refused).
    fn can_fuse(&self, site: Site, act: Unary) -> bool;
}

/// Every float activation at every site: for tests of the passes themselves.
#[derive(Clone, Copy, Debug, Default)]
pub struct FuseAll;

impl Fusion for FuseAll {
    fn can_fuse(&self, _: Site, act: Unary) -> bool {
        act != Unary::Not
    }
}
