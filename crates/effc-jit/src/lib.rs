//! effc's backend: lowers an optimised IR graph to machine code with Cranelift.
//!
//! Every op becomes one or more kernels specialised to that model's shapes, strides, pads
//! and weights (weights are baked in as addresses of immutable, packed data). Kernels run
//! in order over one arena per run, whose layout is planned at compile time by liveness.

mod aligned;
mod artifact;
mod emit;
mod kernels;
mod layout;
mod lower;
mod math;
mod module;
mod plan;
mod runtime;
mod strided;

pub use aligned::WeightStore;
pub use artifact::{
    Artifact, LibOptions, RUNTIME_FILE, TargetCpu, artifact_kernels, compile_lib, is_c_identifier, runtime_archive,
};
pub use effc_kernels::Team;
pub use kernels::{Isa, Kernels};
pub use runtime::{CompiledModel, IoInfo, JitOptions, TensorMut, TensorRef};
