//! Ops that only move elements: all are strided copies between views.

use cranelift_codegen::ir::{InstBuilder, types};
use effc_ir::op::{Pad, PadMode, SliceAxis};
use effc_ir::{DType, Error, NodeId, Result};

use super::{Lowering, loaded};
use crate::emit::Base;
use crate::layout::{Buf, row_major};
use crate::strided::{Nest, Operand};

pub(super) fn reshape(l: &mut Lowering, id: NodeId) -> Result<()> {
    let x = l.input(id, 0)?;
    let out = l.output(id, 0)?;
    // Reinterpreting needs the elements in row-major order; copy them there first if the
    // input is stored channels-last.
    let flat = if x.is_row_major() {
        x
    } else {
        let tmp = Buf::new(Base::Arena(l.scratch(id, 0)?), x.dtype, x.dims.clone(), row_major(&x.dims));
        l.copy(&tmp, &x)?;
        tmp
    };
    let view = Buf { dims: out.dims.clone(), strides: row_major(&out.dims), ..flat };
    l.copy(&out, &view)
}

pub(super) fn transpose(l: &mut Lowering, id: NodeId, perm: &[usize]) -> Result<()> {
    let x = l.input(id, 0)?;
    let out = l.output(id, 0)?;
    l.copy(&out, &x.permute(perm))
}

pub(super) fn slice(l: &mut Lowering, id: NodeId, axes: &[SliceAxis]) -> Result<()> {
    let mut x = l.input(id, 0)?;
    for a in axes {
        let (Some(dim), Some(stride)) = (x.dims.get_mut(a.axis), x.strides.get_mut(a.axis)) else {
            return Err(Error::unsupported(format!("Slice along axis {} of a rank-{} tensor", a.axis, x.dims.len())));
        };
        x.offset += a.start as isize * *stride;
        *stride *= a.step;
        *dim = a.len;
    }
    let out = l.output(id, 0)?;
    l.copy(&out, &x)
}

pub(super) fn concat(l: &mut Lowering, id: NodeId, axis: usize) -> Result<()> {
    let out = l.output(id, 0)?;
    let n = l.g.inputs(id).len();
    let mut at = 0;
    for i in 0..n {
        let x = l.input(id, i)?;
        let &len =
            x.dims.get(axis).ok_or_else(|| Error::unsupported(format!("Concat along axis {axis} of {:?}", x.dims)))?;
        l.copy(&out.narrow(axis, at, len), &x)?;
        at += len;
    }
    Ok(())
}

pub(super) fn split(l: &mut Lowering, id: NodeId, axis: usize, sizes: &[usize]) -> Result<()> {
    let x = l.input(id, 0)?;
    let mut at = 0;
    for (k, &len) in sizes.iter().enumerate() {
        let out = l.output(id, k)?;
        l.copy(&out, &x.narrow(axis, at, len))?;
        at += len;
    }
    Ok(())
}

pub(super) fn expand(l: &mut Lowering, id: NodeId) -> Result<()> {
    let x = l.input(id, 0)?;
    let out = l.output(id, 0)?;
    l.copy(&out, &x)
}

/// Each output dim of size r·d is walked as two loop dims (repeat, within), so the input
/// is read with stride 0 across repeats.
pub(super) fn tile(l: &mut Lowering, id: NodeId, repeats: &[usize]) -> Result<()> {
    let x = l.input(id, 0)?;
    let out = l.output(id, 0)?;
    if x.dims.len() != repeats.len() || out.dims.len() != repeats.len() {
        return Err(Error::unsupported(format!(
            "Tile of {:?} into {:?} by {} repeats",
            x.dims,
            out.dims,
            repeats.len()
        )));
    }
    let (mut dims, mut x_strides, mut out_strides) = (Vec::new(), Vec::new(), Vec::new());
    for (((&r, &within), &xs), &os) in repeats.iter().zip(&x.dims).zip(&x.strides).zip(&out.strides) {
        dims.extend([r, within]);
        x_strides.extend([0, xs]);
        out_strides.extend([within as isize * os, os]);
    }
    let nest = Nest {
        dims,
        inputs: vec![Operand { base: x.base, dtype: x.dtype, offset: x.offset, strides: x_strides }],
        out: Operand { base: out.base, dtype: out.dtype, offset: out.offset, strides: out_strides },
        accumulate: false,
    };
    l.nest(&nest, &|_, _, ins, _| {
        let [x] = loaded(ins);
        x
    })
}

/// Cast at run time: a copy within one type; f32 to int32 truncating toward zero
/// (saturated, NaN to 0: ONNX leaves both undefined), and uint8, int8 and int32 to f32.
pub(super) fn cast(l: &mut Lowering, id: NodeId, to: DType) -> Result<()> {
    let x = l.input(id, 0)?;
    let out = l.output(id, 0)?;
    let from = x.dtype;
    match (from, to) {
        _ if from == to => l.copy(&out, &x),
        (DType::F32, DType::I32) => l.nest(&Nest::over(&out, &[&x]), &|kb, _, ins, _| {
            let [x] = loaded(ins);
            kb.b.ins().fcvt_to_sint_sat(types::I32, x)
        }),
        (DType::U8 | DType::I8 | DType::I32, DType::F32) => l.nest(&Nest::over(&out, &[&x]), &move |kb, _, ins, _| {
            let [x] = loaded(ins);
            let x = match from {
                DType::U8 => kb.b.ins().uextend(types::I32, x),
                DType::I8 => kb.b.ins().sextend(types::I32, x),
                _ => x,
            };
            kb.b.ins().fcvt_from_sint(types::F32, x)
        }),
        _ => Err(Error::unsupported(format!("casting {from} to {to} at run time"))),
    }
}

/// Gather with constant indices: one hyperplane copy per index.
pub(super) fn gather(l: &mut Lowering, id: NodeId, axis: usize) -> Result<()> {
    let idx = l.const_tensor(id, 1).ok_or_else(|| Error::unsupported("Gather with run-time indices"))?.clone();
    let x = l.input(id, 0)?;
    let out = l.output(id, 0)?;
    let &dim =
        x.dims.get(axis).ok_or_else(|| Error::unsupported(format!("Gather along axis {axis} of {:?}", x.dims)))?;
    let dim = dim as i64;
    let positions = idx.to_i64_vec()?;
    // Output dims: x[..axis] ++ idx.shape ++ x[axis+1..]. Walk index positions row-major.
    let idx_strides = row_major(idx.shape());
    for (flat, &raw) in positions.iter().enumerate() {
        let j = if raw < 0 { raw + dim } else { raw };
        if j < 0 || j >= dim {
            return Err(Error::invalid(format!("Gather index {raw} out of range for a dim of {dim}")));
        }
        let src = x.select(axis, j as usize);
        let mut dst = out.clone();
        for (k, (&stride, &size)) in idx_strides.iter().zip(idx.shape()).enumerate().rev() {
            let coord = (flat as isize / stride) as usize % size;
            dst = dst.select(axis + k, coord);
        }
        l.copy(&dst, &src)?;
    }
    Ok(())
}

/// Where a reflected or edge-padded coordinate reads from.
fn pad_source(mode: PadMode, p: isize, n: isize) -> isize {
    match mode {
        PadMode::Edge => p.clamp(0, n - 1),
        _ => {
            let period = 2 * (n - 1).max(1);
            let m = p.rem_euclid(period);
            if m < n { m } else { period - m }
        }
    }
}

pub(super) fn pad(l: &mut Lowering, id: NodeId, p: &Pad) -> Result<()> {
    let x = l.input(id, 0)?;
    let out = l.output(id, 0)?;
    let rank = x.dims.len();
    if p.begin.len() != rank || out.dims.len() != rank || out.strides.len() != rank {
        return Err(Error::unsupported(format!("Pad of {:?} into {:?} with pads {:?}", x.dims, out.dims, p.begin)));
    }
    if let PadMode::Constant(v) = p.mode {
        l.fill(&out, v as f64)?;
    }
    // (pads before, input size, output size) of each dim.
    let dims: Vec<(usize, usize, usize)> =
        p.begin.iter().zip(&x.dims).zip(&out.dims).map(|((&b, &n), &o)| (b, n, o)).collect();
    let mut interior = out.clone();
    for (d, &(begin, n, _)) in dims.iter().enumerate() {
        interior = interior.narrow(d, begin, n);
    }
    l.copy(&interior, &x)?;
    if matches!(p.mode, PadMode::Constant(_)) {
        return Ok(());
    }
    // Fill the borders dim by dim, copying hyperplanes of the output onto themselves;
    // dims already done are copied at full (padded) extent.
    // `region` has the output's rank and strides (checked above).
    let mut region = interior;
    for (d, &(begin, len, out_len)) in dims.iter().enumerate() {
        let (Some(&stride), Some(dim)) = (region.strides.get(d), region.dims.get_mut(d)) else {
            return Err(Error::other(format!("Pad: no dim {d} in {:?}", out.dims)));
        };
        region.offset -= begin as isize * stride;
        *dim = out_len;
        let n = len as isize;
        for o in (0..begin).chain(begin + len..out_len) {
            let src = pad_source(p.mode, o as isize - begin as isize, n) as usize + begin;
            let dst_plane = region.select(d, o);
            let src_plane = region.select(d, src);
            l.copy(&dst_plane, &src_plane)?;
        }
    }
    Ok(())
}
