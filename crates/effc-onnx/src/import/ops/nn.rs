//! Gemm, MatMul, (Log)Softmax and the reductions.

use effc_ir::op::{Gemm, Op, Reduce, ReduceKind};
use effc_ir::{Error, Result, ValueRef};

use crate::import::NodeCtx;
use crate::import::attrs::axis;

pub(super) fn gemm(ctx: &mut NodeCtx) -> Result<Vec<ValueRef>> {
    let a = &ctx.attrs;
    let op = Op::Gemm(Gemm {
        alpha: a.float_or("alpha", 1.0)?,
        beta: a.float_or("beta", 1.0)?,
        trans_a: a.int_or("transA", 0)? != 0,
        trans_b: a.int_or("transB", 0)? != 0,
    });
    let ins = [Some(ctx.x(0)?), Some(ctx.x(1)?), ctx.input(2)?];
    ctx.emit(op, &ins)
}

pub(super) fn matmul(ctx: &mut NodeCtx) -> Result<Vec<ValueRef>> {
    let ins = [Some(ctx.x(0)?), Some(ctx.x(1)?)];
    ctx.emit(Op::MatMul, &ins)
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
