//! effc's intermediate representation.
//!
//! A model is a [`Graph`]: a petgraph `StableDiGraph` whose nodes are typed [`Op`]s and whose
//! edges carry values from an output port of one node to an input port of another. Every
//! value has a static dtype and shape. Attributes are parsed once, by the frontend, into the
//! op's Rust fields; ops whose parameters ONNX passes as tensor inputs (Pad, Slice, Reshape,
//! Clip, ReduceMean, ...) are stored with those parameters resolved, so passes and the
//! backend never look at ONNX again.

#![forbid(unsafe_code)]

pub mod cost;
mod dtype;
mod error;
pub mod eval;
pub mod fusion;
mod graph;
pub mod op;
pub mod shape;
mod tensor;

pub use dtype::DType;
pub use error::{Error, ErrorKind, Result};
pub use graph::{Edge, Graph, Node, NodeId, ValueInfo, ValueRef};
pub use op::Op;
pub use tensor::{Int8Origin, Tensor, TensorData, checked_numel};
