//! Shape and layout ops, Cast, constants and the ops that vanish at inference (Identity,
//! Dropout).

use effc_ir::op::{Op, Pad, PadMode, SliceAxis};
use effc_ir::{DType, Error, Result, Tensor, ValueRef};

use crate::import::NodeCtx;
use crate::import::attrs::{axis, to_usizes};

pub(super) fn identity(ctx: &mut NodeCtx) -> Result<Vec<ValueRef>> {
    if ctx.node.op_type == "Dropout" && ctx.opset() >= 12 {
        let training = ctx.const_input(2)?.map(|t| t.scalar_value()).transpose()?.unwrap_or(0.0);
        if training != 0.0 {
            return Err(Error::unsupported("Dropout in training mode"));
        }
    }
    // Dropout's mask output is not produced; a node that reads it gets a clear error.
    Ok(vec![ctx.x(0)?])
}

pub(super) fn constant(ctx: &mut NodeCtx) -> Result<Vec<ValueRef>> {
    let a = &ctx.attrs;
    let t = if let Some(t) = a.tensor("value")? {
        t
    } else if let Some(v) = a.float("value_float")? {
        Tensor::scalar_f32(v)
    } else if let Some(v) = a.floats("value_floats")? {
        Tensor::from_f32(vec![v.len()], v)?
    } else if let Some(v) = a.int("value_int")? {
        Tensor::from_i64(vec![], vec![v])?
    } else if let Some(v) = a.ints("value_ints")? {
        Tensor::vec_i64(v)
    } else if a.has("sparse_value") || a.has("value_string") || a.has("value_strings") {
        return Err(Error::unsupported("Constant with a sparse or string value"));
    } else {
        return Err(Error::invalid("Constant has no value"));
    };
    Ok(vec![ctx.constant(0, t)?])
}

/// Clamps Shape's start/end (opset 15) to the rank.
fn clamp_index(v: i64, rank: usize) -> usize {
    let r = rank as i64;
    (if v < 0 { v + r } else { v }).clamp(0, r) as usize
}

pub(super) fn shape(ctx: &mut NodeCtx) -> Result<Vec<ValueRef>> {
    let s = ctx.shape(ctx.x(0)?);
    let start = clamp_index(ctx.attrs.int_or("start", 0)?, s.len());
    let end = clamp_index(ctx.attrs.int_or("end", s.len() as i64)?, s.len());
    let dims: Vec<i64> = s[start..end.max(start)].iter().map(|&d| d as i64).collect();
    Ok(vec![ctx.constant(0, Tensor::vec_i64(dims))?])
}

pub(super) fn size(ctx: &mut NodeCtx) -> Result<Vec<ValueRef>> {
    let n = ctx.info(ctx.x(0)?).numel() as i64;
    Ok(vec![ctx.constant(0, Tensor::from_i64(vec![], vec![n])?)?])
}

pub(super) fn constant_of_shape(ctx: &mut NodeCtx) -> Result<Vec<ValueRef>> {
    let dims = ctx.const_ints(0)?.ok_or_else(|| Error::invalid("ConstantOfShape needs a shape"))?;
    let shape = to_usizes(&dims, "shape")?;
    let value = ctx.attrs.tensor("value")?.unwrap_or_else(|| Tensor::scalar_f32(0.0));
    if value.numel() != 1 {
        return Err(Error::invalid("ConstantOfShape value must have one element"));
    }
    if effc_ir::checked_numel(&shape)? == 0 {
        return Err(Error::unsupported("ConstantOfShape with a zero-size shape"));
    }
    // Expanding a one-element tensor checks the size limit before allocating.
    let one = value.reshaped(vec![1; shape.len()])?;
    let src = ctx.constant(0, one)?;
    ctx.emit(Op::Expand { shape }, &[Some(src)])
}

/// Target shape of an ONNX Reshape: 0 copies the input dim (unless `allowzero`), -1 is inferred.
fn resolve_reshape(input: &[usize], spec: &[i64], allowzero: bool) -> Result<Vec<usize>> {
    let numel: usize = input.iter().product();
    let mut out = Vec::with_capacity(spec.len());
    let mut infer_at = None;
    for (i, &d) in spec.iter().enumerate() {
        match d {
            -1 if infer_at.is_none() => {
                infer_at = Some(i);
                out.push(1);
            }
            0 if !allowzero => out.push(
                *input.get(i).ok_or_else(|| Error::shape(format!("shape {spec:?} copies dim {i} of {input:?}")))?,
            ),
            d if d >= 0 => out.push(d as usize),
            _ => return Err(Error::shape(format!("invalid reshape target {spec:?}"))),
        }
    }
    if let Some(i) = infer_at {
        let rest = effc_ir::checked_numel(&out)?;
        if rest == 0 || !numel.is_multiple_of(rest) {
            return Err(Error::shape(format!("cannot reshape {input:?} into {spec:?}")));
        }
        out[i] = numel / rest;
    }
    Ok(out)
}

pub(super) fn reshape(ctx: &mut NodeCtx) -> Result<Vec<ValueRef>> {
    let x = ctx.x(0)?;
    let spec = ctx.const_ints(1)?.ok_or_else(|| Error::invalid("Reshape needs a shape"))?;
    let shape = resolve_reshape(&ctx.shape(x), &spec, ctx.attrs.int_or("allowzero", 0)? != 0)?;
    ctx.emit(Op::Reshape { shape }, &[Some(x)])
}

pub(super) fn flatten(ctx: &mut NodeCtx) -> Result<Vec<ValueRef>> {
    let x = ctx.x(0)?;
    let s = ctx.shape(x);
    let a = ctx.attrs.int_or("axis", 1)?;
    let a = if a < 0 { a + s.len() as i64 } else { a };
    if a < 0 || a > s.len() as i64 {
        return Err(Error::invalid(format!("Flatten axis {a} out of range for {s:?}")));
    }
    let shape = vec![s[..a as usize].iter().product(), s[a as usize..].iter().product()];
    ctx.emit(Op::Reshape { shape }, &[Some(x)])
}

/// Axes from the `axes` attribute (old opsets) or input 1 (opset 13+).
fn axes_arg(ctx: &NodeCtx, input_from: i64) -> Result<Option<Vec<i64>>> {
    if ctx.opset() >= input_from { ctx.const_ints(1) } else { ctx.attrs.ints("axes") }
}

fn resolve_axes(axes: &[i64], rank: usize) -> Result<Vec<usize>> {
    let mut out = axes.iter().map(|&a| axis(a, rank)).collect::<Result<Vec<_>>>()?;
    out.sort_unstable();
    if out.windows(2).any(|w| w[0] == w[1]) {
        return Err(Error::invalid(format!("axes {axes:?} repeat")));
    }
    Ok(out)
}

pub(super) fn squeeze(ctx: &mut NodeCtx) -> Result<Vec<ValueRef>> {
    let x = ctx.x(0)?;
    let s = ctx.shape(x);
    let axes = match axes_arg(ctx, 13)? {
        Some(a) => resolve_axes(&a, s.len())?,
        None => (0..s.len()).filter(|&i| s[i] == 1).collect(),
    };
    if let Some(&a) = axes.iter().find(|&&a| s[a] != 1) {
        return Err(Error::shape(format!("cannot squeeze dim {a} of {s:?}")));
    }
    let shape = (0..s.len()).filter(|i| !axes.contains(i)).map(|i| s[i]).collect();
    ctx.emit(Op::Reshape { shape }, &[Some(x)])
}

pub(super) fn unsqueeze(ctx: &mut NodeCtx) -> Result<Vec<ValueRef>> {
    let x = ctx.x(0)?;
    let s = ctx.shape(x);
    let axes = axes_arg(ctx, 13)?.ok_or_else(|| Error::invalid("Unsqueeze needs axes"))?;
    let rank = s.len() + axes.len();
    let axes = resolve_axes(&axes, rank)?;
    let mut dims = s.iter();
    let shape = (0..rank).map(|i| if axes.contains(&i) { 1 } else { *dims.next().unwrap() }).collect();
    ctx.emit(Op::Reshape { shape }, &[Some(x)])
}

pub(super) fn transpose(ctx: &mut NodeCtx) -> Result<Vec<ValueRef>> {
    let x = ctx.x(0)?;
    let rank = ctx.shape(x).len();
    let perm = match ctx.attrs.ints("perm")? {
        Some(p) => to_usizes(&p, "perm")?,
        None => (0..rank).rev().collect(),
    };
    if perm.len() != rank {
        return Err(Error::invalid(format!("perm {perm:?} has {} entries for a rank-{rank} input", perm.len())));
    }
    if perm.iter().enumerate().all(|(i, &p)| i == p) {
        return Ok(vec![x]);
    }
    ctx.emit(Op::Transpose { perm }, &[Some(x)])
}

pub(super) fn concat(ctx: &mut NodeCtx) -> Result<Vec<ValueRef>> {
    let ins = (0..ctx.num_inputs()).map(|i| ctx.x(i).map(Some)).collect::<Result<Vec<_>>>()?;
    let first = ins.first().copied().flatten().ok_or_else(|| Error::invalid("Concat needs inputs"))?;
    let a = ctx.attrs.int("axis")?.ok_or_else(|| Error::invalid("Concat needs 'axis'"))?;
    let a = axis(a, ctx.shape(first).len())?;
    ctx.emit(Op::Concat { axis: a }, &ins)
}

pub(super) fn split(ctx: &mut NodeCtx) -> Result<Vec<ValueRef>> {
    let x = ctx.x(0)?;
    let s = ctx.shape(x);
    let a = axis(ctx.attrs.int_or("axis", 0)?, s.len())?;
    let n_out = ctx.node.output.len();
    let given = if ctx.opset() >= 13 { ctx.const_ints(1)? } else { ctx.attrs.ints("split")? };
    let sizes = match given {
        Some(v) => to_usizes(&v, "split")?,
        None => {
            let parts = match ctx.attrs.int("num_outputs")? {
                // Split-18: num_outputs must equal the node's outputs (checked before the
                // list of sizes is allocated).
                Some(n) if n > 0 && n as u64 == n_out as u64 => n as usize,
                Some(n) => {
                    return Err(Error::invalid(format!("num_outputs {n} but the node has {n_out} outputs")));
                }
                None => n_out,
            };
            if parts == 0 {
                return Err(Error::invalid("Split has no outputs"));
            }
            // Opset 18 allows the last chunk to be smaller; before, the split must be even.
            let chunk = s[a].div_ceil(parts);
            if ctx.opset() < 18 && !s[a].is_multiple_of(parts) {
                return Err(Error::shape(format!("dim {} does not split evenly into {parts}", s[a])));
            }
            (0..parts).map(|i| chunk.min(s[a].saturating_sub(i * chunk))).collect()
        }
    };
    ctx.emit(Op::Split { axis: a, sizes }, &[Some(x)])
}

/// Normalises one ONNX slice axis to a start, step and length inside the dim.
fn slice_axis(axis: usize, dim: usize, start: i64, end: i64, step: i64) -> Result<SliceAxis> {
    if step == 0 {
        return Err(Error::invalid("slice step must not be 0"));
    }
    let d = dim as i64;
    let norm = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
    let (start, end) = (norm(start), norm(end));
    // ⌈span / |step|⌉ as (span − 1) / |step| + 1, which cannot overflow (steps of ±i64::MAX
    // are valid and take one element).
    let count = |span: i64| if span > 0 { (span.unsigned_abs() - 1) / step.unsigned_abs() + 1 } else { 0 };
    let (start, len) = if step > 0 {
        let (s, e) = (start.clamp(0, d), end.clamp(0, d));
        (s, count(e - s))
    } else {
        let (s, e) = (start.clamp(0, d - 1), end.clamp(-1, d - 1));
        (s, count(s - e))
    };
    // A step that takes at most one element is irrelevant; keeping it would only make the
    // strides built from it overflow.
    let step = if len <= 1 { step.signum() } else { step };
    let step = isize::try_from(step).map_err(|_| Error::unsupported(format!("slice step {step}")))?;
    Ok(SliceAxis { axis, start: start.max(0) as usize, step, len: len as usize })
}

pub(super) fn slice(ctx: &mut NodeCtx) -> Result<Vec<ValueRef>> {
    let x = ctx.x(0)?;
    let s = ctx.shape(x);
    let (starts, ends, axes, steps) = if ctx.opset() < 10 {
        let a = &ctx.attrs;
        (a.ints("starts")?, a.ints("ends")?, a.ints("axes")?, None)
    } else {
        (ctx.const_ints(1)?, ctx.const_ints(2)?, ctx.const_ints(3)?, ctx.const_ints(4)?)
    };
    let (starts, ends) = starts.zip(ends).ok_or_else(|| Error::invalid("Slice needs starts and ends"))?;
    let n = starts.len();
    let axes = axes.unwrap_or_else(|| (0..n as i64).collect());
    let steps = steps.unwrap_or_else(|| vec![1; n]);
    if ends.len() != n || axes.len() != n || steps.len() != n {
        return Err(Error::invalid("Slice starts, ends, axes and steps differ in length"));
    }
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let a = axis(axes[i], s.len())?;
        if out.iter().any(|o: &SliceAxis| o.axis == a) {
            return Err(Error::invalid(format!("Slice axis {a} repeats")));
        }
        out.push(slice_axis(a, s[a], starts[i], ends[i], steps[i])?);
    }
    out.retain(|o| !(o.start == 0 && o.step == 1 && o.len == s[o.axis]));
    if out.is_empty() {
        return Ok(vec![x]);
    }
    if out.iter().any(|o| o.len == 0) {
        return Err(Error::unsupported("a Slice that produces an empty tensor"));
    }
    ctx.emit(Op::Slice { axes: out }, &[Some(x)])
}

pub(super) fn gather(ctx: &mut NodeCtx) -> Result<Vec<ValueRef>> {
    let (x, idx) = (ctx.x(0)?, ctx.x(1)?);
    let a = axis(ctx.attrs.int_or("axis", 0)?, ctx.shape(x).len())?;
    ctx.emit(Op::Gather { axis: a }, &[Some(x), Some(idx)])
}

pub(super) fn tile(ctx: &mut NodeCtx) -> Result<Vec<ValueRef>> {
    let x = ctx.x(0)?;
    let repeats = ctx.const_ints(1)?.ok_or_else(|| Error::invalid("Tile needs repeats"))?;
    let repeats = to_usizes(&repeats, "repeats")?;
    if repeats.contains(&0) {
        return Err(Error::unsupported("Tile with a zero repeat"));
    }
    ctx.emit(Op::Tile { repeats }, &[Some(x)])
}

pub(super) fn expand(ctx: &mut NodeCtx) -> Result<Vec<ValueRef>> {
    let x = ctx.x(0)?;
    let shape = ctx.const_ints(1)?.ok_or_else(|| Error::invalid("Expand needs a shape"))?;
    let shape = to_usizes(&shape, "shape")?;
    ctx.emit(Op::Expand { shape }, &[Some(x)])
}

pub(super) fn pad(ctx: &mut NodeCtx) -> Result<Vec<ValueRef>> {
    let x = ctx.x(0)?;
    let rank = ctx.shape(x).len();
    let mode = ctx.attrs.string("mode")?.unwrap_or_else(|| "constant".into());
    let (pads, value, axes) = if ctx.opset() < 11 {
        let pads = ctx.attrs.ints("pads")?.or(ctx.attrs.ints("paddings")?);
        (pads, ctx.attrs.float_or("value", 0.0)?, None)
    } else {
        let value = ctx.const_input(2)?.map(|t| t.scalar_value()).transpose()?.unwrap_or(0.0) as f32;
        (ctx.const_ints(1)?, value, ctx.const_ints(3)?)
    };
    let pads = pads.ok_or_else(|| Error::invalid("Pad needs pads"))?;
    let axes = match axes {
        Some(a) => a.iter().map(|&a| axis(a, rank)).collect::<Result<Vec<_>>>()?,
        None => (0..rank).collect(),
    };
    if pads.len() != 2 * axes.len() {
        return Err(Error::invalid(format!("pads {pads:?} should have {} values", 2 * axes.len())));
    }
    if pads.iter().any(|&p| p < 0) {
        return Err(Error::unsupported(format!("negative pads {pads:?}")));
    }
    let (mut begin, mut end) = (vec![0; rank], vec![0; rank]);
    for (i, &a) in axes.iter().enumerate() {
        begin[a] = pads[i] as usize;
        end[a] = pads[i + axes.len()] as usize;
    }
    let mode = match mode.as_str() {
        "constant" => PadMode::Constant(value),
        "reflect" => PadMode::Reflect,
        "edge" => PadMode::Edge,
        other => return Err(Error::unsupported(format!("Pad mode '{other}'"))),
    };
    if begin.iter().chain(&end).all(|&p| p == 0) {
        return Ok(vec![x]);
    }
    ctx.emit(Op::Pad(Pad { mode, begin, end }), &[Some(x)])
}

pub(super) fn range(ctx: &mut NodeCtx) -> Result<Vec<ValueRef>> {
    let get = |i| -> Result<Tensor> { ctx.const_input(i)?.ok_or_else(|| Error::invalid("Range needs 3 inputs")) };
    let (start, limit, delta) = (get(0)?, get(1)?, get(2)?);
    let dtype = start.dtype();
    let (s, l, d) = (start.scalar_value()?, limit.scalar_value()?, delta.scalar_value()?);
    if d == 0.0 {
        return Err(Error::invalid("Range delta must not be 0"));
    }
    let n = ((l - s) / d).ceil().max(0.0) as usize;
    if n > (1 << 24) {
        return Err(Error::limit(format!("Range of {n} elements")));
    }
    let v: Vec<f64> = (0..n).map(|i| s + i as f64 * d).collect();
    let t = effc_ir::eval::from_f64(dtype, vec![n], v)?;
    debug_assert!(dtype != DType::Bool);
    Ok(vec![ctx.constant(0, t)?])
}

pub(super) fn cast(ctx: &mut NodeCtx) -> Result<Vec<ValueRef>> {
    let x = ctx.x(0)?;
    let to = ctx.attrs.int("to")?.ok_or_else(|| Error::invalid("Cast needs 'to'"))?;
    let to = crate::dtype_from_onnx(to as i32)?;
    if ctx.info(x).dtype == to {
        return Ok(vec![x]);
    }
    ctx.emit(Op::Cast { to }, &[Some(x)])
}
