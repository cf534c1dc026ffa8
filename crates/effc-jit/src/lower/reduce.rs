//! Reductions (ReduceMean/Sum/Max/Min/Prod, global pools) and (log-)softmax, as
//! accumulating strided nests.

use cranelift_codegen::ir::InstBuilder;
use effc_ir::op::{PoolKind, Reduce, ReduceKind};
use effc_ir::{DType, Error, NodeId, Result};

use super::{Lowering, current, loaded};
use crate::emit::Base;
use crate::layout::{Buf, row_major};
use crate::math;
use crate::strided::{Nest, memory_order};

/// `acc` viewed over `x`'s dims: the reduced dims get stride 0.
fn accumulator_view(acc: &Buf, x_dims: &[usize], axes: &[usize]) -> Result<Buf> {
    let mut strides = Vec::with_capacity(x_dims.len());
    let mut acc_strides = acc.strides.iter();
    let keepdims = acc.dims.len() == x_dims.len();
    for d in 0..x_dims.len() {
        if axes.contains(&d) {
            strides.push(0);
            if keepdims {
                acc_strides.next();
            }
        } else {
            let &s = acc_strides.next().ok_or_else(|| {
                Error::unsupported(format!("reducing {x_dims:?} over axes {axes:?} into {:?}", acc.dims))
            })?;
            strides.push(s);
        }
    }
    Ok(Buf { dims: x_dims.to_vec(), strides, ..acc.clone() })
}

/// acc = combine(acc, x) over all of x, in x's memory order.
fn accumulate(l: &mut Lowering, acc_view: &Buf, x: &Buf, kind: ReduceKind) -> Result<()> {
    // `acc_view` has x's dims.
    let nest = Nest { accumulate: true, ..Nest::in_order(acc_view, &[x], &memory_order(x)) };
    l.nest(&nest, &move |kb, _, ins, old| {
        let (a, [v]) = (current(old), loaded(ins));
        match kind {
            ReduceKind::Sum | ReduceKind::Mean => kb.b.ins().fadd(a, v),
            ReduceKind::Prod => kb.b.ins().fmul(a, v),
            ReduceKind::Max => kb.b.ins().fmax(a, v),
            ReduceKind::Min => kb.b.ins().fmin(a, v),
        }
    })
}

fn scale(l: &mut Lowering, buf: &Buf, factor: f64) -> Result<()> {
    let nest = Nest { accumulate: true, ..Nest::over(buf, &[]) };
    l.nest(&nest, &move |kb, ty, _, old| {
        let f = kb.fc(ty, factor);
        kb.b.ins().fmul(current(old), f)
    })
}

fn init_value(kind: ReduceKind) -> f64 {
    match kind {
        ReduceKind::Sum | ReduceKind::Mean => 0.0,
        ReduceKind::Prod => 1.0,
        ReduceKind::Max => f64::NEG_INFINITY,
        ReduceKind::Min => f64::INFINITY,
    }
}

fn reduce_into(l: &mut Lowering, out: &Buf, x: &Buf, axes: &[usize], kind: ReduceKind) -> Result<()> {
    if x.dtype != DType::F32 {
        return Err(Error::unsupported(format!("reductions over {} at run time", x.dtype)));
    }
    l.fill(out, init_value(kind))?;
    accumulate(l, &accumulator_view(out, &x.dims, axes)?, x, kind)?;
    if kind == ReduceKind::Mean {
        let dim = |a: usize| {
            x.dims.get(a).copied().ok_or_else(|| Error::unsupported(format!("reducing axis {a} of {:?}", x.dims)))
        };
        let count: usize = axes.iter().map(|&a| dim(a)).product::<Result<usize>>()?;
        scale(l, out, 1.0 / count as f64)?;
    }
    Ok(())
}

pub(super) fn reduce(l: &mut Lowering, id: NodeId, r: &Reduce) -> Result<()> {
    let x = l.input(id, 0)?;
    let out = l.output(id, 0)?;
    reduce_into(l, &out, &x, &r.axes, r.kind)
}

/// `out` [N, C, 1, 1] = mean of `x` over H and W.
pub(super) fn mean_hw(l: &mut Lowering, out: &Buf, x: &Buf) -> Result<()> {
    reduce_into(l, out, x, &[2, 3], ReduceKind::Mean)
}

pub(super) fn global_pool(l: &mut Lowering, id: NodeId, kind: PoolKind) -> Result<()> {
    let x = l.input(id, 0)?;
    let out = l.output(id, 0)?;
    let axes: Vec<usize> = (2..x.dims.len()).collect();
    let kind = if kind == PoolKind::Max { ReduceKind::Max } else { ReduceKind::Mean };
    reduce_into(l, &out, &x, &axes, kind)
}

/// softmax = exp(x − max) / Σ exp(x − max); log-softmax = x − max − log Σ exp(x − max).
pub(super) fn softmax(l: &mut Lowering, id: NodeId, start: usize, end: usize, log: bool) -> Result<()> {
    let x = l.input(id, 0)?;
    let out = l.output(id, 0)?;
    if x.dtype != DType::F32 {
        return Err(Error::unsupported(format!("softmax over {} at run time", x.dtype)));
    }
    let axes: Vec<usize> = (start..end).collect();
    let mut kept = x.dims.clone();
    for &a in &axes {
        let dim =
            kept.get_mut(a).ok_or_else(|| Error::unsupported(format!("softmax over axis {a} of {:?}", x.dims)))?;
        *dim = 1;
    }
    let scratch =
        |i| Ok::<_, Error>(Buf::new(Base::Arena(l.scratch(id, i)?), DType::F32, kept.clone(), row_major(&kept)));
    let (max, sum) = (scratch(0)?, scratch(1)?);
    reduce_into(l, &max, &x, &axes, ReduceKind::Max)?;
    let max_b = max.broadcast_to(&x.dims);
    l.nest(&Nest::over(&out, &[&x, &max_b]), &|kb, _, ins, _| {
        let [x, max] = loaded(ins);
        let d = kb.b.ins().fsub(x, max);
        math::exp(kb, d)
    })?;
    reduce_into(l, &sum, &out, &axes, ReduceKind::Sum)?;
    let sum_b = sum.broadcast_to(&x.dims);
    if log {
        l.nest(&Nest::over(&out, &[&x, &max_b, &sum_b]), &|kb, _, ins, _| {
            let [x, max, sum] = loaded(ins);
            let d = kb.b.ins().fsub(x, max);
            let ls = math::log(kb, sum);
            kb.b.ins().fsub(d, ls)
        })
    } else {
        let nest = Nest { accumulate: true, ..Nest::over(&out, &[&sum_b]) };
        l.nest(&nest, &|kb, _, ins, old| {
            let [sum] = loaded(ins);
            kb.b.ins().fdiv(current(old), sum)
        })
    }
}
