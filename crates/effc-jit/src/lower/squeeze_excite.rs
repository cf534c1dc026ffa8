//! Squeeze-excite: the standalone op (pool, gate, scale) and the gate kernel that fused
//! blocks share (two tiny FC layers per sample, from pooled values or per-row sums).

use cranelift_codegen::ir::{InstBuilder, Value, types};
use effc_ir::op::{Dense, SqueezeExcite, Unary};
use effc_ir::{DType, Error, NodeId, Result};

use super::gemm::dense_product;
use super::{Lowering, loaded};
use crate::emit::activation::{emit_unary, kernel_activation};
use crate::emit::gemm::{Micro, Ptrs, call_micro, micro, panel_len};
use crate::emit::window::Prefetch;
use crate::emit::{Base, Kb};
use crate::layout::{Buf, row_major};
use crate::strided::Nest;

/// The scratch buffers of a standalone squeeze-excite, each [N, ·] f32.
#[derive(Clone, Copy, Debug)]
pub(super) enum SeBuffer {
    /// The pooled input, [N, C].
    Pooled,
    /// FC1's output, [N, squeezed].
    Hidden,
    /// The gate, [N, C].
    Gate,
}

impl SeBuffer {
    const ALL: [SeBuffer; 3] = [SeBuffer::Pooled, SeBuffer::Hidden, SeBuffer::Gate];

    fn bytes(self, se: &SqueezeExcite, (n, c): (usize, usize)) -> usize {
        match self {
            SeBuffer::Pooled | SeBuffer::Gate => n * c * 4,
            SeBuffer::Hidden => n * se.reduce.outputs() * 4,
        }
    }

    /// Its scratch slot: the planner sizes slots in [`SeBuffer::ALL`]'s order.
    fn base(self, l: &Lowering, id: NodeId) -> Result<Base> {
        Ok(Base::Arena(l.scratch(id, self as usize)?))
    }
}

/// Scratch bytes of a standalone squeeze-excite on `shape`, one entry per [`SeBuffer`].
pub(super) fn se_scratch_bytes(se: &SqueezeExcite, shape: &[usize]) -> Result<Vec<usize>> {
    let &[n, c, ..] = shape else {
        return Err(Error::unsupported(format!("squeeze-excite on {shape:?}")));
    };
    Ok(SeBuffer::ALL.iter().map(|b| b.bytes(se, (n, c))).collect())
}

/// The SE gate of sample `n` (a kernel over samples): pooled (from row sums or already
/// pooled) → FC1 + act → FC2 + gate → `gate` buffer.
pub(super) struct GateKernel {
    pub(super) c: usize,
    pub(super) sq: usize,
    /// Row sums [N·rows, C] to average, or `None` when `pooled` is already filled.
    pub(super) row_sums: Option<(Base, usize, f64)>,
    pub(super) pooled: Base,
    pub(super) hidden: Base,
    pub(super) gate: Base,
    pub(super) fc: Fc,
    /// A QDQ model's snap of the pooled means.
    pub(super) pooled_snap: Option<Unary>,
}

/// How the gate's two FC layers run.
#[derive(Clone, Copy)]
pub(super) enum Fc {
    /// 1-row GEMM micro-kernel calls (a matrix-vector product vectorised over outputs):
    /// weights packed [in][out], bias and activation in the kernel's epilogue.
    Micro { layers: [Micro; 2], w: [Base; 2] },
    /// One JIT dot product per output over weights [out][in].
    Jit { w: [Base; 2], b: [Base; 2], act: [Option<Unary>; 2] },
}

impl GateKernel {
    /// The gate of `se` over `c` channels with (pooled, hidden, gate) buffers; `pooled`
    /// must be filled by an earlier kernel unless `row_sums` is set.
    pub(super) fn new(
        l: &mut Lowering,
        se: &SqueezeExcite,
        c: usize,
        [pooled, hidden, gate]: [Base; 3],
    ) -> Result<Self> {
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
        let pooled_snap = se.pooled.map(|l| l.snap());
        Ok(GateKernel { c, sq: se.reduce.outputs(), row_sums: None, pooled, hidden, gate, fc, pooled_snap })
    }

    /// The packed FC weights as one region to prefetch (micro-kernel layers only): they
    /// were packed one after the other, with their biases, into the constant pool; if a
    /// pool chunk boundary fell between them, only FC1's.
    pub(super) fn weights(&self) -> Option<Prefetch> {
        let Fc::Micro { w: [Base::Const(w1), Base::Const(w2)], .. } = self.fc else { return None };
        let bytes = |k: usize, n: usize| panel_len(k, n) * 4;
        let (b1, b2) = (bytes(self.c, self.sq), bytes(self.sq, self.c));
        let (lo, hi) = (w1.min(w2), (w1 + b1).max(w2 + b2));
        let contiguous = hi - lo <= b1 + b2 + (4 << 10);
        Some(if contiguous { Prefetch { addr: lo, bytes: hi - lo } } else { Prefetch { addr: w1, bytes: b1 } })
    }
}

/// The SE block's FC layers as GEMM micro-kernel calls, when the kernels are on and have
/// both activations.
fn fc_micro(l: &mut Lowering, se: &SqueezeExcite) -> Result<Option<Fc>> {
    let has = |d: &Dense| kernel_activation(d.act).is_some();
    if l.micro.is_none() || !has(&se.reduce) || !has(&se.expand) {
        return Ok(None);
    }
    // One row each; the pointers are passed at run time.
    let mut layer = |d: &Dense| {
        let mm = dense_product(l, d, (Base::Arena(0), 1), Base::Arena(0), None)?;
        let m = micro(l, &mm).ok_or_else(|| Error::other("an SE layer the GEMM micro-kernel refused"))?;
        Ok::<_, Error>((m, mm.b.base))
    };
    let (m1, w1) = layer(&se.reduce)?;
    let (m2, w2) = layer(&se.expand)?;
    Ok(Some(Fc::Micro { layers: [m1, m2], w: [w1, w2] }))
}

pub(super) fn gate_kernel(l: &mut Lowering, n: usize, k: GateKernel) -> Result<()> {
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
            if let Some(snap) = k.pooled_snap {
                kb.for_lanes(c, |kb, off, ty| {
                    let p = kb.b.ins().iadd(pooled_n, off);
                    let v = kb.load(ty, p, 0);
                    let v = emit_unary(kb, snap, v);
                    kb.store(v, p, 0);
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
    act: Option<Unary>,
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

pub(super) fn squeeze_excite(l: &mut Lowering, id: NodeId, se: &SqueezeExcite) -> Result<()> {
    let x = l.input(id, 0)?;
    let out = l.output(id, 0)?;
    if x.dtype != DType::F32 {
        return Err(Error::unsupported("squeeze-excite over non-f32"));
    }
    let &[n, c, ..] = x.dims.as_slice() else {
        return Err(Error::unsupported(format!("squeeze-excite on {:?}", x.dims)));
    };
    let pooled = Buf::new(SeBuffer::Pooled.base(l, id)?, DType::F32, vec![n, c, 1, 1], row_major(&[n, c, 1, 1]));
    super::reduce::mean_hw(l, &pooled, &x)?;
    let gate = SeBuffer::Gate.base(l, id)?;
    let k = GateKernel::new(l, se, c, [pooled.base, SeBuffer::Hidden.base(l, id)?, gate])?;
    gate_kernel(l, n, k)?;
    let g = Buf::new(gate, DType::F32, vec![n, c, 1, 1], row_major(&[n, c, 1, 1])).broadcast_to(&x.dims);
    let snap = se.scaled.map(|l| l.snap());
    l.nest(&Nest::over(&out, &[&x, &g]), &move |kb, _, ins, _| {
        let [x, g] = loaded(ins);
        let y = kb.b.ins().fmul(x, g);
        match snap {
            Some(u) => emit_unary(kb, u, y),
            None => y,
        }
    })
}
