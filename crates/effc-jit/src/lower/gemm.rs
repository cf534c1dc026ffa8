//! Gemm and MatMul: operands as strided matrices, computed by the product emitter
//! ([`crate::emit::gemm`]).

use effc_ir::op::{Dense, Gemm};
use effc_ir::{DType, Error, NodeId, Result};

use super::weights::column_scales;
use super::{Lowering, Weights};
use crate::emit::Base;
use crate::emit::gemm::{BatchDim, Mat, Product, ProductSpec};
use crate::layout::Buf;

/// `b` as a matrix whose rows and columns are its dims `r` and `c`.
fn mat_of(b: &Buf, r: usize, c: usize) -> Result<Mat> {
    let (Some(&rs), Some(&cs)) = (b.strides.get(r), b.strides.get(c)) else {
        return Err(Error::unsupported(format!("a matrix over dims {r} and {c} of {:?}", b.dims)));
    };
    Ok(Mat { base: b.base, offset: b.offset, rs, cs })
}

fn need_f32(b: &Buf) -> Result<()> {
    if b.dtype != DType::F32 {
        return Err(Error::unsupported(format!("matrix products over {} at run time", b.dtype)));
    }
    Ok(())
}

pub(super) fn gemm(l: &mut Lowering, id: NodeId, g: &Gemm) -> Result<()> {
    let a = l.input(id, 0)?;
    need_f32(&a)?;
    let out = l.output(id, 0)?;
    let (&[m, n], &[a0, a1]) = (out.dims.as_slice(), a.dims.as_slice()) else {
        return Err(Error::unsupported(format!("Gemm of {:?} into {:?} (matrices only)", a.dims, out.dims)));
    };
    let k = if g.trans_a { a0 } else { a1 };
    let a_mat = if g.trans_a { mat_of(&a, 1, 0)? } else { mat_of(&a, 0, 1)? };
    let c = match l.input_opt(id, 2)? {
        Some(c) if g.beta != 0.0 => {
            let cb = c.broadcast_to(&[m, n]);
            Some(mat_of(&cb, 0, 1)?)
        }
        _ => None,
    };
    let spec =
        ProductSpec { c, alpha: g.alpha, beta: g.beta, ..ProductSpec::new((m, n, k), a_mat, mat_of(&out, 0, 1)?) };
    let product = match l.const_tensor(id, 1) {
        Some(t) => {
            let data = t.f32_data();
            // B is K × N, stored N × K when transposed.
            if g.trans_b {
                let scales = column_scales(t, 0, n);
                let w = Weights::new(&data, [n, k], "Gemm weights")?;
                spec.with_const_b_int8(l, |r, c| w.at([c, r]), scales)
            } else {
                let scales = column_scales(t, 1, n);
                let w = Weights::new(&data, [k, n], "Gemm weights")?;
                spec.with_const_b_int8(l, |r, c| w.at([r, c]), scales)
            }
        }
        None => {
            let b = l.input(id, 1)?;
            need_f32(&b)?;
            spec.with_b(if g.trans_b { mat_of(&b, 1, 0)? } else { mat_of(&b, 0, 1)? })
        }
    };
    crate::emit::gemm::emit(l, &product)
}

pub(super) fn matmul(l: &mut Lowering, id: NodeId) -> Result<()> {
    let mut a = l.input(id, 0)?;
    let mut b = l.input(id, 1)?;
    need_f32(&a)?;
    need_f32(&b)?;
    let out_full = l.output(id, 0)?;
    // Promote 1-D operands to matrices, and view the output with those unit dims restored.
    let mut out = out_full.clone();
    let b_vector = b.dims.len() == 1;
    if let (&[len], &[stride]) = (a.dims.as_slice(), a.strides.as_slice()) {
        a = Buf { dims: vec![1, len], strides: vec![0, stride], ..a };
        let r = out.dims.len();
        out.dims.insert(r.saturating_sub(if b_vector { 0 } else { 1 }), 1);
        out.strides.insert(r.saturating_sub(if b_vector { 0 } else { 1 }), 0);
    }
    if let (&[len], &[stride]) = (b.dims.as_slice(), b.strides.as_slice()) {
        b = Buf { dims: vec![len, 1], strides: vec![stride, 0], ..b };
        out.dims.push(1);
        out.strides.push(0);
    }
    let (&[.., m, k], &[.., n], [batch_dims @ .., _, _]) = (a.dims.as_slice(), b.dims.as_slice(), out.dims.as_slice())
    else {
        return Err(Error::unsupported(format!("MatMul of {:?} and {:?} into {:?}", a.dims, b.dims, out.dims)));
    };
    let ab = a.broadcast_to(&[batch_dims, &[m, k]].concat());
    let bb_const = l.const_tensor(id, 1).filter(|t| t.shape().len() == 2);
    let bb = b.broadcast_to(&[batch_dims, &[k, n]].concat());
    let nb = batch_dims.len();
    // ab, bb and out have the batch dims first, then two more.
    let batch = batch_dims
        .iter()
        .zip(&ab.strides)
        .zip(&bb.strides)
        .zip(&out.strides)
        .map(|(((&extent, &a_stride), &b_stride), &out_stride)| {
            let b_stride = if bb_const.is_some() { 0 } else { b_stride };
            BatchDim { extent, a: a_stride, b: b_stride, out: out_stride, c: 0 }
        })
        .collect();
    let spec =
        ProductSpec { batch, ..ProductSpec::new((m, n, k), mat_of(&ab, nb, nb + 1)?, mat_of(&out, nb, nb + 1)?) };
    let product = match bb_const {
        Some(t) => {
            let data = t.f32_data();
            let w = Weights::new(&data, [k, n], "MatMul weights")?;
            spec.with_const_b(l, |r, c| w.at([r, c]))
        }
        None => spec.with_b(mat_of(&bb, nb, nb + 1)?),
    };
    crate::emit::gemm::emit(l, &product)
}

/// Dense layer `d` applied to `rows` channels-last pixels at `a`, into `out`: a product
/// with the layer's weights ([out, in], stored as B = [in] × [out]) and bias, its
/// activation in the epilogue and an optional residual (same layout as `out`) added
/// before it.
pub(super) fn dense_product(
    l: &mut Lowering,
    d: &Dense,
    (a, rows): (Base, usize),
    out: Base,
    residual: Option<Base>,
) -> Result<Product> {
    let (k, n) = (d.inputs(), d.outputs());
    let row = |base: Base, width: usize| Mat { base, offset: 0, rs: width as isize, cs: 1 };
    let spec = ProductSpec {
        c: Some(Mat { base: l.const_f32(&d.b.f32_data()), offset: 0, rs: 0, cs: 1 }),
        beta: 1.0,
        residual: residual.map(|r| row(r, n)),
        act: d.act,
        ..ProductSpec::new((rows, n, k), row(a, k), row(out, n))
    };
    let data = d.w.f32_data();
    let w = Weights::new(&data, [n, k], "dense layer weights")?;
    Ok(spec.with_const_b_int8(l, |c, r| w.at([r, c]), column_scales(&d.w, 0, n)))
}
