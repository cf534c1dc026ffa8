//! Conv and the windowed pools.

use effc_ir::op::{Conv, Op, Pool, PoolKind};
use effc_ir::{Error, Result, ValueRef};

use crate::import::NodeCtx;
use crate::import::attrs::to_usizes;

/// Window geometry shared by Conv and the pools.
struct Window {
    kernel: Vec<usize>,
    strides: Vec<usize>,
    dilations: Vec<usize>,
    pads_begin: Vec<usize>,
    pads_end: Vec<usize>,
}

fn per_dim(ctx: &NodeCtx, name: &str, n: usize) -> Result<Vec<usize>> {
    match ctx.attrs.ints(name)? {
        None => Ok(vec![1; n]),
        Some(v) if v.len() == n => {
            let v = to_usizes(&v, name)?;
            if v.contains(&0) {
                return Err(Error::invalid(format!("{name} must be positive, got {v:?}")));
            }
            Ok(v)
        }
        Some(v) => Err(Error::invalid(format!("{name} {v:?} should have {n} values"))),
    }
}

/// Reads kernel, strides, dilations and pads, resolving `auto_pad` against the input size.
fn window(ctx: &NodeCtx, input_spatial: &[usize], kernel: Vec<usize>) -> Result<Window> {
    let n = input_spatial.len();
    if kernel.len() != n {
        return Err(Error::invalid(format!("kernel {kernel:?} does not match {n} spatial dims")));
    }
    let strides = per_dim(ctx, "strides", n)?;
    let dilations = per_dim(ctx, "dilations", n)?;
    let auto_pad = ctx.attrs.string("auto_pad")?.unwrap_or_else(|| "NOTSET".into());
    let (pads_begin, pads_end) = match auto_pad.as_str() {
        "NOTSET" => match ctx.attrs.ints("pads")? {
            None => (vec![0; n], vec![0; n]),
            Some(p) if p.len() == 2 * n => {
                let p = to_usizes(&p, "pads")?;
                (p[..n].to_vec(), p[n..].to_vec())
            }
            Some(p) => {
                return Err(Error::invalid(format!("pads {p:?} should have {} values", 2 * n)));
            }
        },
        "VALID" => (vec![0; n], vec![0; n]),
        "SAME_UPPER" | "SAME_LOWER" => {
            let mut b = Vec::with_capacity(n);
            let mut e = Vec::with_capacity(n);
            for i in 0..n {
                let out = input_spatial[i].div_ceil(strides[i]);
                let span = dilations[i] * (kernel[i].max(1) - 1) + 1;
                let total = ((out.max(1) - 1) * strides[i] + span).saturating_sub(input_spatial[i]);
                let small = total / 2;
                let (pb, pe) = if auto_pad == "SAME_UPPER" { (small, total - small) } else { (total - small, small) };
                b.push(pb);
                e.push(pe);
            }
            (b, e)
        }
        other => return Err(Error::invalid(format!("unknown auto_pad '{other}'"))),
    };
    Ok(Window { kernel, strides, dilations, pads_begin, pads_end })
}

fn spatial_input(ctx: &NodeCtx, x: ValueRef) -> Result<Vec<usize>> {
    let s = ctx.shape(x);
    if s.len() < 3 {
        return Err(Error::shape(format!("{} needs an input of rank >= 3, got {s:?}", ctx.node.op_type)));
    }
    Ok(s[2..].to_vec())
}

pub(super) fn conv(ctx: &mut NodeCtx) -> Result<Vec<ValueRef>> {
    let (x, w, b) = (ctx.x(0)?, ctx.x(1)?, ctx.input(2)?);
    let op = conv_op(ctx, x, w)?;
    ctx.emit(op, &[Some(x), Some(w), b])
}

/// A Conv of `x` by `w` with the node's attributes, as an intermediate step (the float
/// core of QLinearConv and ConvInteger).
pub(super) fn conv_of(ctx: &mut NodeCtx, x: ValueRef, w: ValueRef, b: Option<ValueRef>, tag: &str) -> Result<ValueRef> {
    let op = conv_op(ctx, x, w)?;
    ctx.emit_step(op, &[Some(x), Some(w), b], tag)
}

/// The Conv op of the node's attributes for input `x` and weights `w`.
fn conv_op(ctx: &NodeCtx, x: ValueRef, w: ValueRef) -> Result<Op> {
    let spatial = spatial_input(ctx, x)?;
    let ws = ctx.shape(w);
    if ws.len() != spatial.len() + 2 {
        return Err(Error::shape(format!("weight shape {ws:?} does not match input rank {}", spatial.len() + 2)));
    }
    let kernel = match ctx.attrs.ints("kernel_shape")? {
        Some(k) => to_usizes(&k, "kernel_shape")?,
        None => ws[2..].to_vec(),
    };
    let win = window(ctx, &spatial, kernel)?;
    let group = ctx.attrs.int_or("group", 1)?;
    let group = usize::try_from(group)
        .ok()
        .filter(|&g| g > 0)
        .ok_or_else(|| Error::invalid(format!("group must be positive, got {group}")))?;
    Ok(Op::Conv(Conv {
        kernel: win.kernel,
        strides: win.strides,
        dilations: win.dilations,
        pads_begin: win.pads_begin,
        pads_end: win.pads_end,
        group,
        act: None,
    }))
}

pub(super) fn pool(ctx: &mut NodeCtx) -> Result<Vec<ValueRef>> {
    let x = ctx.x(0)?;
    let spatial = spatial_input(ctx, x)?;
    let kernel = ctx.attrs.ints("kernel_shape")?.ok_or_else(|| Error::invalid("kernel_shape is required"))?;
    let win = window(ctx, &spatial, to_usizes(&kernel, "kernel_shape")?)?;
    let kind = if ctx.node.op_type == "MaxPool" { PoolKind::Max } else { PoolKind::Average };
    if kind == PoolKind::Max && ctx.attrs.int_or("storage_order", 0)? != 0 {
        return Err(Error::unsupported("MaxPool storage_order=1"));
    }
    let op = Op::Pool(Pool {
        kind,
        kernel: win.kernel,
        strides: win.strides,
        dilations: win.dilations,
        pads_begin: win.pads_begin,
        pads_end: win.pads_end,
        count_include_pad: ctx.attrs.int_or("count_include_pad", 0)? != 0,
        ceil_mode: ctx.attrs.int_or("ceil_mode", 0)? != 0,
    });
    // MaxPool's optional second output (indices) is not produced; using it is an error.
    ctx.emit(op, &[Some(x)])
}
