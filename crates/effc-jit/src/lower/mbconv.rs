//! MBConv super-ops and squeeze-excite.
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
use cranelift_codegen::ir::{InstBuilder, Value, types};
use effc_ir::op::{Dense, MbConv, SqueezeExcite};
use effc_ir::{DType, Error, NodeId, Result};

use super::conv::{Epilogue, Prefetch, Rows, Window, WindowPtrs, depthwise, depthwise_weights, geom, window_row};
use super::elementwise::emit_unary;
use super::{Lowering, Weights, loaded};
use effc_kernels::Isa;
use effc_kernels::gemm::PANEL;

use super::gemm::{Mat, MatMul, Micro, Ptrs, UNSET_B, call_micro, emit_rows, micro, set_const_b};
use crate::emit::{Base, Kb};
use crate::layout::{Buf, activation_strides, row_major};
use crate::strided::Nest;

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
fn dims4(shape: &[usize]) -> Result<[usize; 4]> {
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
    /// [N, C_in, H, W] and [N, C_out, OH, OW].
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
        let x = dims4(x_shape)?;
        let out = dims4(out_shape)?;
        let ([n, _, h, w], [_, c_out, oh, ow]) = (x, out);
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

/// Scratch for a standalone squeeze-excite: pooled vector, hidden vector, gate.
pub(super) fn se_scratch_bytes(se: &SqueezeExcite, shape: &[usize]) -> Result<Vec<usize>> {
    let &[n, c, ..] = shape else {
        return Err(Error::unsupported(format!("squeeze-excite on {shape:?}")));
    };
    Ok(vec![n * c * 4, n * se.reduce.outputs() * 4, n * c * 4])
}

/// Stores a dense layer's weights [out, in] as the B ([in] × [out]) of `mm`.
fn set_dense_b(l: &mut Lowering, mm: &mut MatMul, d: &Dense) -> Result<()> {
    let data = d.w.f32_data();
    let w = Weights::new(&data, [d.outputs(), d.inputs()], "dense layer weights")?;
    set_const_b(l, mm, |c, r| w.at([r, c]));
    Ok(())
}

/// Dense layer `d` applied to `rows` channels-last pixels at `a`, into `out`: a GEMM with
/// its weights and bias stored, its activation in the epilogue and an optional residual
/// (same layout as `out`) added before it.
fn dense_gemm(
    l: &mut Lowering,
    d: &Dense,
    (a, rows): (Base, usize),
    out: Base,
    residual: Option<Base>,
) -> Result<MatMul> {
    let (k, n) = (d.inputs(), d.outputs());
    let bias = l.const_f32(&d.b.f32_data());
    let mut mm = MatMul {
        m: rows,
        n,
        k,
        a: Mat { base: a, offset: 0, rs: k as isize, cs: 1 },
        b: UNSET_B,
        out: Mat { base: out, offset: 0, rs: n as isize, cs: 1 },
        c: Some(Mat { base: bias, offset: 0, rs: 0, cs: 1 }),
        alpha: 1.0,
        beta: 1.0,
        batch: vec![],
        residual: residual.map(|r| Mat { base: r, offset: 0, rs: n as isize, cs: 1 }),
        act: d.act,
        k_scale: None,
        b_panels: false,
    };
    set_dense_b(l, &mut mm, d)?;
    Ok(mm)
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
    let under_one_tile = micro.is_some_and(|isa| pixels < isa.gemm_rows());
    if under_one_tile && super::gemm::micro_activation(b.project.act).is_some() {
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
fn scale_activations(l: &mut Lowering, n: usize, (pixels, c): (usize, usize), a: Base, gate: Base) -> Result<()> {
    const PIXELS: usize = 8;
    let blocks = pixels.div_ceil(PIXELS);
    let kernel = l.micro.and_then(|isa| isa.scale()).map(|(_, columns)| columns as usize);
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
                    kb.store(v, ap, 0);
                });
            });
        });
    })
}

/// The projection weights as rows that each scale by one gate value: (rows, width).
/// Row-major B is [C_exp][C_out]; panel-major B is [panels][C_exp][32], row r of which
/// belongs to channel r mod C_exp.
fn weight_rows(mm: &MatMul) -> (usize, usize) {
    if mm.b_panels { (mm.n.div_ceil(PANEL) * mm.k, PANEL) } else { (mm.k, mm.n) }
}

/// W'[s][r][·] = W[r][·] · gate[s][r mod C], per sample, for W as `(rows, width)` (see
/// [`weight_rows`]) and C = `c` gate values; split over blocks of rows so threads share it,
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

fn dense_buf(base: Base, dims: &[usize]) -> Buf {
    Buf::new(base, DType::F32, dims.to_vec(), activation_strides(dims))
}

/// The SE gate of sample `n` (a kernel over samples): pooled (from row sums or already
/// pooled) → FC1 + act → FC2 + gate → `gate` buffer.
struct GateKernel {
    c: usize,
    sq: usize,
    /// Row sums [N·rows, C] to average, or `None` when `pooled` is already filled.
    row_sums: Option<(Base, usize, f64)>,
    pooled: Base,
    hidden: Base,
    gate: Base,
    fc: Fc,
}

/// How the gate's two FC layers run.
#[derive(Clone, Copy)]
enum Fc {
    /// 1-row GEMM micro-kernel calls (a matrix-vector product vectorised over outputs):
    /// weights packed [in][out], bias and activation in the kernel's epilogue.
    Micro { layers: [Micro; 2], w: [Base; 2] },
    /// One JIT dot product per output over weights [out][in].
    Jit { w: [Base; 2], b: [Base; 2], act: [Option<effc_ir::op::Unary>; 2] },
}

impl GateKernel {
    /// The gate of `se` over `c` channels with (pooled, hidden, gate) buffers; `pooled`
    /// must be filled by an earlier kernel unless `row_sums` is set.
    fn new(l: &mut Lowering, se: &SqueezeExcite, c: usize, [pooled, hidden, gate]: [Base; 3]) -> Result<Self> {
        let fc = match fc_micro(l, se)? {
            Some(fc) => fc,
            None => {
                let mut pack = |t: &effc_ir::Tensor| l.const_f32(&t.f32_data());
                Fc::Jit {
                    w: [pack(&se.reduce.w), pack(&se.expand.w)],
                    b: [pack(&se.reduce.b), pack(&se.expand.b)],
                    act: [se.reduce.act, se.expand.act],
                }
            }
        };
        Ok(GateKernel { c, sq: se.reduce.outputs(), row_sums: None, pooled, hidden, gate, fc })
    }

    /// The packed FC weights as one region to prefetch (micro-kernel layers only): they
    /// were packed one after the other, with their biases, into the constant pool; if a
    /// pool chunk boundary fell between them, only FC1's.
    fn weights(&self) -> Option<Prefetch> {
        let Fc::Micro { w: [Base::Const(w1), Base::Const(w2)], .. } = self.fc else { return None };
        let bytes = |k: usize, n: usize| super::gemm::panel_len(k, n) * 4;
        let (b1, b2) = (bytes(self.c, self.sq), bytes(self.sq, self.c));
        let (lo, hi) = (w1.min(w2), (w1 + b1).max(w2 + b2));
        let contiguous = hi - lo <= b1 + b2 + (4 << 10);
        Some(if contiguous { Prefetch { addr: lo, bytes: hi - lo } } else { Prefetch { addr: w1, bytes: b1 } })
    }
}

/// The SE block's FC layers as GEMM micro-kernel calls, when the kernels are on and have
/// both activations.
fn fc_micro(l: &mut Lowering, se: &SqueezeExcite) -> Result<Option<Fc>> {
    let has = |d: &Dense| super::gemm::micro_activation(d.act).is_some();
    if l.micro.is_none() || !has(&se.reduce) || !has(&se.expand) {
        return Ok(None);
    }
    // One row each; the pointers are passed at run time.
    let mut layer = |d: &Dense| {
        let mm = dense_gemm(l, d, (Base::Arena(0), 1), Base::Arena(0), None)?;
        let m = micro(l, &mm).ok_or_else(|| Error::other("an SE layer the GEMM micro-kernel refused"))?;
        Ok::<_, Error>((m, mm.b.base))
    };
    let (m1, w1) = layer(&se.reduce)?;
    let (m2, w2) = layer(&se.expand)?;
    Ok(Some(Fc::Micro { layers: [m1, m2], w: [w1, w2] }))
}

fn gate_kernel(l: &mut Lowering, n: usize, k: GateKernel) -> Result<()> {
    l.kernel(n, move |kb| {
        let (lo, hi) = (kb.lo, kb.hi);
        let c = k.c;
        let addr = |kb: &mut Kb, b: Base| kb.addr(b, 0);
        let (pooled, hidden, gate) = (addr(kb, k.pooled), addr(kb, k.hidden), addr(kb, k.gate));
        let sums = k.row_sums.map(|(b, rows, inv)| (addr(kb, b), rows, inv));
        kb.for_range(lo, hi, 1, |kb, s| {
            let pooled_n = kb.offset(pooled, s, (c * 4) as i64);
            if let Some((sums, rows, inv)) = sums {
                let sums_n = kb.offset(sums, s, (rows * c * 4) as i64);
                kb.for_lanes(c, |kb, off, ty| {
                    let p = kb.b.ins().iadd(sums_n, off);
                    let mut acc = kb.fc(ty, 0.0);
                    for r in 0..rows {
                        let v = kb.load(ty, p, (r * c * 4) as i32);
                        acc = kb.b.ins().fadd(acc, v);
                    }
                    let f = kb.fc(ty, inv);
                    let acc = kb.b.ins().fmul(acc, f);
                    let q = kb.b.ins().iadd(pooled_n, off);
                    kb.store(acc, q, 0);
                });
            }
            // FC1: hidden = act1(W1 · pooled + b1); FC2: gate = act2(W2 · hidden + b2).
            let hidden_n = kb.offset(hidden, s, (k.sq * 4) as i64);
            let gate_n = kb.offset(gate, s, (c * 4) as i64);
            // Constant addresses are immediates, so computing them here costs nothing.
            match k.fc {
                Fc::Micro { layers: [m1, m2], w } => {
                    let one = kb.ic(1);
                    let [w1, w2] = w.map(|b| addr(kb, b));
                    let p1 = Ptrs { a: pooled_n, b: w1, out: hidden_n, c: None, res: None, ks: None };
                    call_micro(kb, m1, &p1, one);
                    let p2 = Ptrs { a: hidden_n, b: w2, out: gate_n, c: None, res: None, ks: None };
                    call_micro(kb, m2, &p2, one);
                }
                Fc::Jit { w, b, act } => {
                    let ([w1, w2], [b1, b2]) = (w.map(|x| addr(kb, x)), b.map(|x| addr(kb, x)));
                    fully_connected(kb, (w1, b1), pooled_n, c, hidden_n, k.sq, act[0]);
                    fully_connected(kb, (w2, b2), hidden_n, k.sq, gate_n, c, act[1]);
                }
            }
        });
    })
}

/// out[j] = act(b[j] + Σ_i w[j][i] · x[i]) for `outputs` rows of `inputs` weights.
fn fully_connected(
    kb: &mut Kb,
    (w, b): (Value, Value),
    x: Value,
    inputs: usize,
    out: Value,
    outputs: usize,
    act: Option<effc_ir::op::Unary>,
) {
    kb.for_n(outputs, |kb, j| {
        let row = kb.offset(w, j, (inputs * 4) as i64);
        let acc = dot(kb, row, x, inputs);
        let bp = kb.offset(b, j, 4);
        let bias = kb.load_const(types::F32, bp, 0);
        let v = kb.b.ins().fadd(acc, bias);
        let v = match act {
            Some(u) => emit_unary(kb, u, v),
            None => v,
        };
        let op = kb.offset(out, j, 4);
        kb.store(v, op, 0);
    });
}

/// Σ_i a[i]·b[i] over `len` f32s (a: constant weights, b: activations), vectorised.
fn dot(kb: &mut Kb, a: Value, b: Value, len: usize) -> Value {
    let mut vacc = kb.fc(types::F32X4, 0.0);
    let nv = len / 4;
    if nv > 0 {
        let var = kb.b.declare_var(types::F32X4);
        kb.b.def_var(var, vacc);
        kb.for_n(nv, |kb, i| {
            let ap = kb.offset(a, i, 16);
            let bp = kb.offset(b, i, 16);
            let x = kb.load_const(types::F32X4, ap, 0);
            let y = kb.load(types::F32X4, bp, 0);
            let acc = kb.b.use_var(var);
            let acc = kb.fma(x, y, acc);
            kb.b.def_var(var, acc);
        });
        vacc = kb.b.use_var(var);
    }
    let mut acc = kb.b.ins().extractlane(vacc, 0);
    for lane in 1..4 {
        let l = kb.b.ins().extractlane(vacc, lane);
        acc = kb.b.ins().fadd(acc, l);
    }
    for j in nv * 4..len {
        let x = kb.load_const(types::F32, a, (j * 4) as i32);
        let y = kb.load(types::F32, b, (j * 4) as i32);
        acc = kb.fma(x, y, acc);
    }
    acc
}

fn need_dense(buf: &Buf) -> Result<()> {
    if buf.strides != activation_strides(&buf.dims) || buf.offset != 0 || buf.dtype != DType::F32 {
        return Err(Error::unsupported("an MBConv block on a tensor that is not dense channels-last f32"));
    }
    Ok(())
}

pub(super) fn mbconv(l: &mut Lowering, id: NodeId, b: &MbConv) -> Result<()> {
    let x = l.input(id, 0)?;
    let out = l.output(id, 0)?;
    need_dense(&x)?;
    need_dense(&out)?;
    let plan = MbConvPlan::new(b, &x.dims, &out.dims, l.micro)?;
    let ([n, _, h, w], [_, _, oh, ow], c_exp) = (plan.x, plan.out, plan.c_exp);
    let slot = |l: &Lowering, which| plan.slot(l, id, which);
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
            stream_expand_depthwise(l, &x, &d, b, e, epi, slot(l, Buffer::Expanded)?)?
        }
        Some(e) => {
            let dst = slot(l, Buffer::Expanded)?;
            l.role = "expand";
            let mm = dense_gemm(l, e, (x.base, n * h * w), dst, None)?;
            super::gemm::emit(l, &mm)?;
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
    let mut mm = dense_gemm(l, &b.project, (d.base, oh * ow), out.base, b.residual.then_some(x.base))?;
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
                scale_activations(l, n, (oh * ow, c_exp), d.base, s)?;
            }
            GateScales::Weights => {
                // W'[n][c][o] = W[c][o] · gate[n][c], per sample, in W's layout.
                l.role = "se-scale";
                let rows = weight_rows(&mm);
                let scaled = slot(l, Buffer::ScaledWeights)?;
                scale_weights(l, n, c_exp, rows, [mm.b.base, s, scaled])?;
                mm.b.base = scaled;
                w_stride = (rows.0 * rows.1) as isize;
            }
        }
    }
    let cout = plan.out[1];
    mm.batch = vec![[n as isize, px * c_exp as isize, w_stride, px * cout as isize, 0]];
    l.role = "project";
    super::gemm::emit(l, &mm)
}

/// Expansion rows are produced just ahead of the depthwise window into per-chunk rings.
#[allow(clippy::too_many_arguments)]
fn stream_expand_depthwise(
    l: &mut Lowering,
    x: &Buf,
    d: &Buf,
    b: &MbConv,
    e: &Dense,
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
    let row_mm = dense_gemm(l, e, (x.base, w), rings, None)?;
    let (we, be) = (row_mm.b.base, row_mm.c.map(|c| c.base));
    let micro = super::gemm::micro(l, &row_mm);
    let dw_micro = super::conv::dw_micro(l, g, op, &epi, (xs, os));
    let (x_base, d_base) = (x.base, d.base);
    l.kernel(n * chunks, move |kb| {
        let xb = kb.addr(x_base, 0);
        let db = kb.addr(d_base, 0);
        let ring0 = kb.addr(rings, 0);
        let wexp = kb.addr(we, 0);
        let bexp = be.map(|b| kb.addr(b, 0));
        let sums = epi.row_sums.map(|s| kb.addr(s, 0));
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
                let rows = Rows::Ring { k: span, row_bytes };
                window_row(kb, g, (op, dw_micro), &epi, (xs, os), rows, p, nn, ohv, r, true);
            });
        });
    })
}

pub(super) fn squeeze_excite(l: &mut Lowering, id: NodeId, se: &SqueezeExcite) -> Result<()> {
    let x = l.input(id, 0)?;
    let out = l.output(id, 0)?;
    if x.dtype != DType::F32 {
        return Err(Error::unsupported("squeeze-excite over non-f32"));
    }
    let &[n, c, ..] = x.dims.as_slice() else {
        return Err(Error::unsupported(format!("squeeze-excite on {:?}", x.dims)));
    };
    let pooled = Buf::new(Base::Arena(l.scratch(id, 0)?), DType::F32, vec![n, c, 1, 1], row_major(&[n, c, 1, 1]));
    super::reduce::mean_hw(l, &pooled, &x)?;
    let gate = Base::Arena(l.scratch(id, 2)?);
    let k = GateKernel::new(l, se, c, [pooled.base, Base::Arena(l.scratch(id, 1)?), gate])?;
    gate_kernel(l, n, k)?;
    let g = Buf::new(gate, DType::F32, vec![n, c, 1, 1], row_major(&[n, c, 1, 1])).broadcast_to(&x.dims);
    l.nest(&Nest::over(&out, &[&x, &g]), &|kb, _, ins, _| {
        let [x, g] = loaded(ins);
        kb.b.ins().fmul(x, g)
    })
}
