//! Constant weights as the lowering reads them, and their release once packed.

use std::collections::HashMap;

use effc_ir::op::Op;
use effc_ir::{Error, Graph, NodeId, Result};

/// The per-column scales of weights folded from int8 values (their [`effc_ir::Int8Origin`]),
/// when the product's `n` columns run along `axis` of `w`: one scale per column, or one for
/// all. The packer checks each value against them.
pub(crate) fn column_scales(w: &effc_ir::Tensor, axis: usize, n: usize) -> Option<Vec<f32>> {
    let o = w.int8_origin()?;
    match o.scales.as_slice() {
        &[s] => Some(vec![s; n]),
        scales if o.axis == axis && scales.len() == n => Some(scales.to_vec()),
        _ => None,
    }
}

/// Constant weights checked against the dims they are read with, for the packing
/// closures, which cannot return an error.
#[derive(Clone, Copy)]
pub(crate) struct Weights<'a, const R: usize> {
    data: &'a [f32],
    dims: [usize; R],
}

impl<'a, const R: usize> Weights<'a, R> {
    /// `data` read as row-major `dims`: an error unless it holds exactly that many values.
    pub fn new(data: &'a [f32], dims: [usize; R], what: &str) -> Result<Self> {
        let len = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        if len != Some(data.len()) {
            return Err(Error::unsupported(format!("{what} of {} values read as {dims:?}", data.len())));
        }
        Ok(Weights { data, dims })
    }

    /// The value at `index`, each coordinate below its dim.
    #[allow(
        clippy::indexing_slicing,
        reason = "`new` checked that data holds the product of dims values, and callers read coordinates \
                  below the dims they passed to `new` (asserted in debug builds), so the flat index is below it"
    )]
    pub fn at(&self, index: [usize; R]) -> f32 {
        debug_assert!(index.iter().zip(&self.dims).all(|(i, d)| i < d), "{index:?} outside {:?}", self.dims);
        let flat = index.iter().zip(&self.dims).fold(0, |flat, (&i, &d)| flat * d + i);
        self.data[flat]
    }
}

/// Constant nodes and how many run-time nodes still read each (over all its input ports).
pub(super) fn const_readers(g: &Graph, runtime: &[NodeId]) -> HashMap<NodeId, usize> {
    let mut readers = HashMap::new();
    for &id in runtime {
        for v in g.inputs(id).into_iter().flatten() {
            if matches!(g.node(v.node).op, Op::Const(_)) {
                *readers.entry(v.node).or_insert(0) += 1;
            }
        }
    }
    readers
}

/// Drops the weights that node `id`, just lowered, was the last to need: those inside its
/// op (a fused block's) and constants no later node reads (graph outputs excepted, which
/// the output copies read at the end). Their nodes keep their outputs' shapes but no
/// longer hold data: a later read would fail as "has no buffer", never see other values.
pub(super) fn release_weights(g: &mut Graph, id: NodeId, readers: &mut HashMap<NodeId, usize>) {
    if matches!(g.node(id).op, Op::MbConv(_) | Op::FusedMbConv(_) | Op::SqueezeExcite(_)) {
        g.node_mut(id).op = Op::Released;
    }
    for v in g.inputs(id).into_iter().flatten() {
        let Some(left) = readers.get_mut(&v.node) else { continue };
        *left -= 1;
        let is_output = g.outputs.iter().any(|(_, o)| o.node == v.node);
        if *left == 0 && !is_output {
            g.node_mut(v.node).op = Op::Released;
        }
    }
}
