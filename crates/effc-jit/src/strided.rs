//! Strided loop nests: the generic kernel behind elementwise ops, copies, reductions and
//! broadcasts. A nest iterates over `dims` (outermost first); each operand advances by its
//! own element stride per dim (0 for broadcast). The innermost dim is vectorised as f32x4
//! when every operand is f32 and contiguous or broadcast along it.

use cranelift_codegen::ir::{InstBuilder, Type, Value, types};
use effc_ir::DType;

use crate::emit::{Base, Kb};
use crate::layout::Buf;

#[derive(Clone, Debug)]
pub struct Operand {
    pub base: Base,
    pub dtype: DType,
    /// Element offset from `base`.
    pub offset: isize,
    /// Element stride per loop dim.
    pub strides: Vec<isize>,
}

impl Operand {
    /// Reads `buf` along loop dims that are `buf`'s logical dims in `order`.
    pub fn of(buf: &Buf, order: &[usize]) -> Self {
        Operand {
            base: buf.base,
            dtype: buf.dtype,
            offset: buf.offset,
            strides: order.iter().map(|&d| buf.strides[d]).collect(),
        }
    }
}

pub fn clif_type(d: DType) -> Option<Type> {
    Some(match d {
        DType::F32 => types::F32,
        DType::F64 => types::F64,
        DType::I64 => types::I64,
        DType::I32 => types::I32,
        DType::U8 | DType::I8 => types::I8,
        _ => return None,
    })
}

/// The loop body: given the element type (`f32x4` on the vector path), the loaded inputs
/// and (for accumulating nests) the current output value, returns the value to store.
pub type Body<'a> = &'a dyn Fn(&mut Kb, Type, &[Value], Option<Value>) -> Value;

#[derive(Clone, Debug)]
pub struct Nest {
    pub dims: Vec<usize>,
    pub inputs: Vec<Operand>,
    pub out: Operand,
    /// The body also receives the output's current value (reductions).
    pub accumulate: bool,
}

impl Nest {
    /// Elementwise over `out`'s dims in `out`'s memory order, reading `inputs` (already
    /// broadcast to `out`'s dims).
    pub fn over(out: &Buf, inputs: &[&Buf]) -> Nest {
        Nest::in_order(out, inputs, &memory_order(out))
    }

    /// Elementwise over `out`'s dims walked in `order` (outermost first).
    pub fn in_order(out: &Buf, inputs: &[&Buf], order: &[usize]) -> Nest {
        Nest {
            dims: order.iter().map(|&d| out.dims[d]).collect(),
            inputs: inputs.iter().map(|b| Operand::of(b, order)).collect(),
            out: Operand::of(out, order),
            accumulate: false,
        }
    }

    /// Drops size-1 dims and merges dims that every operand walks contiguously.
    pub fn simplified(&self) -> Nest {
        let ops = || std::iter::once(&self.out).chain(&self.inputs);
        let keep: Vec<usize> = (0..self.dims.len()).filter(|&i| self.dims[i] != 1).collect();
        let mut dims: Vec<usize> = Vec::new();
        let mut strides: Vec<Vec<isize>> = ops().map(|_| Vec::new()).collect();
        for &i in &keep {
            let mergeable = !dims.is_empty()
                && ops()
                    .enumerate()
                    .all(|(k, o)| strides[k].last().copied() == Some(o.strides[i] * self.dims[i] as isize));
            if mergeable {
                *dims.last_mut().unwrap() *= self.dims[i];
                for (k, o) in ops().enumerate() {
                    *strides[k].last_mut().unwrap() = o.strides[i];
                }
            } else {
                dims.push(self.dims[i]);
                for (k, o) in ops().enumerate() {
                    strides[k].push(o.strides[i]);
                }
            }
        }
        if dims.is_empty() {
            dims.push(1);
            strides.iter_mut().for_each(|s| s.push(0));
        }
        // Accumulating nests may write one output element from several outer iterations,
        // so they are never split across threads: give them a unit outer dim.
        if self.accumulate || dims.len() == 1 {
            dims.insert(0, 1);
            strides.iter_mut().for_each(|s| s.insert(0, 0));
        }
        let mut it = strides.into_iter();
        let out = Operand { strides: it.next().unwrap(), ..self.out.clone() };
        let inputs = self.inputs.iter().zip(it).map(|(o, s)| Operand { strides: s, ..o.clone() }).collect();
        Nest { dims, inputs, out, accumulate: self.accumulate }
    }

    /// Size of the outermost (parallel) dim of the simplified nest.
    pub fn extent(&self) -> usize {
        self.dims[0]
    }
}

/// Logical dims of `buf` from largest to smallest stride (its memory order).
pub fn memory_order(buf: &Buf) -> Vec<usize> {
    let mut order: Vec<usize> = (0..buf.dims.len()).collect();
    order.sort_by_key(|&d| std::cmp::Reverse(buf.strides[d].unsigned_abs()));
    order
}

/// Emits a simplified nest; its outermost dim runs over the kernel's `lo..hi`.
pub fn emit(kb: &mut Kb, nest: &Nest, body: Body) {
    let n = nest.dims.len();
    let inner = nest.dims[n - 1];
    let all_f32 = nest.out.dtype == DType::F32 && nest.inputs.iter().all(|o| o.dtype == DType::F32);
    let contiguous = nest.out.strides[n - 1] == 1 && nest.inputs.iter().all(|o| matches!(o.strides[n - 1], 0 | 1));
    let vector = all_f32 && contiguous && inner >= 4;
    let mut ptrs: Vec<Value> = Vec::new();
    for o in std::iter::once(&nest.out).chain(&nest.inputs) {
        let size = o.dtype.size_bytes() as i64;
        ptrs.push(kb.addr(o.base, o.offset as i64 * size));
    }
    let (lo, hi) = (kb.lo, kb.hi);
    kb.for_range(lo, hi, 1, |kb, i| {
        let p = advance(kb, nest, &ptrs, 0, i);
        level(kb, nest, &p, 1, vector, body);
    });
}

fn operands(nest: &Nest) -> impl Iterator<Item = &Operand> {
    std::iter::once(&nest.out).chain(&nest.inputs)
}

fn advance(kb: &mut Kb, nest: &Nest, ptrs: &[Value], dim: usize, i: Value) -> Vec<Value> {
    operands(nest)
        .zip(ptrs)
        .map(|(o, &p)| kb.offset(p, i, o.strides[dim] as i64 * o.dtype.size_bytes() as i64))
        .collect()
}

fn level(kb: &mut Kb, nest: &Nest, ptrs: &[Value], dim: usize, vector: bool, body: Body) {
    let n = nest.dims.len();
    if dim < n - 1 {
        kb.for_n(nest.dims[dim], |kb, i| {
            let p = advance(kb, nest, ptrs, dim, i);
            level(kb, nest, &p, dim + 1, vector, body);
        });
        return;
    }
    let len = nest.dims[dim];
    let vec_count = if vector { len / 4 } else { 0 };
    if vec_count > 0 {
        kb.for_n(vec_count, |kb, i| {
            let i4 = kb.b.ins().imul_imm_s(i, 4);
            let p = advance(kb, nest, ptrs, dim, i4);
            element(kb, nest, &p, types::F32X4, body);
        });
    }
    let done = vec_count * 4;
    let scalar_ty = clif_type(nest.out.dtype).expect("run-time dtype");
    if len - done <= 3 {
        for j in done..len {
            let ij = kb.ic(j as i64);
            let p = advance(kb, nest, ptrs, dim, ij);
            element(kb, nest, &p, scalar_ty, body);
        }
    } else {
        let start = kb.ic(done as i64);
        let end = kb.ic(len as i64);
        kb.for_range(start, end, 1, |kb, j| {
            let p = advance(kb, nest, ptrs, dim, j);
            element(kb, nest, &p, scalar_ty, body);
        });
    }
}

fn element(kb: &mut Kb, nest: &Nest, ptrs: &[Value], ty: Type, body: Body) {
    let n = nest.dims.len();
    let mut ins = Vec::with_capacity(nest.inputs.len());
    for (o, &p) in nest.inputs.iter().zip(&ptrs[1..]) {
        let sty = clif_type(o.dtype).expect("run-time dtype");
        let v = if ty.is_vector() && o.strides[n - 1] == 0 {
            let s = kb.load_from(o.base, sty, p, 0);
            kb.b.ins().splat(ty, s)
        } else {
            let lty = if ty.is_vector() { ty } else { sty };
            kb.load_from(o.base, lty, p, 0)
        };
        ins.push(v);
    }
    let old = nest.accumulate.then(|| {
        let lty = if ty.is_vector() { ty } else { clif_type(nest.out.dtype).unwrap() };
        kb.load(lty, ptrs[0], 0)
    });
    let v = body(kb, ty, &ins, old);
    kb.store(v, ptrs[0], 0);
}
