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
mod threads;

pub use aligned::WeightStore;
pub use artifact::{Artifact, LibOptions, TargetCpu, compile_lib, is_c_identifier};
pub use kernels::{Isa, Kernels};
pub use runtime::{CompiledModel, IoInfo, JitOptions, TensorMut, TensorRef};
pub use threads::Team;
