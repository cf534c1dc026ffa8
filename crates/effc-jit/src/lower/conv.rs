//! Convolutions and sliding-window pools on channels-last tensors.
//!
//! Dense 1×1 convolutions without padding or stride are matrix products of the
//! [pixels × C_in] input with the packed [C_in × C_out] weights. Depthwise convolutions and
//! pools vectorise over channels. Every other convolution walks output pixels and
//! vectorises over the output channels of a group. 1-D inputs run as 2-D with H = 1.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{InstBuilder, StackSlotData, StackSlotKind, Type, Value, types};
use cranelift_frontend::Variable;
use effc_ir::op::{Conv, Pool, PoolKind, Unary};
use effc_ir::{DType, Error, NodeId, Result};

use super::gemm::{Mat, MatMul};
use super::{Lowering, Weights};
use crate::emit::{Base, Kb};
use crate::layout::Buf;
use crate::math;

/// 2-D geometry of a window op (1-D ops have H = KH = 1).
#[derive(Clone, Copy, Debug)]
pub(super) struct Geom {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub m: usize,
    pub oh: usize,
    pub ow: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub dh: usize,
    pub dw: usize,
    pub ph: usize,
    pub pw: usize,
}

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

/// A window attribute's (vertical, horizontal) values; 1-D ops have `one` vertically.
fn spatial2<T: Copy>(v: &[T], one: T) -> Result<(T, T)> {
    match *v {
        [h, w] => Ok((h, w)),
        [w] => Ok((one, w)),
        _ => Err(Error::unsupported(format!("a window attribute of {} values (effc runs 1-D and 2-D)", v.len()))),
    }
}

impl Geom {
    /// The horizontal window the row micro-kernels take.
    fn row_window(&self) -> effc_kernels::RowWindow {
        effc_kernels::RowWindow {
            w: self.w,
            ow: self.ow,
            kh: self.kh,
            kw: self.kw,
            sw: self.sw,
            dw: self.dw,
            pw: self.pw,
        }
    }
}

/// The most taps of one window (kernel area) effc compiles: 128×128.
const MAX_TAPS: usize = 16384;

pub(super) fn geom(
    x: &Buf,
    out: &Buf,
    kernel: &[usize],
    strides: &[usize],
    dilations: &[usize],
    pads: &[usize],
) -> Result<Geom> {
    let (kh, kw) = spatial2(kernel, 1)?;
    let (sh, sw) = spatial2(strides, 1)?;
    let (dh, dw) = spatial2(dilations, 1)?;
    let (ph, pw) = spatial2(pads, 0)?;
    let (&[n, c, h, w], &[_, m, oh, ow]) = (x.dims.as_slice(), out.dims.as_slice()) else {
        return Err(Error::unsupported(format!("a window op from {:?} to {:?} (4-D views only)", x.dims, out.dims)));
    };
    // Window taps are unrolled into the generated code (and the depthwise row table holds
    // one pointer per kernel row on the stack): a huge kernel would exhaust memory while
    // compiling, so it is refused before any code exists.
    if kh.saturating_mul(kw) > MAX_TAPS {
        return Err(Error::unsupported(format!(
            "a {kh}×{kw} window ({} taps; effc unrolls windows of at most {MAX_TAPS})",
            kh.saturating_mul(kw)
        )));
    }
    Ok(Geom { n, c, h, w, m, oh, ow, kh, kw, sh, sw, dh, dw, ph, pw })
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

/// Element strides of a channels-last-or-not 4-D buffer as (n, c, h, w).
fn strides4(b: &Buf) -> Result<[isize; 4]> {
    let &[n, c, h, w] = b.strides.as_slice() else {
        return Err(Error::unsupported(format!("a window op on a {}-D view (4-D only)", b.strides.len())));
    };
    Ok([n, c, h, w])
}

/// [`strides4`] in bytes.
fn byte_strides(b: &Buf) -> Result<[i64; 4]> {
    Ok(strides4(b)?.map(|s| s as i64 * 4))
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
        let bias_base = l.const_f32(&bias);
        let mut mm = MatMul {
            m: g.n * g.h * g.w,
            n: g.m,
            k: g.c,
            a: Mat { base: x4.base, offset: x4.offset, rs: g.c as isize, cs: 1 },
            b: super::gemm::UNSET_B,
            out: Mat { base: out4.base, offset: out4.offset, rs: g.m as isize, cs: 1 },
            c: Some(Mat { base: bias_base, offset: 0, rs: 0, cs: 1 }),
            alpha: 1.0,
            beta: 1.0,
            batch: vec![],
            residual: match &epi.residual {
                Some(r) => {
                    let [_, rc, _, rw] = strides4(r)?;
                    Some(Mat { base: r.base, offset: r.offset, rs: rw, cs: rc })
                }
                None => None,
            },
            act: epi.act,
            k_scale: None,
            b_panels: false,
        };
        if epi.residual.as_ref().is_some_and(|r| r.strides != out4.strides) {
            return Err(Error::unsupported("a residual stored in another layout than the conv output"));
        }
        super::gemm::set_const_b(l, &mut mm, |ic, oc| w_at(oc, ic, 0, 0));
        return super::gemm::emit(l, &mm);
    }
    if groups == g.c && groups == g.m && dense_rows {
        return depthwise(l, &x4, &out4, c, &wt, &bias, epi);
    }
    if groups == 1 && im2col_conv(l, &x4, &out4, g, &w_at, &bias, &epi)? {
        return Ok(());
    }
    let bias_base = l.const_f32(&bias);
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
    grouped(l, &x4, &out4, g, groups, w_base, bias_base, epi)
}

/// Largest patch (one output row's receptive fields) gathered on the stack.
const PATCH_BYTES: usize = 128 << 10;

/// A dense convolution as, per output row, an im2col patch [OW × KH·KW·C] on the stack
/// times the packed weights [KH·KW·C × M], through the GEMM micro-kernel with the bias,
/// residual and activation in its epilogue. Returns false (nothing emitted) when the
/// micro-kernels are off or the layout does not suit them.
#[allow(clippy::too_many_arguments)]
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
    if l.micro.is_none() || !dense(xs, g.c) || !dense(os, g.m) || !residual_ok || g.ow * k * 4 > PATCH_BYTES {
        return Ok(false);
    }
    let mut packed = Vec::with_capacity(k * g.m);
    for i in 0..g.kh {
        for j in 0..g.kw {
            for ci in 0..g.c {
                packed.extend((0..g.m).map(|oc| w_at(oc, ci, i, j)));
            }
        }
    }
    let row = |base: Base| Mat { base, offset: 0, rs: g.m as isize, cs: 1 };
    let mm = MatMul {
        m: g.ow,
        n: g.m,
        k,
        a: Mat { base: Base::Arena(0), offset: 0, rs: k as isize, cs: 1 },
        b: Mat { base: l.const_f32(&packed), offset: 0, rs: g.m as isize, cs: 1 },
        out: row(out.base),
        c: Some(Mat { base: l.const_f32(bias), offset: 0, rs: 0, cs: 1 }),
        alpha: 1.0,
        beta: 1.0,
        batch: vec![],
        residual: epi.residual.as_ref().map(|r| row(r.base)),
        act: epi.act,
        k_scale: None,
        b_panels: false,
    };
    let Some(gemm) = super::gemm::micro(l, &mm) else { return Ok(false) };
    let params = effc_kernels::Im2colParams { c: g.c, win: g.row_window() };
    let params = l.const_struct(params);
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
            let params = kb.ic(params as i64);
            kb.call_c(effc_kernels::im2col_row as *const () as usize, &[table, patch_ptr, params]);
            let at = |kb: &mut Kb, base: Value| {
                let p = kb.offset(base, n, os[0]);
                kb.offset(p, oh, os[2])
            };
            let o_row = at(kb, ob);
            let res_row = rb.map(|rb| at(kb, rb));
            let ptrs = super::gemm::Ptrs { a: patch_ptr, b: wb, out: o_row, c: None, res: res_row, ks: None };
            let rows = kb.ic(g.ow as i64);
            super::gemm::call_micro(kb, gemm, &ptrs, rows);
        });
    })?;
    Ok(true)
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

/// What a convolution does after the sum: add a residual, then an activation; optionally
/// also accumulate the result per (output row, channel) for a fused squeeze-excite pool.
#[derive(Clone, Default)]
pub(super) struct Epilogue {
    pub residual: Option<Buf>,
    pub act: Option<Unary>,
    /// [N·OH, C] f32 sums of each output row (depthwise only), written by the kernel
    /// that computes the row.
    pub row_sums: Option<Base>,
    /// Weights the next kernels read, requested into L2 a share per work item (depthwise
    /// micro-kernel rows only): the squeeze-excite gate's FC layers, which otherwise wait
    /// on memory in a serial kernel.
    pub prefetch: Option<Prefetch>,
}

/// A constant region (address, bytes) to prefetch; see [`Epilogue::prefetch`].
#[derive(Clone, Copy, Debug)]
pub(super) struct Prefetch {
    pub addr: usize,
    pub bytes: usize,
}

impl Prefetch {
    /// Bytes of each of `items` equal shares, in whole cache lines.
    fn share(&self, items: usize) -> usize {
        self.bytes.div_ceil(items.max(1)).next_multiple_of(64)
    }

    /// The start of share `item` of `share` bytes.
    fn start(&self, kb: &mut Kb, item: Value, share: usize) -> Value {
        let off = kb.b.ins().imul_imm_s(item, share as i64);
        kb.b.ins().iadd_imm_s(off, self.addr as i64)
    }
}

impl Epilogue {
    /// Applies the epilogue to `v`, the sum for output element at `o_off` bytes from the
    /// output pixel pointer; `res_px` is the residual's pointer at the same pixel.
    fn apply(&self, kb: &mut Kb, mut v: Value, res_ptr: Option<Value>, byte_off: i32) -> Value {
        if let Some(rp) = res_ptr {
            let ty = kb.b.func.dfg.value_type(v);
            let r = kb.load(ty, rp, byte_off);
            v = kb.b.ins().fadd(v, r);
        }
        match self.act {
            Some(u) => super::elementwise::emit_unary(kb, u, v),
            None => v,
        }
    }

    /// The residual's address and byte strides, to compute [`residual_pointer`]s with.
    fn residual_at(&self, kb: &mut Kb, strides: Option<[i64; 4]>) -> Option<(Value, [i64; 4])> {
        let (r, strides) = (self.residual.as_ref()?, strides?);
        Some((kb.addr(r.base, r.offset as i64 * 4), strides))
    }
}

/// Pointer to the residual (its address and byte strides) at (n, row, column) like `o`
/// is to the output.
fn residual_pointer(kb: &mut Kb, residual: Option<(Value, [i64; 4])>, n: Value, oh: Value, ow: Value) -> Option<Value> {
    let (base, s) = residual?;
    let p = kb.offset(base, n, s[0]);
    let p = kb.offset(p, oh, s[2]);
    Some(kb.offset(p, ow, s[3]))
}

/// Calls `body(kb, ih_or_iw_valid_pointer_offset)` for every kernel tap (kh, kw) of output
/// pixel (oh, ow) that lands inside the input; `on_pad` (if any) for taps in the padding.
/// Where input rows live: at `ih · stride` (a whole tensor) or in a ring of `k` rows of
/// `row_bytes` each (rows streamed just ahead of the window), at slot `ih mod k`.
#[derive(Clone, Copy, Debug)]
pub(super) enum Rows {
    Strided,
    Ring { k: usize, row_bytes: i64 },
}

fn taps(
    kb: &mut Kb,
    g: Geom,
    oh: Value,
    ow: Value,
    strides: [i64; 4],
    rows: Rows,
    inside: &mut dyn FnMut(&mut Kb, Value, Value, Value),
) {
    let ih0 = kb.b.ins().imul_imm_s(oh, g.sh as i64);
    let ih0 = kb.b.ins().iadd_imm_s(ih0, -(g.ph as i64));
    let iw0 = kb.b.ins().imul_imm_s(ow, g.sw as i64);
    let iw0 = kb.b.ins().iadd_imm_s(iw0, -(g.pw as i64));
    for kh in 0..g.kh {
        let ih = kb.b.ins().iadd_imm_s(ih0, (kh * g.dh) as i64);
        let ok_h = kb.b.ins().icmp_imm_s(IntCC::UnsignedLessThan, ih, g.h as i64);
        kb.if_then(ok_h, |kb| {
            for kw in 0..g.kw {
                let iw = kb.b.ins().iadd_imm_s(iw0, (kw * g.dw) as i64);
                let ok_w = kb.b.ins().icmp_imm_s(IntCC::UnsignedLessThan, iw, g.w as i64);
                kb.if_then(ok_w, |kb| {
                    let off = match rows {
                        Rows::Strided => kb.b.ins().imul_imm_s(ih, strides[2]),
                        Rows::Ring { k, row_bytes } => {
                            let slot = kb.b.ins().urem_imm_u(ih, k as i64);
                            kb.b.ins().imul_imm_s(slot, row_bytes)
                        }
                    };
                    let off_w = kb.b.ins().imul_imm_s(iw, strides[3]);
                    let off = kb.b.ins().iadd(off, off_w);
                    let t = kb.ic((kh * g.kw + kw) as i64);
                    inside(kb, off, t, iw);
                });
            }
        });
    }
}

fn new_var(kb: &mut Kb, ty: Type, init: Value) -> Variable {
    let v = kb.b.declare_var(ty);
    kb.b.def_var(v, init);
    v
}

/// Generic convolution: per output pixel and group, vectors of output channels.
#[allow(clippy::too_many_arguments)]
fn grouped(
    l: &mut Lowering,
    x: &Buf,
    out: &Buf,
    g: Geom,
    groups: usize,
    w: Base,
    bias: Base,
    epi: Epilogue,
) -> Result<()> {
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

#[derive(Clone, Copy)]
pub(super) enum Window {
    Depthwise { w: Base, bias: Base },
    Pool { kind: PoolKind, count_include_pad: bool, pad_h_end: usize, pad_w_end: usize },
}

/// Run-time pointers a window row needs.
#[derive(Clone, Copy)]
pub(super) struct WindowPtrs {
    /// Input of this sample (or the ring base).
    pub x_n: Value,
    /// Output row.
    pub o_row: Value,
    /// The residual's address and byte strides.
    pub residual: Option<(Value, [i64; 4])>,
    pub sums: Option<Value>,
    pub w: Option<Value>,
    pub bias: Option<Value>,
}

/// A depthwise conv the micro-kernel computes: entry point and parameters' address.
#[derive(Clone, Copy)]
pub(super) struct DwMicro {
    func: usize,
    params: usize,
    value: effc_kernels::DwParams,
    /// The region each row call prefetches a share of, and the share's bytes.
    prefetch: Option<(Prefetch, usize)>,
}

/// The depthwise micro-kernel for a window, when one applies: a depthwise op on dense
/// channels-last rows, no residual, an activation the kernel has.
pub(super) fn dw_micro(
    l: &mut Lowering,
    g: Geom,
    op: Window,
    epi: &Epilogue,
    (xs, os): ([i64; 4], [i64; 4]),
) -> Option<DwMicro> {
    let func = l.micro?.depthwise()? as usize;
    let Window::Depthwise { w: Base::Const(weights), bias: Base::Const(bias) } = op else { return None };
    let dense = |s: [i64; 4]| s[1] == 4 && s[3] == g.c as i64 * 4;
    if !dense(xs) || !dense(os) || epi.residual.is_some() {
        return None;
    }
    // One share per output row; `channel_parts` re-splits when it splits rows further.
    let prefetch = epi.prefetch.map(|p| (p, p.share(g.n * g.oh)));
    let params = effc_kernels::DwParams {
        c: g.c,
        ld: g.c,
        win: g.row_window(),
        weights: weights as *const f32,
        bias: bias as *const f32,
        act: super::gemm::micro_activation(epi.act)?,
        prefetch_bytes: prefetch.map_or(0, |(_, share)| share),
    };
    Some(DwMicro { func, params: l.const_struct(params), value: params, prefetch })
}

/// Output rows below which a depthwise conv is also split by channels, so two threads
/// get even shares of small feature maps (7×7, 14×14).
const DW_MIN_ITEMS: usize = 16;

/// Channel parts of a depthwise conv: (parts, channels per part, a table of each part's
/// parameters). One part, unless the feature map has too few output rows to give two
/// threads even shares.
fn channel_parts(l: &mut Lowering, g: Geom, m: &mut DwMicro) -> (usize, usize, Base) {
    let rows = g.n * g.oh;
    let wanted = if rows >= DW_MIN_ITEMS { 1 } else { DW_MIN_ITEMS.div_ceil(rows).min(g.c / 64).max(1) };
    let width = g.c.div_ceil(wanted).next_multiple_of(16).min(g.c);
    let parts = g.c.div_ceil(width);
    m.prefetch = m.prefetch.map(|(p, _)| (p, p.share(rows * parts)));
    let prefetch_bytes = m.prefetch.map_or(0, |(_, share)| share);
    let table: Vec<usize> = (0..parts)
        .map(|i| {
            let c0 = i * width;
            let v = m.value;
            l.const_struct(effc_kernels::DwParams {
                c: width.min(g.c - c0),
                weights: v.weights.wrapping_add(c0),
                bias: v.bias.wrapping_add(c0),
                prefetch_bytes,
                ..v
            })
        })
        .collect();
    (parts, width, l.const_addresses(&table))
}

/// A depthwise conv through the micro-kernel: work items are (output row, channel part),
/// each one call.
fn window_micro(
    l: &mut Lowering,
    (x, out): (&Buf, &Buf),
    g: Geom,
    epi: &Epilogue,
    (xs, os): ([i64; 4], [i64; 4]),
    mut m: DwMicro,
) -> Result<()> {
    let (parts, width, table) = channel_parts(l, g, &mut m);
    let (x, out, sums) = (x.clone(), out.clone(), epi.row_sums);
    l.kernel(g.n * g.oh * parts, move |kb| {
        let xb = kb.addr(x.base, x.offset as i64 * 4);
        let ob = kb.addr(out.base, out.offset as i64 * 4);
        let sums = sums.map(|b| kb.addr(b, 0));
        let table = kb.addr(table, 0);
        let (lo, hi) = (kb.lo, kb.hi);
        kb.for_range(lo, hi, 1, |kb, r| {
            let part = kb.b.ins().urem_imm_u(r, parts as i64);
            let row = kb.b.ins().udiv_imm_u(r, parts as i64);
            let n = kb.b.ins().udiv_imm_u(row, g.oh as i64);
            let oh = kb.b.ins().urem_imm_u(row, g.oh as i64);
            let c0 = kb.b.ins().imul_imm_s(part, (width * 4) as i64);
            let x_n = kb.offset(xb, n, xs[0]);
            let x_n = kb.b.ins().iadd(x_n, c0);
            let o_row = kb.offset(ob, n, os[0]);
            let o_row = kb.offset(o_row, oh, os[2]);
            let o_row = kb.b.ins().iadd(o_row, c0);
            let sums_row = sums.map(|s| {
                let p = kb.offset(s, row, (g.c * 4) as i64);
                kb.b.ins().iadd(p, c0)
            });
            let params = kb.offset(table, part, 8);
            let params = kb.load_const(types::I64, params, 0);
            let pf = m.prefetch.map(|(p, share)| p.start(kb, r, share));
            dw_micro_row(kb, g, (m.func, params), Rows::Strided, (x_n, xs[2]), (o_row, sums_row, pf), oh);
        });
    })
}

/// One output row through the micro-kernel: the JIT resolves which input rows the kernel
/// rows see (null for vertical padding) into a table on the stack, then calls once.
#[allow(clippy::too_many_arguments)]
fn dw_micro_row(
    kb: &mut Kb,
    g: Geom,
    (func, params): (usize, Value),
    rows: Rows,
    (x_n, row_stride): (Value, i64),
    (o_row, sums, prefetch): (Value, Option<Value>, Option<Value>),
    oh: Value,
) {
    let table = row_table(kb, g, rows, (x_n, row_stride), oh);
    let null = kb.ic(0);
    let (sums, prefetch) = (sums.unwrap_or(null), prefetch.unwrap_or(null));
    kb.call_c(func, &[table, o_row, sums, params, prefetch]);
}

/// A stack table of the `kh` input rows output row `oh` reads (null for rows in the
/// vertical padding), in the form the row micro-kernels take.
fn row_table(kb: &mut Kb, g: Geom, rows: Rows, (x_n, row_stride): (Value, i64), oh: Value) -> Value {
    let slot = kb.b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, (g.kh * 8) as u32, 3));
    let ih0 = kb.b.ins().imul_imm_s(oh, g.sh as i64);
    let ih0 = kb.b.ins().iadd_imm_s(ih0, -(g.ph as i64));
    let null = kb.ic(0);
    for i in 0..g.kh {
        let ih = kb.b.ins().iadd_imm_s(ih0, (i * g.dh) as i64);
        let inside = kb.b.ins().icmp_imm_s(IntCC::UnsignedLessThan, ih, g.h as i64);
        let offset = match rows {
            Rows::Strided => kb.b.ins().imul_imm_s(ih, row_stride),
            Rows::Ring { k, row_bytes } => {
                let slot = kb.b.ins().urem_imm_u(ih, k as i64);
                kb.b.ins().imul_imm_s(slot, row_bytes)
            }
        };
        let ptr = kb.b.ins().iadd(x_n, offset);
        let ptr = kb.b.ins().select(inside, ptr, null);
        kb.b.ins().stack_store(types::I64, ptr, slot, (i * 8) as i32);
    }
    kb.b.ins().stack_addr(types::I64, slot, 0)
}

/// Depthwise conv and pools: per output pixel, vectors of channels.
fn window(l: &mut Lowering, x: &Buf, out: &Buf, g: Geom, op: Window, epi: Epilogue) -> Result<()> {
    let (xs, os) = (byte_strides(x)?, byte_strides(out)?);
    if let Some(m) = dw_micro(l, g, op, &epi, (xs, os)) {
        return window_micro(l, (x, out), g, &epi, (xs, os), m);
    }
    let rs = epi.residual.as_ref().map(byte_strides).transpose()?;
    // Unit channel strides (4 bytes) everywhere.
    let vec_ok = xs[1] == 4 && os[1] == 4 && rs.is_none_or(|s| s[1] == 4);
    let (x, out) = (x.clone(), out.clone());
    l.kernel(g.n * g.oh, move |kb| {
        let xb = kb.addr(x.base, x.offset as i64 * 4);
        let ob = kb.addr(out.base, out.offset as i64 * 4);
        let rb = epi.residual_at(kb, rs);
        let sums = epi.row_sums.map(|b| kb.addr(b, 0));
        let (w, bias) = match op {
            Window::Depthwise { w, bias } => (Some(kb.addr(w, 0)), Some(kb.addr(bias, 0))),
            Window::Pool { .. } => (None, None),
        };
        let (lo, hi) = (kb.lo, kb.hi);
        kb.for_range(lo, hi, 1, |kb, r| {
            let n = kb.b.ins().udiv_imm_u(r, g.oh as i64);
            let oh = kb.b.ins().urem_imm_u(r, g.oh as i64);
            let x_n = kb.offset(xb, n, xs[0]);
            let o_row = kb.offset(ob, n, os[0]);
            let o_row = kb.offset(o_row, oh, os[2]);
            let p = WindowPtrs { x_n, o_row, residual: rb, sums, w, bias };
            window_row(kb, g, (op, None), &epi, (xs, os), Rows::Strided, p, n, oh, r, vec_ok);
        });
    })
}

/// One output row (`oh` of sample `n`; `r` = n·OH + oh) of a depthwise conv or pool.
#[allow(clippy::too_many_arguments)]
pub(super) fn window_row(
    kb: &mut Kb,
    g: Geom,
    (op, micro): (Window, Option<DwMicro>),
    epi: &Epilogue,
    (xs, os): ([i64; 4], [i64; 4]),
    rows: Rows,
    p: WindowPtrs,
    n: Value,
    oh: Value,
    r: Value,
    vec_ok: bool,
) {
    let WindowPtrs { x_n, o_row, residual: rb, sums, w: wb, bias: bb } = p;
    if let Some(m) = micro {
        let sums_row = sums.map(|s| kb.offset(s, r, (g.c * 4) as i64));
        let params = kb.ic(m.params as i64);
        let pf = m.prefetch.map(|(p, share)| p.start(kb, r, share));
        dw_micro_row(kb, g, (m.func, params), rows, (x_n, xs[2]), (o_row, sums_row, pf), oh);
        return;
    }
    let rs1 = rb.map_or(0, |(_, s)| s[1]);
    // This row's SE pool sums start from zero here (the pixels below add into them), so
    // each row's slot is written by the kernel that computes the row, as the depthwise
    // micro-kernel does.
    if let Some(sums) = sums {
        let row_sums = kb.offset(sums, r, (g.c * 4) as i64);
        kb.for_lanes(g.c, |kb, off, ty| {
            let zero = kb.fc(ty, 0.0);
            let p = kb.b.ins().iadd(row_sums, off);
            kb.store(zero, p, 0);
        });
    }
    kb.for_n(g.ow, |kb, ow| {
        let o_px = kb.offset(o_row, ow, os[3]);
        let r_px = residual_pointer(kb, rb, n, oh, ow);
        let chunk = |kb: &mut Kb, c0: Value, ty: Type| {
            let x_c = kb.offset(x_n, c0, xs[1]);
            let o_c = kb.offset(o_px, c0, os[1]);
            let r_c = r_px.map(|p| kb.offset(p, c0, rs1));
            let init = match (op, bb) {
                (Window::Depthwise { .. }, Some(bb)) => {
                    let p = kb.offset(bb, c0, 4);
                    kb.load_const(ty, p, 0)
                }
                (Window::Pool { kind: PoolKind::Max, .. }, _) => kb.fc(ty, f64::NEG_INFINITY),
                _ => kb.fc(ty, 0.0),
            };
            let acc = new_var(kb, ty, init);
            let zero = kb.ic(0);
            let count = new_var(kb, types::I64, zero);
            taps(kb, g, oh, ow, xs, rows, &mut |kb, off, tap, _| {
                let xp = kb.b.ins().iadd(x_c, off);
                let v = kb.load(ty, xp, 0);
                let a = kb.b.use_var(acc);
                let a = match (op, wb) {
                    (Window::Depthwise { .. }, Some(wb)) => {
                        let wp = kb.offset(wb, tap, (g.c * 4) as i64);
                        let wp = kb.offset(wp, c0, 4);
                        let wv = kb.load_const(ty, wp, 0);
                        kb.fma(v, wv, a)
                    }
                    (Window::Pool { kind: PoolKind::Max, .. }, _) => {
                        let gt = kb.b.ins().fcmp(FloatCC::GreaterThan, v, a);
                        math::select(kb, gt, v, a)
                    }
                    _ => kb.b.ins().fadd(a, v),
                };
                kb.b.def_var(acc, a);
                let c = kb.b.use_var(count);
                let c = kb.b.ins().iadd_imm_s(c, 1);
                kb.b.def_var(count, c);
            });
            let mut v = kb.b.use_var(acc);
            if let Window::Pool { kind: PoolKind::Average, count_include_pad, pad_h_end, pad_w_end } = op {
                let cnt = if count_include_pad {
                    // Taps inside input + padding (ceil-mode windows can overhang that).
                    let span =
                        |kb: &mut Kb, o: Value, s: usize, p: usize, k: usize, d: usize, size: usize, pe: usize| {
                            let start = kb.b.ins().imul_imm_s(o, s as i64);
                            let start = kb.b.ins().iadd_imm_s(start, -(p as i64));
                            let end = kb.b.ins().iadd_imm_s(start, ((k - 1) * d + 1) as i64);
                            let lim = kb.ic((size + pe) as i64);
                            let end = kb.b.ins().smin(end, lim);
                            let lo = kb.ic(-(p as i64));
                            let start = kb.b.ins().smax(start, lo);
                            let len = kb.b.ins().isub(end, start);
                            // Taps with dilation d: ceil(len / d).
                            let len = kb.b.ins().iadd_imm_s(len, d as i64 - 1);
                            kb.b.ins().sdiv_imm_s(len, d as i64)
                        };
                    let a = span(kb, oh, g.sh, g.ph, g.kh, g.dh, g.h, pad_h_end);
                    let b = span(kb, ow, g.sw, g.pw, g.kw, g.dw, g.w, pad_w_end);
                    kb.b.ins().imul(a, b)
                } else {
                    kb.b.use_var(count)
                };
                let cf = kb.b.ins().fcvt_from_sint(types::F32, cnt);
                let one = kb.b.ins().f32const(1.0);
                let inv = kb.b.ins().fdiv(one, cf);
                let inv = if ty.is_vector() { kb.b.ins().splat(ty, inv) } else { inv };
                v = kb.b.ins().fmul(v, inv);
            }
            let v = epi.apply(kb, v, r_c, 0);
            kb.store(v, o_c, 0);
            if let Some(sums) = sums {
                let p = kb.offset(sums, r, (g.c * 4) as i64);
                let p = kb.offset(p, c0, 4);
                let acc = kb.load(ty, p, 0);
                let acc = kb.b.ins().fadd(acc, v);
                kb.store(acc, p, 0);
            }
        };
        let full = if vec_ok { g.c / 4 } else { 0 };
        if full > 0 {
            kb.for_n(full, |kb, blk| {
                let c0 = kb.b.ins().imul_imm_s(blk, 4);
                chunk(kb, c0, types::F32X4);
            });
        }
        for c in full * 4..g.c {
            let c0 = kb.ic(c as i64);
            chunk(kb, c0, types::F32);
        }
    });
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
