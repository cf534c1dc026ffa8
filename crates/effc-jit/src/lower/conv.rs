//! Convolutions and sliding-window pools on channels-last tensors.
//!
//! Dense 1×1 convolutions without padding or stride are matrix products of the
//! [pixels × C_in] input with the packed [C_in × C_out] weights. Depthwise convolutions and
//! pools vectorise over channels. Every other convolution walks output pixels and
//! vectorises over the output channels of a group. 1-D inputs run as 2-D with H = 1.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{InstBuilder, StackSlotData, StackSlotKind, Value, types};
use cranelift_frontend::Variable;
use effc_ir::op::{Conv, Op, Pool};
use effc_ir::{DType, Error, Graph, NodeId, Result};

use super::{Lowering, Weights};
use crate::emit::gemm::{self, Mat, ProductSpec};
use crate::emit::window::{
    Epilogue, Geom, Rows, Window, byte_strides, geom, new_var, residual_pointer, row_table, spatial2, strides4, taps,
    window,
};
use crate::emit::{Base, Kb};
use crate::layout::Buf;

/// Views a rank-3 tensor [N, C, L] as [N, C, 1, L].
fn as_4d(b: &Buf) -> Buf {
    if b.dims.len() == 4 {
        return b.clone();
    }
    let mut v = b.clone();
    v.dims.insert(2, 1);
    v.strides.insert(2, 0);
    v
}

fn check_rank(x: &Buf, what: &str) -> Result<()> {
    if !matches!(x.dims.len(), 3 | 4) {
        return Err(Error::unsupported(format!("{}-D {what} (effc runs 1-D and 2-D)", x.dims.len() - 2)));
    }
    if x.dtype != DType::F32 {
        return Err(Error::unsupported(format!("{what} over {}", x.dtype)));
    }
    Ok(())
}

pub(super) fn conv(l: &mut Lowering, id: NodeId, c: &Conv) -> Result<()> {
    let x = l.input(id, 0)?;
    check_rank(&x, "convolution")?;
    let wt = l.const_tensor(id, 1).ok_or_else(|| Error::unsupported("Conv with run-time weights"))?.clone();
    let (x4, out4) = (as_4d(&x), as_4d(&l.output(id, 0)?));
    let g = geom(&x4, &out4, &c.kernel, &c.strides, &c.dilations, &c.pads_begin)?;
    // The kernels read M bias values.
    let bias: Vec<f32> = match l.const_tensor(id, 2) {
        Some(t) => t.to_f32_vec(),
        None if l.g.input(id, 2).is_some() => return Err(Error::unsupported("Conv with a run-time bias")),
        None => vec![0.0; g.m],
    };
    if bias.len() != g.m {
        return Err(Error::unsupported(format!("a Conv bias of {} values for {} output channels", bias.len(), g.m)));
    }
    let epi = Epilogue { residual: l.input_opt(id, 3)?.map(|r| as_4d(&r)), act: c.act, ..Epilogue::default() };
    conv_bufs(l, (&x4, &out4), c, &wt, &bias, epi)
}

/// A convolution of `x` into `out` (4-D views) with constant weights `wt` and `bias` (one
/// value per output channel), `epi` after the sum: the conv op's lowering, which fused
/// blocks also use for their dense convs.
pub(super) fn conv_bufs(
    l: &mut Lowering,
    (x4, out4): (&Buf, &Buf),
    c: &Conv,
    wt: &effc_ir::Tensor,
    bias: &[f32],
    epi: Epilogue,
) -> Result<()> {
    let (x4, out4) = (x4.clone(), out4.clone());
    let g = geom(&x4, &out4, &c.kernel, &c.strides, &c.dilations, &c.pads_begin)?;
    let groups = c.group;
    if groups == 0 || g.c % groups != 0 || g.m % groups != 0 {
        return Err(Error::unsupported(format!("{groups} groups of {} input and {} output channels", g.c, g.m)));
    }
    let (icg, ocg) = (g.c / groups, g.m / groups);
    let data = wt.f32_data();
    let w = Weights::new(&data, [g.m, icg, g.kh, g.kw], "Conv weights")?;
    let w_at = |oc: usize, ic: usize, kh: usize, kw: usize| w.at([oc, ic, kh, kw]);
    let pointwise = g.kh == 1
        && g.kw == 1
        && g.sh == 1
        && g.sw == 1
        && g.ph == 0
        && g.pw == 0
        && c.pads_end.iter().all(|&p| p == 0)
        && groups == 1;
    let (xs, os) = (strides4(&x4)?, strides4(&out4)?);
    let dense_rows = xs[1] == 1 && os[1] == 1;
    if pointwise
        && dense_rows
        && xs[3] == g.c as isize
        && os[3] == g.m as isize
        && xs[2] == (g.w * g.c) as isize
        && os[2] == (g.w * g.m) as isize
        && xs[0] == (g.h * g.w * g.c) as isize
        && os[0] == (g.h * g.w * g.m) as isize
    {
        // [N·H·W, C] × [C, M] + bias.
        let bias_base = l.const_f32(bias);
        if epi.residual.as_ref().is_some_and(|r| r.strides != out4.strides) {
            return Err(Error::unsupported("a residual stored in another layout than the conv output"));
        }
        let residual = match &epi.residual {
            Some(r) => {
                let [_, rc, _, rw] = strides4(r)?;
                Some(Mat { base: r.base, offset: r.offset, rs: rw, cs: rc })
            }
            None => None,
        };
        let a = Mat { base: x4.base, offset: x4.offset, rs: g.c as isize, cs: 1 };
        let out = Mat { base: out4.base, offset: out4.offset, rs: g.m as isize, cs: 1 };
        let spec = ProductSpec {
            c: Some(Mat { base: bias_base, offset: 0, rs: 0, cs: 1 }),
            beta: 1.0,
            residual,
            act: epi.act,
            ..ProductSpec::new((g.n * g.h * g.w, g.m, g.c), a, out)
        };
        let scales = super::weights::column_scales(wt, 0, g.m);
        let product = spec.with_const_b_int8(l, |ic, oc| w_at(oc, ic, 0, 0), scales);
        return gemm::emit(l, &product);
    }
    if groups == g.c && groups == g.m && dense_rows {
        return depthwise(l, &x4, &out4, c, wt, bias, epi);
    }
    if groups == 1 && im2col_conv(l, &x4, &out4, g, &w_at, bias, &epi)? {
        return Ok(());
    }
    let bias_base = l.const_f32(bias);
    // General grouped conv: weights as [group][kh][kw][icg][ocg].
    let mut packed = Vec::with_capacity(data.len());
    for gi in 0..groups {
        for kh in 0..g.kh {
            for kw in 0..g.kw {
                for ic in 0..icg {
                    for oc in 0..ocg {
                        packed.push(w_at(gi * ocg + oc, ic, kh, kw));
                    }
                }
            }
        }
    }
    let w_base = l.const_f32(&packed);
    grouped(l, (&x4, &out4), g, GroupedWeights { groups, w: w_base, bias: bias_base }, epi)
}

/// Largest patch (one output row's receptive fields) gathered on the stack.
const PATCH_BYTES: usize = 128 << 10;

/// A dense convolution as, per output row, an im2col patch [OW × KH·KW·C] on the stack
/// times the packed weights [KH·KW·C × M], through the GEMM micro-kernel with the bias,
/// residual and activation in its epilogue. Returns false (nothing emitted) when the
/// micro-kernels are off or the layout does not suit them.
fn im2col_conv(
    l: &mut Lowering,
    x: &Buf,
    out: &Buf,
    g: Geom,
    w_at: &dyn Fn(usize, usize, usize, usize) -> f32,
    bias: &[f32],
    epi: &Epilogue,
) -> Result<bool> {
    let (xs, os) = (byte_strides(x)?, byte_strides(out)?);
    let dense = |s: [i64; 4], c: usize| s[1] == 4 && s[3] == c as i64 * 4;
    let k = g.kh * g.kw * g.c;
    let residual_ok = epi.residual.as_ref().map(byte_strides).transpose()?.is_none_or(|rs| rs == os);
    let channels_last = dense(xs, g.c);
    let plane = if channels_last { None } else { reads_planes(xs, g) };
    if l.micro.is_none() || !(channels_last || plane.is_some()) || !dense(os, g.m) || !residual_ok {
        return Ok(false);
    }
    if !patch_fits(g.ow, k) {
        return Ok(false);
    }
    let mut packed = Vec::with_capacity(k * g.m);
    for i in 0..g.kh {
        for tap in 0..g.kw * g.c {
            let (j, ci) = patch_tap(g, channels_last, tap);
            packed.extend((0..g.m).map(|oc| w_at(oc, ci, i, j)));
        }
    }
    let row = |base: Base| Mat { base, offset: 0, rs: g.m as isize, cs: 1 };
    let patch = Mat { base: Base::Arena(0), offset: 0, rs: k as isize, cs: 1 };
    let spec = ProductSpec {
        c: Some(Mat { base: l.const_f32(bias), offset: 0, rs: 0, cs: 1 }),
        beta: 1.0,
        residual: epi.residual.as_ref().map(|r| row(r.base)),
        act: epi.act,
        ..ProductSpec::new((g.ow, g.m, k), patch, row(out.base))
    };
    let mm = spec.with_b(Mat { base: l.const_f32(&packed), offset: 0, rs: g.m as isize, cs: 1 });
    let Some(micro) = gemm::micro(l, &mm) else { return Ok(false) };
    let im2col = |border_only| effc_kernels::Im2colParams {
        c: g.c,
        plane: plane.unwrap_or(0),
        win: g.row_window(),
        border_only,
    };
    let params = l.const_struct(im2col(false));
    let in_place = InPlace::plan(l, micro, g, xs, plane).map(|m| (m, l.const_struct(im2col(true))));
    let (x, out, res) = (x.clone(), out.clone(), epi.residual.clone());
    let b = mm.b.base;
    l.kernel(g.n * g.oh, move |kb| {
        let xb = kb.addr(x.base, x.offset as i64 * 4);
        let ob = kb.addr(out.base, out.offset as i64 * 4);
        let rb = res.as_ref().map(|r| kb.addr(r.base, r.offset as i64 * 4));
        let wb = kb.addr(b, 0);
        let patch =
            kb.b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, (g.ow * k * 4) as u32, 6));
        let (lo, hi) = (kb.lo, kb.hi);
        kb.for_range(lo, hi, 1, |kb, r| {
            let n = kb.b.ins().udiv_imm_u(r, g.oh as i64);
            let oh = kb.b.ins().urem_imm_u(r, g.oh as i64);
            let x_n = kb.offset(xb, n, xs[0]);
            let table = row_table(kb, g, Rows::Strided, (x_n, xs[2]), oh);
            let patch_ptr = kb.b.ins().stack_addr(types::I64, patch, 0);
            let at = |kb: &mut Kb, base: Value| {
                let p = kb.offset(base, n, os[0]);
                kb.offset(p, oh, os[2])
            };
            let o_row = at(kb, ob);
            let res_row = rb.map(|rb| at(kb, rb));
            // Output pixels `from..to` of the row, their A rows at `a`.
            let product = |kb: &mut Kb, m: gemm::Micro, a: Value, (from, to): (usize, usize)| {
                if from < to {
                    let skip = from as i64 * os[3];
                    let out = kb.b.ins().iadd_imm_s(o_row, skip);
                    let res = res_row.map(|p| kb.b.ins().iadd_imm_s(p, skip));
                    let ptrs = gemm::Ptrs { a, b: wb, out, c: None, res, ks: None };
                    let rows = kb.ic((to - from) as i64);
                    gemm::call_micro(kb, m, &ptrs, rows);
                }
            };
            let gather_all = |kb: &mut Kb| {
                let params = kb.addr(Base::Const(params), 0);
                kb.call_c(effc_kernels::im2col_row as *const () as usize, &[table, patch_ptr, params]);
                product(kb, micro, patch_ptr, (0, g.ow));
            };
            let Some((plan, border)) = in_place else {
                gather_all(kb);
                return;
            };
            // Rows whose kernel rows are all inside the input: the border pixels through
            // the patch, the interior straight from the input.
            let row = kb.b.ins().iadd_imm_s(oh, -(plan.rows.0 as i64));
            let inside = kb.b.ins().icmp_imm_s(IntCC::UnsignedLessThan, row, (plan.rows.1 - plan.rows.0) as i64);
            kb.if_else(
                inside,
                |kb| {
                    let params = kb.addr(Base::Const(border), 0);
                    kb.call_c(effc_kernels::im2col_row as *const () as usize, &[table, patch_ptr, params]);
                    let (lo, hi) = plan.columns;
                    product(kb, micro, patch_ptr, (0, lo));
                    let tail = kb.b.ins().iadd_imm_s(patch_ptr, (hi * k * 4) as i64);
                    product(kb, micro, tail, (hi, g.ow));
                    // The first kernel row of this output row, at its first interior pixel.
                    let top = kb.b.ins().imul_imm_s(oh, g.sh as i64);
                    let top = kb.b.ins().iadd_imm_s(top, -(g.ph as i64));
                    let a = kb.offset(x_n, top, xs[2]);
                    let a = kb.b.ins().iadd_imm_s(a, plan.first_pixel_bytes as i64);
                    product(kb, plan.micro, a, (lo, hi));
                },
                gather_all,
            );
        });
    })?;
    Ok(true)
}

/// How an im2col conv reads the interior of its input in place: the product's A is the
/// input itself, each patch column one fixed offset from the pixel's first tap
/// ([`effc_kernels::GemmParams::a_taps`]), so no patch is gathered for the output pixels
/// whose every tap lies inside the input. Those pixels are `columns` of the output rows
/// `rows`; the rest keep the patch.
#[derive(Clone, Copy)]
struct InPlace {
    micro: gemm::Micro,
    rows: (usize, usize),
    columns: (usize, usize),
    /// Bytes from a kernel row's start to the first interior pixel's first tap.
    first_pixel_bytes: usize,
}

impl InPlace {
    /// `None` where no output pixel qualifies or the product cannot read taps (int8
    /// weights). `plane` is as for the patch: channel planes apart, or channels last.
    fn plan(l: &mut Lowering, micro: gemm::Micro, g: Geom, xs: [i64; 4], plane: Option<usize>) -> Option<InPlace> {
        let vertical = effc_kernels::RowWindow { w: g.h, ow: g.oh, kh: 1, kw: g.kh, sw: g.sh, dw: g.dil_h, pw: g.ph };
        let (rows, columns) = (vertical.interior(), g.row_window().interior());
        if rows.0 >= rows.1 || columns.0 >= columns.1 {
            return None;
        }
        let row_stride = usize::try_from(xs[2] / 4).ok()?;
        // Elements between a pixel's channels and between adjacent pixels.
        let (channel, pixel) = match plane {
            Some(plane) => (plane, 1),
            None => (1, g.c),
        };
        let mut taps = Vec::with_capacity(g.kh * g.kw * g.c);
        for i in 0..g.kh {
            let row = i * g.dil_h * row_stride;
            for tap in 0..g.kw * g.c {
                let (j, ch) = patch_tap(g, plane.is_none(), tap);
                taps.push(row + ch * channel + j * g.dil_w * pixel);
            }
        }
        let micro = micro.with_taps(l, g.sw * pixel, &taps)?;
        let first_pixel_bytes = (columns.0 * g.sw - g.pw) * pixel * 4;
        Some(InPlace { micro, rows, columns, first_pixel_bytes })
    }
}

/// Kernel column and input channel of the `tap`-th patch column of a kernel row: the
/// patch's columns, and so the packed weights' rows, are (kernel row, column, channel)
/// from channels-last rows and (kernel row, channel, column) from channel planes (see
/// `im2col_row`).
fn patch_tap(g: Geom, channels_last: bool, tap: usize) -> (usize, usize) {
    if channels_last { (tap / g.c, tap % g.c) } else { (tap % g.kw, tap / g.kw) }
}

/// The distance in elements between the channel planes of `x` (byte strides `xs`) if it
/// is a dense channels-first image, which the im2col kernel reads in place: the model's
/// NCHW input, not copied into channels-last first.
fn reads_planes(xs: [i64; 4], g: Geom) -> Option<usize> {
    let (w, hw) = (g.w as i64 * 4, (g.h * g.w) as i64 * 4);
    (xs[3] == 4 && xs[2] == w && xs[1] == hw).then_some(g.h * g.w)
}

/// Whether dense conv `id` reads its input from the caller's buffer in the model's own
/// layout (row-major NCHW) without a copy: it takes the im2col path, which gathers from
/// channel planes. `Lowering` then leaves a model input that only such convs read where
/// the caller put it.
pub(super) fn reads_input_in_place(g: &Graph, micro: Option<effc_kernels::Isa>, id: NodeId) -> bool {
    let Op::Conv(c) = &g.node(id).op else { return false };
    let (Some(x), Some(out)) = (g.input(id, 0), g.node(id).outputs.first()) else { return false };
    let (&[_, ci, _, _], &[_, _, _, ow], &[kh, kw]) =
        (g.value(x).shape.as_slice(), out.shape.as_slice(), c.kernel.as_slice())
    else {
        return false;
    };
    micro.is_some() && c.group == 1 && patch_fits(ow, kh * kw * ci)
}

/// Whether one output row's patch (`ow` rows of `k` values) fits on the stack.
fn patch_fits(ow: usize, k: usize) -> bool {
    ow.saturating_mul(k).saturating_mul(4) <= PATCH_BYTES
}

/// Depthwise conv of channels-last `x` into `out`, weights [C, 1, kh, kw].
pub(super) fn depthwise(
    l: &mut Lowering,
    x: &Buf,
    out: &Buf,
    c: &Conv,
    w: &effc_ir::Tensor,
    bias: &[f32],
    epi: Epilogue,
) -> Result<()> {
    let g = geom(x, out, &c.kernel, &c.strides, &c.dilations, &c.pads_begin)?;
    let (w, bias) = depthwise_weights(l, g, w, bias)?;
    window(l, x, out, g, Window::Depthwise { w, bias }, epi)
}

/// Depthwise weights packed as [kh][kw][C] (a vector of channels is one load), and bias:
/// the bases of a [`Window::Depthwise`].
pub(super) fn depthwise_weights(l: &mut Lowering, g: Geom, w: &effc_ir::Tensor, bias: &[f32]) -> Result<(Base, Base)> {
    let data = w.f32_data();
    let wv = Weights::new(&data, [g.c, g.kh, g.kw], "depthwise weights")?;
    let packed: Vec<f32> = (0..g.kh)
        .flat_map(|kh| (0..g.kw).flat_map(move |kw| (0..g.c).map(move |ch| (kh, kw, ch))))
        .map(|(kh, kw, ch)| wv.at([ch, kh, kw]))
        .collect();
    Ok((l.const_f32(&packed), l.const_f32(bias)))
}

/// A grouped conv's packed weights ([group][kh][kw][icg][ocg]) and bias.
struct GroupedWeights {
    groups: usize,
    w: Base,
    bias: Base,
}

/// Generic convolution: per output pixel and group, vectors of output channels.
fn grouped(l: &mut Lowering, (x, out): (&Buf, &Buf), g: Geom, weights: GroupedWeights, epi: Epilogue) -> Result<()> {
    let GroupedWeights { groups, w, bias } = weights;
    let (icg, ocg) = (g.c / groups, g.m / groups);
    let (xs, os) = (byte_strides(x)?, byte_strides(out)?);
    let rs = epi.residual.as_ref().map(byte_strides).transpose()?;
    // Unit channel strides (4 bytes).
    let vec_ok = os[1] == 4 && rs.is_none_or(|s| s[1] == 4);
    let (x, out) = (x.clone(), out.clone());
    l.kernel(g.n * g.oh, move |kb| {
        let xb = kb.addr(x.base, x.offset as i64 * 4);
        let ob = kb.addr(out.base, out.offset as i64 * 4);
        let wb = kb.addr(w, 0);
        let bb = kb.addr(bias, 0);
        let rb = epi.residual_at(kb, rs);
        let rs1 = rs.map_or(0, |s| s[1]);
        let (lo, hi) = (kb.lo, kb.hi);
        kb.for_range(lo, hi, 1, |kb, r| {
            let n = kb.b.ins().udiv_imm_u(r, g.oh as i64);
            let oh = kb.b.ins().urem_imm_u(r, g.oh as i64);
            let x_n = kb.offset(xb, n, xs[0]);
            let o_n = kb.offset(ob, n, os[0]);
            let o_row = kb.offset(o_n, oh, os[2]);
            kb.for_n(g.ow, |kb, ow| {
                let o_px = kb.offset(o_row, ow, os[3]);
                let r_px = residual_pointer(kb, rb, n, oh, ow);
                kb.for_n(groups, |kb, gi| {
                    let r_g = r_px.map(|p| kb.offset(p, gi, ocg as i64 * rs1));
                    let x_g = kb.offset(x_n, gi, icg as i64 * xs[1]);
                    let o_g = kb.offset(o_px, gi, ocg as i64 * os[1]);
                    let w_g = kb.offset(wb, gi, (g.kh * g.kw * icg * ocg * 4) as i64);
                    let b_g = kb.offset(bb, gi, (ocg * 4) as i64);
                    // Blocks of output channels: runtime loop over 8-wide blocks, then the rest.
                    let block = if vec_ok { 8 } else { 1 };
                    let mut pieces: Vec<(usize, usize, bool)> = Vec::new(); // (start, lanes, vector)
                    let full = if vec_ok { ocg / 8 } else { 0 };
                    let mut start = full * 8;
                    if vec_ok && ocg - start >= 4 {
                        pieces.push((start, 4, true));
                        start += 4;
                    }
                    for s in start..ocg {
                        pieces.push((s, 1, false));
                    }
                    let one = |kb: &mut Kb, oc0: Value, lanes: usize, vector: bool| {
                        let ty = if vector { types::F32X4 } else { types::F32 };
                        let nv = if vector { lanes / 4 } else { 1 };
                        let o_c = kb.offset(o_g, oc0, os[1]);
                        let b_c = kb.offset(b_g, oc0, 4);
                        let w_c = kb.offset(w_g, oc0, 4);
                        let accs: Vec<Variable> = (0..nv)
                            .map(|j| {
                                let b = kb.load_const(ty, b_c, (j * 16) as i32);
                                new_var(kb, ty, b)
                            })
                            .collect();
                        taps(kb, g, oh, ow, xs, Rows::Strided, &mut |kb, off, tap, _| {
                            let xp = kb.b.ins().iadd(x_g, off);
                            let wp = kb.offset(w_c, tap, (icg * ocg * 4) as i64);
                            kb.for_n(icg, |kb, ic| {
                                let xv = kb.offset(xp, ic, xs[1]);
                                let xv = kb.load(types::F32, xv, 0);
                                let xv = if vector { kb.b.ins().splat(ty, xv) } else { xv };
                                let wr = kb.offset(wp, ic, (ocg * 4) as i64);
                                for (j, &acc) in accs.iter().enumerate() {
                                    let wv = kb.load_const(ty, wr, (j * 16) as i32);
                                    let a = kb.b.use_var(acc);
                                    let a = kb.fma(xv, wv, a);
                                    kb.b.def_var(acc, a);
                                }
                            });
                        });
                        let r_c = r_g.map(|p| kb.offset(p, oc0, rs1));
                        for (j, &acc) in accs.iter().enumerate() {
                            let v = kb.b.use_var(acc);
                            let v = epi.apply(kb, v, r_c, (j as i64 * 4 * rs1) as i32);
                            kb.store(v, o_c, (j as i64 * 4 * os[1]) as i32);
                        }
                    };
                    if full > 0 {
                        kb.for_n(full, |kb, blk| {
                            let oc0 = kb.b.ins().imul_imm_s(blk, block as i64);
                            one(kb, oc0, 8, true);
                        });
                    }
                    for (s, lanes, vector) in pieces {
                        let oc0 = kb.ic(s as i64);
                        one(kb, oc0, lanes, vector);
                    }
                });
            });
        });
    })
}

pub(super) fn pool(l: &mut Lowering, id: NodeId, p: &Pool) -> Result<()> {
    let x = l.input(id, 0)?;
    check_rank(&x, "pooling")?;
    let (x4, out4) = (as_4d(&x), as_4d(&l.output(id, 0)?));
    // Taps past input + padding count for nothing, not even the divisor: a window wider
    // than that (a pooler whose kernel = stride = 2560 over 7×7) keeps only the taps the
    // first window can reach, so the unrolled window stays the size of the input.
    let spatial = x.dims.get(2..).unwrap_or_default();
    let kernel: Vec<usize> = (p.kernel.iter().zip(spatial).enumerate())
        .map(|(i, (&k, &size))| {
            let pads = p.pads_begin.get(i).copied().unwrap_or(0) + p.pads_end.get(i).copied().unwrap_or(0);
            k.min((size + pads).div_ceil(p.dilations.get(i).copied().unwrap_or(1).max(1)))
        })
        .collect();
    let g = geom(&x4, &out4, &kernel, &p.strides, &p.dilations, &p.pads_begin)?;
    let (pad_h_end, pad_w_end) = spatial2(&p.pads_end, 0)?;
    let op = Window::Pool { kind: p.kind, count_include_pad: p.count_include_pad, pad_h_end, pad_w_end };
    window(l, &x4, &out4, g, op, Epilogue::default())
}
