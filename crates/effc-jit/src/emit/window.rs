//! Sliding windows over channels-last rows: the emitter that depthwise convolutions, pools
//! and the depthwise stage of fused blocks lower to, with the window's geometry, its
//! epilogue (residual, activation, squeeze-excite row sums) and its row micro-kernel calls.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{InstBuilder, StackSlotData, StackSlotKind, Type, Value, types};
use cranelift_frontend::Variable;
use effc_ir::op::{PoolKind, Unary};
use effc_ir::{Error, Result};

use super::activation::{emit_unary, kernel_activation};
use super::{Base, Kb};
use crate::layout::Buf;
use crate::lower::Lowering;
use crate::math;

/// 2-D geometry of a window op (1-D ops have H = KH = 1).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geom {
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
    /// Dilation (vertical, horizontal).
    pub dil_h: usize,
    pub dil_w: usize,
    pub ph: usize,
    pub pw: usize,
}

/// A window attribute's (vertical, horizontal) values; 1-D ops have `one` vertically.
pub(crate) fn spatial2<T: Copy>(v: &[T], one: T) -> Result<(T, T)> {
    match *v {
        [h, w] => Ok((h, w)),
        [w] => Ok((one, w)),
        _ => Err(Error::unsupported(format!("a window attribute of {} values (effc runs 1-D and 2-D)", v.len()))),
    }
}

impl Geom {
    /// The horizontal window the row micro-kernels take.
    pub(crate) fn row_window(&self) -> effc_kernels::RowWindow {
        effc_kernels::RowWindow {
            w: self.w,
            ow: self.ow,
            kh: self.kh,
            kw: self.kw,
            sw: self.sw,
            dw: self.dil_w,
            pw: self.pw,
        }
    }
}

/// The most taps of one window (kernel area) effc compiles: 128×128.
const MAX_TAPS: usize = 16384;

pub(crate) fn geom(
    x: &Buf,
    out: &Buf,
    kernel: &[usize],
    strides: &[usize],
    dilations: &[usize],
    pads: &[usize],
) -> Result<Geom> {
    let (kh, kw) = spatial2(kernel, 1)?;
    let (sh, sw) = spatial2(strides, 1)?;
    let (dil_h, dil_w) = spatial2(dilations, 1)?;
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
    Ok(Geom { n, c, h, w, m, oh, ow, kh, kw, sh, sw, dil_h, dil_w, ph, pw })
}

/// Element strides of a channels-last-or-not 4-D buffer as (n, c, h, w).
pub(crate) fn strides4(b: &Buf) -> Result<[isize; 4]> {
    let &[n, c, h, w] = b.strides.as_slice() else {
        return Err(Error::unsupported(format!("a window op on a {}-D view (4-D only)", b.strides.len())));
    };
    Ok([n, c, h, w])
}

/// [`strides4`] in bytes.
pub(crate) fn byte_strides(b: &Buf) -> Result<[i64; 4]> {
    Ok(strides4(b)?.map(|s| s as i64 * 4))
}

/// What a convolution does after the sum: add a residual, then an activation; optionally
/// also accumulate the result per (output row, channel) for a fused squeeze-excite pool.
#[derive(Clone, Default)]
pub(crate) struct Epilogue {
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
pub(crate) struct Prefetch {
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
        let start = kb.addr(Base::Const(self.addr), 0);
        kb.b.ins().iadd(start, off)
    }
}

impl Epilogue {
    /// Applies the epilogue to `v`, the sum for output element at `o_off` bytes from the
    /// output pixel pointer; `res_px` is the residual's pointer at the same pixel.
    pub(crate) fn apply(&self, kb: &mut Kb, mut v: Value, res_ptr: Option<Value>, byte_off: i32) -> Value {
        if let Some(rp) = res_ptr {
            let ty = kb.b.func.dfg.value_type(v);
            let r = kb.load(ty, rp, byte_off);
            v = kb.b.ins().fadd(v, r);
        }
        match self.act {
            Some(u) => emit_unary(kb, u, v),
            None => v,
        }
    }

    /// The residual's address and byte strides, to compute [`residual_pointer`]s with.
    pub(crate) fn residual_at(&self, kb: &mut Kb, strides: Option<[i64; 4]>) -> Option<(Value, [i64; 4])> {
        let (r, strides) = (self.residual.as_ref()?, strides?);
        Some((kb.addr(r.base, r.offset as i64 * 4), strides))
    }
}

/// Pointer to the residual (its address and byte strides) at (n, row, column) like `o`
/// is to the output.
pub(crate) fn residual_pointer(
    kb: &mut Kb,
    residual: Option<(Value, [i64; 4])>,
    n: Value,
    oh: Value,
    ow: Value,
) -> Option<Value> {
    let (base, s) = residual?;
    let p = kb.offset(base, n, s[0]);
    let p = kb.offset(p, oh, s[2]);
    Some(kb.offset(p, ow, s[3]))
}

/// Where input rows live: at `ih · stride` (a whole tensor) or in a ring of `k` rows of
/// `row_bytes` each (rows streamed just ahead of the window), at slot `ih mod k`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Rows {
    Strided,
    Ring { k: usize, row_bytes: i64 },
}

/// Calls `inside(kb, byte offset, tap index, iw)` for every kernel tap (kh, kw) of output
/// pixel (oh, ow) that lands inside the input (taps in the padding are skipped).
pub(crate) fn taps(
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
    for_taps(kb, g.kh, &mut |kb, kh| {
        let ih = kb.b.ins().imul_imm_s(kh, g.dil_h as i64);
        let ih = kb.b.ins().iadd(ih0, ih);
        let ok_h = kb.b.ins().icmp_imm_s(IntCC::UnsignedLessThan, ih, g.h as i64);
        kb.if_then(ok_h, |kb| {
            for_taps(kb, g.kw, &mut |kb, kw| {
                let iw = kb.b.ins().imul_imm_s(kw, g.dil_w as i64);
                let iw = kb.b.ins().iadd(iw0, iw);
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
                    let t = kb.b.ins().imul_imm_s(kh, g.kw as i64);
                    let t = kb.b.ins().iadd(t, kw);
                    inside(kb, off, t, iw);
                });
            });
        });
    });
}

/// Kernel positions along one dim whose taps are unrolled; wider windows loop at run time,
/// so that code size (and compile time) stays bounded by this, not by the window.
const UNROLLED_TAPS: usize = 64;

/// Calls `body(kb, k)` for k in 0..n: unrolled with constant k (whose offsets fold into
/// immediates) up to [`UNROLLED_TAPS`], as a run-time loop past that.
fn for_taps(kb: &mut Kb, n: usize, body: &mut dyn FnMut(&mut Kb, Value)) {
    if n <= UNROLLED_TAPS {
        for k in 0..n {
            let k = kb.ic(k as i64);
            body(kb, k);
        }
    } else {
        kb.for_n(n, |kb, k| body(kb, k));
    }
}

pub(crate) fn new_var(kb: &mut Kb, ty: Type, init: Value) -> Variable {
    let v = kb.b.declare_var(ty);
    kb.b.def_var(v, init);
    v
}

#[derive(Clone, Copy)]
pub(crate) enum Window {
    Depthwise { w: Base, bias: Base },
    Pool { kind: PoolKind, count_include_pad: bool, pad_h_end: usize, pad_w_end: usize },
}

/// Run-time pointers a window row needs.
#[derive(Clone, Copy)]
pub(crate) struct WindowPtrs {
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
pub(crate) struct DwMicro {
    func: usize,
    params: usize,
    value: effc_kernels::DwParams,
    /// The region each row call prefetches a share of, and the share's bytes.
    prefetch: Option<(Prefetch, usize)>,
}

/// The depthwise micro-kernel for a window, when one applies: a depthwise op on dense
/// channels-last rows, no residual, an activation the kernel has.
pub(crate) fn dw_micro(
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
        act: kernel_activation(epi.act)?,
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
            let prefetch = m.prefetch.map(|(p, share)| p.start(kb, r, share));
            let call = DwRowCall {
                func: m.func,
                params,
                rows: Rows::Strided,
                x_n,
                row_stride: xs[2],
                o_row,
                sums: sums_row,
                prefetch,
            };
            call.emit(kb, g, oh);
        });
    })
}

/// One output row's call of the depthwise micro-kernel: run-time pointers and where its
/// input rows live.
struct DwRowCall {
    func: usize,
    params: Value,
    rows: Rows,
    /// The sample's input (or the ring) and its byte stride between rows.
    x_n: Value,
    row_stride: i64,
    o_row: Value,
    sums: Option<Value>,
    prefetch: Option<Value>,
}

impl DwRowCall {
    /// Output row `oh`: the JIT resolves which input rows the kernel rows see (null for
    /// vertical padding) into a table on the stack, then calls once.
    fn emit(self, kb: &mut Kb, g: Geom, oh: Value) {
        let table = row_table(kb, g, self.rows, (self.x_n, self.row_stride), oh);
        let null = kb.ic(0);
        let (sums, prefetch) = (self.sums.unwrap_or(null), self.prefetch.unwrap_or(null));
        kb.call_c(self.func, &[table, self.o_row, sums, self.params, prefetch]);
    }
}

/// A stack table of the `kh` input rows output row `oh` reads (null for rows in the
/// vertical padding), in the form the row micro-kernels take.
pub(crate) fn row_table(kb: &mut Kb, g: Geom, rows: Rows, (x_n, row_stride): (Value, i64), oh: Value) -> Value {
    let slot = kb.b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, (g.kh * 8) as u32, 3));
    let ih0 = kb.b.ins().imul_imm_s(oh, g.sh as i64);
    let ih0 = kb.b.ins().iadd_imm_s(ih0, -(g.ph as i64));
    let null = kb.ic(0);
    for i in 0..g.kh {
        let ih = kb.b.ins().iadd_imm_s(ih0, (i * g.dil_h) as i64);
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
pub(crate) fn window(l: &mut Lowering, x: &Buf, out: &Buf, g: Geom, op: Window, epi: Epilogue) -> Result<()> {
    let (xs, os) = (byte_strides(x)?, byte_strides(out)?);
    if let Some(m) = dw_micro(l, g, op, &epi, (xs, os)) {
        return window_micro(l, (x, out), g, &epi, (xs, os), m);
    }
    let rs = epi.residual.as_ref().map(byte_strides).transpose()?;
    // Unit channel strides (4 bytes) everywhere.
    let vector = xs[1] == 4 && os[1] == 4 && rs.is_none_or(|s| s[1] == 4);
    let (x, out) = (x.clone(), out.clone());
    let row = WindowRows { g, op, micro: None, epi, strides: (xs, os), rows: Rows::Strided, vector };
    l.kernel(g.n * g.oh, move |kb| {
        let xb = kb.addr(x.base, x.offset as i64 * 4);
        let ob = kb.addr(out.base, out.offset as i64 * 4);
        let residual = row.epi.residual_at(kb, rs);
        let sums = row.epi.row_sums.map(|b| kb.addr(b, 0));
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
            let p = WindowPtrs { x_n, o_row, residual, sums, w, bias };
            row.emit(kb, p, RowAt { n, oh, r });
        });
    })
}

/// Which output row a [`WindowRows`] computes: `oh` of sample `n`, and `r` = n·OH + oh.
#[derive(Clone, Copy)]
pub(crate) struct RowAt {
    pub n: Value,
    pub oh: Value,
    pub r: Value,
}

/// What is fixed at compile time about the rows of one depthwise conv or pool.
#[derive(Clone)]
pub(crate) struct WindowRows {
    pub g: Geom,
    pub op: Window,
    /// The row micro-kernel, when it computes the rows.
    pub micro: Option<DwMicro>,
    pub epi: Epilogue,
    /// Byte strides (n, c, h, w) of the input and the output.
    pub strides: ([i64; 4], [i64; 4]),
    pub rows: Rows,
    /// Channels are contiguous everywhere, so JIT code takes them four at a time.
    pub vector: bool,
}

impl WindowRows {
    /// Emits one output row at the run-time pointers `p`.
    pub(crate) fn emit(&self, kb: &mut Kb, p: WindowPtrs, at: RowAt) {
        let WindowRows { g, op, micro, ref epi, strides: (xs, os), rows, vector: vec_ok } = *self;
        let RowAt { n, oh, r } = at;
        let WindowPtrs { x_n, o_row, residual: rb, sums, w: wb, bias: bb } = p;
        if let Some(m) = micro {
            let sums = sums.map(|s| kb.offset(s, r, (g.c * 4) as i64));
            let params = kb.addr(Base::Const(m.params), 0);
            let prefetch = m.prefetch.map(|(p, share)| p.start(kb, r, share));
            let call = DwRowCall { func: m.func, params, rows, x_n, row_stride: xs[2], o_row, sums, prefetch };
            call.emit(kb, g, oh);
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
                        let a = span(kb, oh, g.sh, g.ph, g.kh, g.dil_h, g.h, pad_h_end);
                        let b = span(kb, ow, g.sw, g.pw, g.kw, g.dil_w, g.w, pad_w_end);
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
}
