//! Gemm and MatMul.

use effc_ir::op::{Gemm, Op};
use effc_ir::{Result, ValueRef};

use crate::import::NodeCtx;

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
