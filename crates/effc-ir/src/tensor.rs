use std::fmt;
use std::sync::Arc;

use crate::{DType, Error, Result};

/// The elements of a constant tensor, shared so that weights are never copied when a
/// graph is cloned or a node is rewritten.
#[derive(Clone, PartialEq)]
pub enum TensorData {
    F32(Arc<[f32]>),
    F64(Arc<[f64]>),
    I64(Arc<[i64]>),
    I32(Arc<[i32]>),
    I8(Arc<[i8]>),
    U8(Arc<[u8]>),
    Bool(Arc<[bool]>),
}

/// Applies `$body` to the slice inside any `TensorData` variant, rebuilding the same
/// variant from the `Vec` it returns. Used by layout ops that only move elements.
#[macro_export]
macro_rules! map_tensor_data {
    ($data:expr, |$s:ident| $body:expr) => {
        match $data {
            $crate::TensorData::F32($s) => $crate::TensorData::F32($body.into()),
            $crate::TensorData::F64($s) => $crate::TensorData::F64($body.into()),
            $crate::TensorData::I64($s) => $crate::TensorData::I64($body.into()),
            $crate::TensorData::I32($s) => $crate::TensorData::I32($body.into()),
            $crate::TensorData::I8($s) => $crate::TensorData::I8($body.into()),
            $crate::TensorData::U8($s) => $crate::TensorData::U8($body.into()),
            $crate::TensorData::Bool($s) => $crate::TensorData::Bool($body.into()),
        }
    };
}

impl TensorData {
    pub fn dtype(&self) -> DType {
        match self {
            TensorData::F32(_) => DType::F32,
            TensorData::F64(_) => DType::F64,
            TensorData::I64(_) => DType::I64,
            TensorData::I32(_) => DType::I32,
            TensorData::I8(_) => DType::I8,
            TensorData::U8(_) => DType::U8,
            TensorData::Bool(_) => DType::Bool,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::F64(v) => v.len(),
            TensorData::I64(v) => v.len(),
            TensorData::I32(v) => v.len(),
            TensorData::I8(v) => v.len(),
            TensorData::U8(v) => v.len(),
            TensorData::Bool(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A constant tensor: dtype, static shape, row-major elements.
#[derive(Clone, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: TensorData,
    /// Where an f32 tensor was folded from int8 values (see [`Int8Origin`]).
    int8: Option<Arc<Int8Origin>>,
}

/// How an f32 tensor was folded from int8 weights: a DequantizeLinear with zero point 0,
/// so element i is q_i · `scales[i's index along axis]` (one scale: all of them) with
/// q_i an int8. A backend may store such weights as int8 with their scales; it checks
/// each value against its scale, so the record is a hint, never trusted blindly. Passes
/// that compute new weights make new tensors, which have none.
#[derive(Clone, Debug, PartialEq)]
pub struct Int8Origin {
    pub axis: usize,
    pub scales: Vec<f32>,
}

/// Number of elements of `shape`, refusing shapes whose product overflows. Zero dims are
/// left out of the overflow check's product, so that once a shape passes, every product
/// of any of its dims (strides, partial counts, in any order) fits in a usize.
pub fn checked_numel(shape: &[usize]) -> Result<usize> {
    let nonzero = shape
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::shape(format!("the product of dims {shape:?} overflows")))?;
    Ok(if shape.contains(&0) { 0 } else { nonzero })
}

impl Tensor {
    /// Builds a tensor, checking that the element count matches the shape.
    pub fn new(shape: Vec<usize>, data: TensorData) -> Result<Self> {
        let numel = checked_numel(&shape)?;
        if numel != data.len() {
            return Err(Error::invalid(format!(
                "tensor of shape {shape:?} needs {numel} elements but has {}",
                data.len()
            )));
        }
        Ok(Tensor { shape, data, int8: None })
    }

    pub fn from_f32(shape: Vec<usize>, v: Vec<f32>) -> Result<Self> {
        Self::new(shape, TensorData::F32(v.into()))
    }

    pub fn from_i64(shape: Vec<usize>, v: Vec<i64>) -> Result<Self> {
        Self::new(shape, TensorData::I64(v.into()))
    }

    pub fn scalar_f32(v: f32) -> Self {
        Tensor { shape: vec![], data: TensorData::F32(vec![v].into()), int8: None }
    }

    pub fn vec_i64(v: Vec<i64>) -> Self {
        Tensor { shape: vec![v.len()], data: TensorData::I64(v.into()), int8: None }
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    pub fn data(&self) -> &TensorData {
        &self.data
    }

    pub fn numel(&self) -> usize {
        self.data.len()
    }

    /// The same elements under another shape of equal element count (an int8 origin is
    /// kept while the dims up to its axis stay).
    pub fn reshaped(&self, shape: Vec<usize>) -> Result<Self> {
        let kept = self.int8.clone().filter(|o| shape.get(..=o.axis) == self.shape.get(..=o.axis));
        Ok(Tensor { int8: kept, ..Self::new(shape, self.data.clone())? })
    }

    /// Records that this f32 tensor was folded from int8 values (see [`Int8Origin`]).
    pub fn with_int8_origin(mut self, origin: Int8Origin) -> Self {
        self.int8 = Some(Arc::new(origin));
        self
    }

    /// The same tensor without its int8 origin (for a backend that rescales the values).
    pub fn without_int8_origin(&self) -> Self {
        Tensor { int8: None, ..self.clone() }
    }

    pub fn int8_origin(&self) -> Option<&Int8Origin> {
        self.int8.as_deref()
    }

    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            TensorData::F32(v) => Some(v),
            _ => None,
        }
    }

    /// The f32 elements for writing in place, when no other tensor shares them (a pass
    /// rewriting weights then needs no second copy).
    pub fn f32_mut(&mut self) -> Option<&mut [f32]> {
        // Changed values are no longer the int8 ones.
        self.int8 = None;
        match &mut self.data {
            TensorData::F32(v) => std::sync::Arc::get_mut(v),
            _ => None,
        }
    }

    /// Elements as i64, for integer and bool tensors (shape arithmetic, axes, pads).
    pub fn to_i64_vec(&self) -> Result<Vec<i64>> {
        Ok(match &self.data {
            TensorData::I64(v) => v.to_vec(),
            TensorData::I32(v) => v.iter().map(|&x| x as i64).collect(),
            TensorData::I8(v) => v.iter().map(|&x| x as i64).collect(),
            TensorData::U8(v) => v.iter().map(|&x| x as i64).collect(),
            TensorData::Bool(v) => v.iter().map(|&x| x as i64).collect(),
            TensorData::F32(_) | TensorData::F64(_) => {
                return Err(Error::invalid(format!("expected an integer tensor, got {}", self.dtype())));
            }
        })
    }

    /// Elements widened to f64, for any dtype.
    pub fn to_f64_vec(&self) -> Vec<f64> {
        match &self.data {
            TensorData::F32(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::F64(v) => v.to_vec(),
            TensorData::I64(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::I32(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::I8(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::U8(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::Bool(v) => v.iter().map(|&x| x as u8 as f64).collect(),
        }
    }

    /// The elements as f32: borrowed when stored as f32 (weights, without a copy),
    /// converted otherwise.
    pub fn f32_data(&self) -> std::borrow::Cow<'_, [f32]> {
        match &self.data {
            TensorData::F32(v) => std::borrow::Cow::Borrowed(v),
            _ => std::borrow::Cow::Owned(self.to_f32_vec()),
        }
    }

    /// Elements converted to f32 (weights stored as f64 or f16-converted data).
    pub fn to_f32_vec(&self) -> Vec<f32> {
        match &self.data {
            TensorData::F32(v) => v.to_vec(),
            _ => self.to_f64_vec().into_iter().map(|x| x as f32).collect(),
        }
    }

    /// The single element of a one-element tensor, as f64.
    pub fn scalar_value(&self) -> Result<f64> {
        if self.numel() != 1 {
            return Err(Error::invalid(format!("expected a scalar, got a tensor of shape {:?}", self.shape)));
        }
        Ok(self.to_f64_vec()[0])
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tensor<{}>{:?}", self.dtype(), self.shape)?;
        if self.numel() <= 8 {
            write!(f, " {:?}", self.to_f64_vec())?;
        }
        Ok(())
    }
}
