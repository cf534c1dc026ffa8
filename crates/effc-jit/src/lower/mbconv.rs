//! MBConv super-ops.
//!
//! An MBConv block runs as three or four kernels:
//! 1. expand + depthwise, streamed when the expansion is larger than L2: for each output
//!    row, the expansion (a [W × C_in] × [C_in × C_exp] GEMM with bias and activation)
//!    produces just the input rows the depthwise window still needs into a ring of k
//!    rows, so the expanded tensor — the largest in the network — never exists whole.
//!    The depthwise k×k + bias + activation then also accumulates the squeeze-excite pool
//!    per output row while the values are in registers (no second pass over the tensor).
//!    Output rows are split into a few chunks per sample, each with its own ring, so
//!    threads can share the work (a thread that runs consecutive chunks keeps one ring);
//! 2. the SE gate per sample (two tiny FC layers);
//! 3. the gate applied where it costs least (see [`gate_scales`]): to the depthwise output
//!    in place, or to a per-sample copy of the projection weights W'[c][o] = W[c][o]·s[c],
//!    or inside the projection's micro-kernel;
//! 4. project: GEMM with the (scaled) weights, bias and the residual add in its epilogue.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{InstBuilder, types};
use effc_ir::op::{Dense, MbConv, Unary};
use effc_ir::{DType, Error, NodeId, Result};
use effc_kernels::Isa;
use effc_kernels::gemm::PANEL;

use super::Lowering;
use super::conv::{depthwise, depthwise_weights};
use super::gemm::dense_product;
use super::squeeze_excite::{GateKernel, gate_kernel};
use crate::emit::activation::{emit_unary, kernel_activation};
use crate::emit::gemm::{self, BatchDim, Ptrs, emit_rows};
use crate::emit::window::{Epilogue, RowAt, Rows, Window, WindowPtrs, WindowRows, geom};
use crate::emit::{Base, Kb};
use crate::layout::{Buf, activation_strides};

/// Output-row chunks per sample of the streamed expand + depthwise kernel, and rows per
/// chunk. Each chunk recomputes the window's overlap with the previous one, so chunks are
/// only made when they stay long compared with the window, and at most two: enough for
/// the two threads of this class of machine, where four recomputed 14% of B0's block 3
/// expansion (and cost 0.03 ms at one thread). Batches give more items.
fn row_chunks(oh: usize, span: usize) -> (usize, usize) {
    let chunks = (oh / (2 * span)).clamp(1, 2);
    let per = oh.div_ceil(chunks);
    (oh.div_ceil(per), per)
}

/// Expanded tensors larger than this (a core's L2) are streamed row by row; smaller ones
/// are cheaper to materialise, since streaming recomputes rows at chunk boundaries.
const STREAM_BYTES: usize = 1 << 20;

/// Dims of an MBConv block's input or output: [N, C, H, W].
pub(super) fn dims4(shape: &[usize]) -> Result<[usize; 4]> {
    let &[n, c, h, w] = shape else {
        return Err(Error::unsupported(format!("an MBConv block on {shape:?} (4-D only)")));
    };
    Ok([n, c, h, w])
}

/// Channels of block `b`'s expansion (its depthwise weights are [C_exp, 1, kh, kw]).
fn expanded_channels(b: &MbConv) -> Result<usize> {
    let shape = b.dw_w.shape();
    shape.first().copied().ok_or_else(|| Error::unsupported(format!("MBConv depthwise weights of shape {shape:?}")))
}

/// Rows the depthwise window spans.
fn window_span(b: &MbConv) -> Result<usize> {
    match (b.dw.kernel.first(), b.dw.dilations.first()) {
        (Some(&k), Some(&d)) if k > 0 => Ok((k - 1) * d + 1),
        (k, d) => Err(Error::unsupported(format!("an MBConv depthwise window of size {k:?}, dilation {d:?}"))),
    }
}

/// A scratch buffer of an MBConv block, by what it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Buffer {
    /// The leading depthwise conv's output (UIB blocks), the expansion's input.
    Start,
    /// The expansion: whole, or the streamed chunks' rings.
    Expanded,
    /// The depthwise output, the projection's A.
    Depthwise,
    /// The SE pool's per-(output row, channel) partial sums.
    RowSums,
    /// The SE pool's means, FC1's input.
    Pooled,
    /// FC1's output.
    Hidden,
    /// FC2's output, the gate s.
    Gate,
    /// The per-sample projection weights W'[c][o] = W[c][o]·s[c].
    ScaledWeights,
}

/// How one MBConv block runs, decided from its shapes and the kernel variant alone: the
/// planner sizes the scratch from it and the lowering emits from it (both build it with
/// this one constructor, so they cannot disagree).
pub(super) struct MbConvPlan {
    /// [N, C_in, H, W] of the expansion's input (after a leading depthwise conv, if any)
    /// and [N, C_out, OH, OW].
    x: [usize; 4],
    out: [usize; 4],
    c_exp: usize,
    /// Whether the expansion is streamed row by row into rings (else materialised).
    streams: bool,
    /// Where the SE gate is applied, with SE.
    gate: Option<GateScales>,
    /// The scratch buffers in the order the planner lays them out, with their bytes.
    buffers: Vec<(Buffer, usize)>,
}

impl MbConvPlan {
    pub(super) fn new(b: &MbConv, x_shape: &[usize], out_shape: &[usize], micro: Option<Isa>) -> Result<Self> {
        let started = b.start.as_ref().map(|s| s.output_shape(x_shape)).transpose()?;
        let x = dims4(started.as_deref().unwrap_or(x_shape))?;
        let out = dims4(out_shape)?;
        let ([n, c_in, h, w], [_, c_out, oh, ow]) = (x, out);
        let c_exp = expanded_channels(b)?;
        let streams = b.expand.is_some() && n * h * w * c_exp * 4 > STREAM_BYTES;
        let expanded = if streams {
            let span = window_span(b)?;
            n * row_chunks(oh, span).0 * span * w * c_exp
        } else if b.expand.is_some() {
            n * h * w * c_exp
        } else {
            0
        };
        let f32s = |k: usize| k * 4;
        let mut buffers = vec![(Buffer::Expanded, f32s(expanded)), (Buffer::Depthwise, f32s(n * oh * ow * c_exp))];
        if started.is_some() {
            buffers.push((Buffer::Start, f32s(n * c_in * h * w)));
        }
        let gate = b.se.as_ref().map(|se| {
            buffers.extend([
                (Buffer::RowSums, f32s(n * oh * c_exp)),
                (Buffer::Pooled, f32s(n * c_exp)),
                (Buffer::Hidden, f32s(n * se.reduce.outputs())),
                (Buffer::Gate, f32s(n * c_exp)),
            ]);
            let gate = gate_scales(micro, b, c_out, oh * ow);
            if gate == GateScales::Weights {
                // W' in W's layout: panel-major (padded to whole panels) with the micro-kernels.
                let cols =
                    if micro.is_some() { b.project.outputs().next_multiple_of(PANEL) } else { b.project.outputs() };
                buffers.push((Buffer::ScaledWeights, f32s(n * c_exp * cols)));
            }
            gate
        });
        Ok(MbConvPlan { x, out, c_exp, streams, gate, buffers })
    }

    /// The scratch bytes to reserve, in layout order.
    pub(super) fn scratch_bytes(&self) -> Vec<usize> {
        self.buffers.iter().map(|&(_, bytes)| bytes).collect()
    }

    /// Where buffer `which` of node `id` was placed.
    fn slot(&self, l: &Lowering, id: NodeId, which: Buffer) -> Result<Base> {
        let index = self
            .buffers
            .iter()
            .position(|&(b, _)| b == which)
            .ok_or_else(|| Error::other(format!("the MBConv plan has no {which:?} buffer")))?;
        l.scratch(id, index).map(Base::Arena)
    }
}

/// Where the SE gate is applied before the projection, whose input is the depthwise
/// output A [pixels × C_exp] and whose weights W are [C_exp × C_out].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum GateScales {
    /// Row c of W, inside the GEMM micro-kernel as it is loaded: two multiplies per K
    /// step of every register tile, which only pays on maps smaller than one tile.
    InGemm,
    /// Column c of A, in place: pixels × C_exp multiplies.
    Activations,
    /// A per-sample copy W' of the weights: C_exp × C_out multiplies and a copy.
    Weights,
}

/// The cheapest place for the gate: in the GEMM for maps under one register tile of the
/// chosen kernels, else A unless it is over three times W's size. A is still in L2 from
/// the depthwise, while W comes from memory and W' is written and read again: rescaling A
/// in place won for B0's 14×14 blocks too, where A is 1.8–2.5× W (se-scale −0.01 ms per
/// block, the projection's cold W +0.003–0.009).
fn gate_scales(micro: Option<Isa>, b: &MbConv, c_out: usize, pixels: usize) -> GateScales {
    // A QDQ model snaps each product x · gate: only A scaled in place can.
    if b.se.as_ref().is_some_and(|se| se.scaled.is_some()) {
        return GateScales::Activations;
    }
    let under_one_tile = micro.is_some_and(|isa| pixels < isa.gemm_rows());
    if under_one_tile && kernel_activation(b.project.act).is_some() {
        GateScales::InGemm
    } else if pixels <= 3 * c_out {
        GateScales::Activations
    } else {
        GateScales::Weights
    }
}

/// A[s][p][c] *= gate[s][c] in place, for `n` samples of `pixels` × `c`, split over
/// blocks of pixels so threads share it; one `scale` micro-kernel call per block when the
/// kernels are on (the JIT's loop is 128-bit).
fn scale_activations(
    l: &mut Lowering,
    n: usize,
    (pixels, c): (usize, usize),
    a: Base,
    gate: Base,
    snap: Option<Unary>,
) -> Result<()> {
    const PIXELS: usize = 8;
    let blocks = pixels.div_ceil(PIXELS);
    // The scale micro-kernel multiplies only; a QDQ model's snap of the product runs here.
    let kernel = l.micro.and_then(|isa| isa.scale()).map(|(_, columns)| columns as usize).filter(|_| snap.is_none());
    l.kernel(n * blocks, move |kb| {
        let (a, gate) = (kb.addr(a, 0), kb.addr(gate, 0));
        let (lo, hi) = (kb.lo, kb.hi);
        kb.for_range(lo, hi, 1, |kb, item| {
            let (s, first, last) = kb.block_of(item, blocks, PIXELS, pixels);
            let gate_s = kb.offset(gate, s, (c * 4) as i64);
            let a_s = kb.offset(a, s, (pixels * c * 4) as i64);
            if let Some(f) = kernel {
                let start = kb.offset(a_s, first, (c * 4) as i64);
                let count = kb.b.ins().isub(last, first);
                let c = kb.ic(c as i64);
                kb.call_c(f, &[start, gate_s, count, c]);
                return;
            }
            kb.for_range(first, last, 1, |kb, px| {
                let row = kb.offset(a_s, px, (c * 4) as i64);
                kb.for_lanes(c, |kb, off, ty| {
                    let gp = kb.b.ins().iadd(gate_s, off);
                    let g = kb.load(ty, gp, 0);
                    let ap = kb.b.ins().iadd(row, off);
                    let v = kb.load(ty, ap, 0);
                    let v = kb.b.ins().fmul(v, g);
                    let v = match snap {
                        Some(u) => emit_unary(kb, u, v),
                        None => v,
                    };
                    kb.store(v, ap, 0);
                });
            });
        });
    })
}

/// W'[s][r][·] = W[r][·] · gate[s][r mod C], per sample, for W as `(rows, width)` (see
/// [`gemm::Product::b_rows`]) and C = `c` gate values; split over blocks of rows so threads share it,
/// one `scale` micro-kernel call per block when the kernels are on.
fn scale_weights(l: &mut Lowering, n: usize, c: usize, (rows, width): (usize, usize), bases: [Base; 3]) -> Result<()> {
    const ROWS: usize = 32;
    let blocks = rows.div_ceil(ROWS);
    let [w, gate, out] = bases;
    let kernel = l.micro.and_then(|isa| isa.scale()).map(|(rows, _)| rows as usize);
    l.kernel(n * blocks, move |kb| {
        let (w, gate, out) = (kb.addr(w, 0), kb.addr(gate, 0), kb.addr(out, 0));
        let (lo, hi) = (kb.lo, kb.hi);
        kb.for_range(lo, hi, 1, |kb, item| {
            let (s, first, last) = kb.block_of(item, blocks, ROWS, rows);
            let gate_s = kb.offset(gate, s, (c * 4) as i64);
            let out_s = kb.offset(out, s, (rows * width * 4) as i64);
            if let Some(f) = kernel {
                let count = kb.b.ins().isub(last, first);
                let (width, c) = (kb.ic(width as i64), kb.ic(c as i64));
                kb.call_c(f, &[w, gate_s, out_s, first, count, width, c]);
                return;
            }
            kb.for_range(first, last, 1, |kb, r| {
                let ch = kb.b.ins().urem_imm_u(r, c as i64);
                let gp = kb.offset(gate_s, ch, 4);
                let g = kb.load(types::F32, gp, 0);
                let gv = kb.b.ins().splat(types::F32X4, g);
                let src = kb.offset(w, r, (width * 4) as i64);
                let dst = kb.offset(out_s, r, (width * 4) as i64);
                kb.for_lanes(width, |kb, off, ty| {
                    let sp = kb.b.ins().iadd(src, off);
                    let v = kb.load_const(ty, sp, 0);
                    let f = if ty.is_vector() { gv } else { g };
                    let v = kb.b.ins().fmul(v, f);
                    let dp = kb.b.ins().iadd(dst, off);
                    kb.store(v, dp, 0);
                });
            });
        });
    })
}

pub(super) fn dense_buf(base: Base, dims: &[usize]) -> Buf {
    Buf::new(base, DType::F32, dims.to_vec(), activation_strides(dims))
}

pub(super) fn need_dense(buf: &Buf) -> Result<()> {
    if buf.strides != activation_strides(&buf.dims) || buf.offset != 0 || buf.dtype != DType::F32 {
        return Err(Error::unsupported("an MBConv block on a tensor that is not dense channels-last f32"));
    }
    Ok(())
}

pub(super) fn mbconv(l: &mut Lowering, id: NodeId, b: &MbConv) -> Result<()> {
    let block_input = l.input(id, 0)?;
    let out = l.output(id, 0)?;
    need_dense(&block_input)?;
    need_dense(&out)?;
    let plan = MbConvPlan::new(b, &block_input.dims, &out.dims, l.micro)?;
    let ([n, _, h, w], [_, _, oh, ow], c_exp) = (plan.x, plan.out, plan.c_exp);
    let slot = |l: &Lowering, which| plan.slot(l, id, which);
    // 0. A UIB block's leading depthwise conv, into scratch: the expansion's input.
    let x = match &b.start {
        Some(s) => start_depthwise(l, &block_input, s, dense_buf(slot(l, Buffer::Start)?, &plan.x))?,
        None => block_input.clone(),
    };
    // 1–2. Expand (streamed) and depthwise (+ SE pool).
    let d = dense_buf(slot(l, Buffer::Depthwise)?, &[n, c_exp, oh, ow]);
    let row_sums = match b.se {
        Some(_) => Some(slot(l, Buffer::RowSums)?),
        None => None,
    };
    // The SE gate's FC weights are packed first, so that the depthwise kernel can fetch
    // them into L2 while it computes.
    let gate = match &b.se {
        Some(se) => {
            let buffers = [slot(l, Buffer::Pooled)?, slot(l, Buffer::Hidden)?, slot(l, Buffer::Gate)?];
            Some(GateKernel::new(l, se, c_exp, buffers)?)
        }
        None => None,
    };
    let prefetch = gate.as_ref().and_then(GateKernel::weights);
    let epi = Epilogue { residual: None, act: b.dw.act, row_sums, prefetch };
    l.role = "expand+depthwise";
    match &b.expand {
        Some(e) if plan.streams => {
            l.traffic_saved += 2 * (n * h * w * c_exp * 4) as u64;
            stream_expand_depthwise(l, (&x, &d), (b, e), epi, slot(l, Buffer::Expanded)?)?
        }
        Some(e) => {
            let dst = slot(l, Buffer::Expanded)?;
            l.role = "expand";
            let mm = dense_product(l, e, (x.base, n * h * w), dst, None)?;
            gemm::emit(l, &mm)?;
            l.role = "depthwise";
            depthwise(l, &dense_buf(dst, &[n, c_exp, h, w]), &d, &b.dw, &b.dw_w, &b.dw_b.f32_data(), epi)?
        }
        None => {
            l.role = "depthwise";
            depthwise(l, &x, &d, &b.dw, &b.dw_w, &b.dw_b.f32_data(), epi)?
        }
    }
    // 3–4. The SE gate, then project (+ residual).
    let px = (oh * ow) as isize;
    // A per-sample copy of the weights scaled by the gate is f32: those weights stay f32.
    let project = match plan.gate {
        Some(GateScales::Weights) => Dense { w: b.project.w.without_int8_origin(), ..b.project.clone() },
        _ => b.project.clone(),
    };
    let mut mm = dense_product(l, &project, (d.base, oh * ow), out.base, b.residual.then_some(block_input.base))?;
    // Per-sample weights stride: 0 unless the gate scales a copy of the weights per sample.
    let mut w_stride = 0;
    if let (Some(gate), Some(scales)) = (gate, plan.gate) {
        let k = GateKernel { row_sums: Some((slot(l, Buffer::RowSums)?, oh, 1.0 / (oh * ow) as f64)), ..gate };
        l.role = "se-gate";
        gate_kernel(l, n, k)?;
        let s = slot(l, Buffer::Gate)?;
        match scales {
            // The micro-kernel scales row c of the weights by gate[c] as it loads it.
            GateScales::InGemm => mm.k_scale = Some((s, c_exp as isize)),
            GateScales::Activations => {
                l.role = "se-scale";
                let snap = b.se.as_ref().and_then(|se| se.scaled).map(|l| l.snap());
                scale_activations(l, n, (oh * ow, c_exp), d.base, s, snap)?;
            }
            GateScales::Weights => {
                // W'[n][c][o] = W[c][o] · gate[n][c], per sample, in W's layout.
                l.role = "se-scale";
                let rows = mm.b_rows();
                let scaled = slot(l, Buffer::ScaledWeights)?;
                scale_weights(l, n, c_exp, rows, [mm.b.base, s, scaled])?;
                mm.b.base = scaled;
                w_stride = (rows.0 * rows.1) as isize;
            }
        }
    }
    let cout = plan.out[1];
    mm.batch = vec![BatchDim { extent: n, a: px * c_exp as isize, b: w_stride, out: px * cout as isize, c: 0 }];
    l.role = "project";
    gemm::emit(l, &mm)
}

/// Expansion rows are produced just ahead of the depthwise window into per-chunk rings.
fn stream_expand_depthwise(
    l: &mut Lowering,
    (x, d): (&Buf, &Buf),
    (b, e): (&MbConv, &effc_ir::op::Dense),
    epi: Epilogue,
    rings: Base,
) -> Result<()> {
    let [n, cin, h, w] = dims4(&x.dims)?;
    let [_, c_exp, oh, ow] = dims4(&d.dims)?;
    let expanded = dense_buf(Base::Arena(0), &[n, c_exp, h, w]);
    let g = geom(&expanded, d, &b.dw.kernel, &b.dw.strides, &b.dw.dilations, &b.dw.pads_begin)?;
    let (wdw, bdw) = depthwise_weights(l, g, &b.dw_w, &b.dw_b.f32_data())?;
    let op = Window::Depthwise { w: wdw, bias: bdw };
    let span = window_span(b)?;
    let row_bytes = (w * c_exp * 4) as i64;
    let (chunks, per) = row_chunks(oh, span);
    let xs = [0, 4, 0, (c_exp * 4) as i64];
    let os = [(oh * ow * c_exp * 4) as i64, 4, (ow * c_exp * 4) as i64, (c_exp * 4) as i64];
    // One expanded row: [W × C_in] × [C_in × C_exp] + bias, activation.
    let row_mm = dense_product(l, e, (x.base, w), rings, None)?;
    let (we, be) = (row_mm.b.base, row_mm.c.map(|c| c.base));
    let micro = gemm::micro(l, &row_mm);
    let dw_micro = crate::emit::window::dw_micro(l, g, op, &epi, (xs, os));
    let window = WindowRows {
        g,
        op,
        micro: dw_micro,
        epi,
        strides: (xs, os),
        rows: Rows::Ring { k: span, row_bytes },
        vector: true,
    };
    let (x_base, d_base) = (x.base, d.base);
    l.kernel(n * chunks, move |kb| {
        let xb = kb.addr(x_base, 0);
        let db = kb.addr(d_base, 0);
        let ring0 = kb.addr(rings, 0);
        let wexp = kb.addr(we, 0);
        let bexp = be.map(|b| kb.addr(b, 0));
        let sums = window.epi.row_sums.map(|s| kb.addr(s, 0));
        let (wdw, bdw) = (kb.addr(wdw, 0), kb.addr(bdw, 0));
        let (lo, hi) = (kb.lo, kb.hi);
        // A thread that runs a sample's next chunk right after the previous one (all of
        // them at one thread) goes on in the same ring with the rows it holds, instead of
        // recomputing the window's overlap in the next chunk's ring.
        let var = |kb: &mut Kb| kb.b.declare_var(types::I64);
        let (ring_var, next, prev_n) = (var(kb), var(kb), var(kb));
        let none = kb.ic(-1);
        kb.b.def_var(ring_var, ring0);
        kb.b.def_var(next, none);
        kb.b.def_var(prev_n, none);
        kb.for_range(lo, hi, 1, |kb, idx| {
            let (nn, oh0, oh1) = kb.block_of(idx, chunks, per, oh);
            let same = kb.b.use_var(prev_n);
            let goes_on = kb.b.ins().icmp(IntCC::Equal, same, nn);
            kb.b.def_var(prev_n, nn);
            let own = kb.offset(ring0, idx, span as i64 * row_bytes);
            let held = kb.b.use_var(ring_var);
            let ring = kb.b.ins().select(goes_on, held, own);
            kb.b.def_var(ring_var, ring);
            let x_n = kb.offset(xb, nn, (h * w * cin * 4) as i64);
            // First input row this chunk needs, unless the ring holds it already.
            let first = kb.b.ins().imul_imm_s(oh0, g.sh as i64);
            let first = kb.b.ins().iadd_imm_s(first, -(g.ph as i64));
            let zero = kb.ic(0);
            let first = kb.b.ins().smax(first, zero);
            let produced = kb.b.use_var(next);
            let first = kb.b.ins().select(goes_on, produced, first);
            kb.b.def_var(next, first);
            kb.for_range(oh0, oh1, 1, |kb, ohv| {
                // Produce the rows up to the bottom of this output row's window.
                let last = kb.b.ins().imul_imm_s(ohv, g.sh as i64);
                let last = kb.b.ins().iadd_imm_s(last, span as i64 - 1 - g.ph as i64);
                let h_end = kb.ic(h as i64);
                let end = kb.b.ins().iadd_imm_s(last, 1);
                let end = kb.b.ins().smin(end, h_end);
                let cur = kb.b.use_var(next);
                kb.for_range(cur, end, 1, |kb, row| {
                    let a = kb.offset(x_n, row, (w * cin * 4) as i64);
                    let slot = kb.b.ins().urem_imm_u(row, span as i64);
                    let out = kb.offset(ring, slot, row_bytes);
                    let ptrs = Ptrs { a, b: wexp, out, c: bexp, res: None, ks: None };
                    emit_rows(kb, &row_mm, &ptrs, micro);
                });
                let after = kb.b.ins().smax(cur, end);
                kb.b.def_var(next, after);
                let r = kb.b.ins().imul_imm_s(nn, oh as i64);
                let r = kb.b.ins().iadd(r, ohv);
                let o_row = kb.offset(db, r, os[2]);
                let p = WindowPtrs { x_n: ring, o_row, residual: None, sums, w: Some(wdw), bias: Some(bdw) };
                window.emit(kb, p, RowAt { n: nn, oh: ohv, r });
            });
        });
    })
}

/// A block's leading depthwise conv (UIB) of `x` into `out`, with its own activation;
/// returns `out`, the expansion's input.
pub(super) fn start_depthwise(l: &mut Lowering, x: &Buf, s: &effc_ir::op::StartDepthwise, out: Buf) -> Result<Buf> {
    let epi = Epilogue { act: s.conv.act, ..Epilogue::default() };
    l.role = "start-depthwise";
    depthwise(l, x, &out, &s.conv, &s.w, &s.b.f32_data(), epi)?;
    Ok(out)
}
