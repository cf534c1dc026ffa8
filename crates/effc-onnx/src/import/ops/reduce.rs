//! Reductions: GlobalAveragePool / GlobalMaxPool, (Log)Softmax and the Reduce ops.

use effc_ir::op::{Op, PoolKind, Reduce, ReduceKind};
use effc_ir::{Error, Result, ValueRef};

use crate::import::NodeCtx;
use crate::import::attrs::axis;

pub(super) fn global_pool(ctx: &mut NodeCtx) -> Result<Vec<ValueRef>> {
    let x = ctx.x(0)?;
    let kind = if ctx.node.op_type == "GlobalMaxPool" { PoolKind::Max } else { PoolKind::Average };
    ctx.emit(Op::GlobalPool(kind), &[Some(x)])
}

pub(super) fn softmax(ctx: &mut NodeCtx) -> Result<Vec<ValueRef>> {
    let x = ctx.x(0)?;
    let rank = ctx.shape(x).len();
    let log = ctx.node.op_type == "LogSoftmax";
    // Before opset 13 the input is viewed as 2-D at `axis` (default 1) and normalised over
    // all trailing dims together; from 13 on, over the single `axis` (default -1).
    let (start, end) = if ctx.opset() < 13 {
        let a = axis(ctx.attrs.int_or("axis", 1)?, rank)?;
        (a, rank)
    } else {
        let a = axis(ctx.attrs.int_or("axis", -1)?, rank)?;
        (a, a + 1)
    };
    ctx.emit(Op::Softmax { start, end, log }, &[Some(x)])
}

pub(super) fn reduce(ctx: &mut NodeCtx) -> Result<Vec<ValueRef>> {
    let x = ctx.x(0)?;
    let rank = ctx.shape(x).len();
    let kind = match ctx.node.op_type.as_str() {
        "ReduceMean" => ReduceKind::Mean,
        "ReduceSum" => ReduceKind::Sum,
        "ReduceMax" => ReduceKind::Max,
        "ReduceMin" => ReduceKind::Min,
        _ => ReduceKind::Prod,
    };
    // Axes moved from an attribute to an input in opset 13 (ReduceSum) or 18 (the others).
    let input_from = if kind == ReduceKind::Sum { 13 } else { 18 };
    let axes = if ctx.opset() >= input_from { ctx.const_ints(1)? } else { ctx.attrs.ints("axes")? };
    let keepdims = ctx.attrs.int_or("keepdims", 1)? != 0;
    let noop_empty = ctx.attrs.int_or("noop_with_empty_axes", 0)? != 0;
    let axes = match axes {
        Some(a) if !a.is_empty() => {
            let mut v = a.iter().map(|&a| axis(a, rank)).collect::<Result<Vec<_>>>()?;
            v.sort_unstable();
            v.dedup();
            v
        }
        _ if noop_empty => return Ok(vec![x]),
        _ => (0..rank).collect(),
    };
    if axes.is_empty() {
        return Err(Error::invalid("nothing to reduce"));
    }
    ctx.emit(Op::Reduce(Reduce { kind, axes, keepdims }), &[Some(x)])
}
