//! Where tensors live and how their elements are laid out.
//!
//! effc stores every run-time tensor of rank ≥ 3 channels-last (NHWC for images): dim 1
//! moves innermost. Convolutions, pools, BatchNorm and activations then read channels as
//! contiguous vectors, which is what both the JIT's f32x4 loops and the AVX-512
//! micro-kernels want, and 1×1 convolutions become plain row-major GEMMs. Tensors of rank
//! ≤ 2 and constants are row-major. Kernels address every tensor through a [`Buf`]: a base
//! plus per-logical-dim strides, so layouts can differ between operands.

use effc_ir::DType;

use crate::emit::Base;

#[derive(Clone, Debug)]
pub struct Buf {
    pub base: Base,
    pub dtype: DType,
    /// Element offset from `base`.
    pub offset: isize,
    /// Logical dims (ONNX order).
    pub dims: Vec<usize>,
    /// Element stride of each logical dim.
    pub strides: Vec<isize>,
}

/// Row-major strides of `dims`.
pub fn row_major(dims: &[usize]) -> Vec<isize> {
    let mut s = vec![1isize; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1] as isize;
    }
    s
}

/// Strides of a run-time tensor in effc's layout: channels-last for rank ≥ 3.
pub fn activation_strides(dims: &[usize]) -> Vec<isize> {
    if dims.len() < 3 {
        return row_major(dims);
    }
    // Physical order: dim 0, dims 2.., dim 1.
    let mut order = vec![0];
    order.extend(2..dims.len());
    order.push(1);
    let mut strides = vec![0isize; dims.len()];
    let mut s = 1isize;
    for &d in order.iter().rev() {
        strides[d] = s;
        s *= dims[d] as isize;
    }
    strides
}

impl Buf {
    pub fn new(base: Base, dtype: DType, dims: Vec<usize>, strides: Vec<isize>) -> Self {
        Buf { base, dtype, offset: 0, dims, strides }
    }

    /// Whether the elements are stored densely in row-major order of `dims`.
    pub fn is_row_major(&self) -> bool {
        let rm = row_major(&self.dims);
        self.dims.iter().zip(self.strides.iter().zip(&rm)).all(|(&d, (&s, &r))| d == 1 || s == r)
    }

    /// The sub-tensor `start..start+len` along `axis`.
    pub fn narrow(&self, axis: usize, start: usize, len: usize) -> Buf {
        let mut b = self.clone();
        b.offset += start as isize * self.strides[axis];
        b.dims[axis] = len;
        b
    }

    /// Fixes `axis` at `index` and drops it.
    pub fn select(&self, axis: usize, index: usize) -> Buf {
        let mut b = self.clone();
        b.offset += index as isize * self.strides[axis];
        b.dims.remove(axis);
        b.strides.remove(axis);
        b
    }

    /// Views this tensor with numpy broadcasting to `dims` (stride 0 on broadcast dims).
    pub fn broadcast_to(&self, dims: &[usize]) -> Buf {
        let lead = dims.len() - self.dims.len();
        let mut strides = vec![0isize; dims.len()];
        for (i, (&d, &s)) in self.dims.iter().zip(&self.strides).enumerate() {
            strides[lead + i] = if d == 1 && dims[lead + i] != 1 { 0 } else { s };
        }
        Buf { base: self.base, dtype: self.dtype, offset: self.offset, dims: dims.to_vec(), strides }
    }

    /// Reorders the logical dims: new dim i is old dim perm[i].
    pub fn permute(&self, perm: &[usize]) -> Buf {
        Buf {
            base: self.base,
            dtype: self.dtype,
            offset: self.offset,
            dims: perm.iter().map(|&p| self.dims[p]).collect(),
            strides: perm.iter().map(|&p| self.strides[p]).collect(),
        }
    }
}
