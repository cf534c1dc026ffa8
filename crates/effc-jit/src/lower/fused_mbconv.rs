//! Fused-MBConv super-ops: a dense k×k expansion conv + activation, then a 1×1 projection
//! with bias and the optional residual add.
//!
//! Streamed (micro-kernels on, rows small enough): one work item per output row gathers
//! the row's receptive fields into a stack patch (`im2col_row`), the expansion GEMM writes
//! the expanded row [OW × C_exp] (bias and activation in its epilogue) into a second stack
//! buffer, and the projection GEMM reads it back from L1 into the output row, adding the
//! residual in its epilogue: the expanded tensor, the block's largest, never exists.
//! Otherwise the expansion runs as the conv op's lowering into scratch and the projection
//! as a product over it.

use cranelift_codegen::ir::{InstBuilder, StackSlotData, StackSlotKind, types};
use effc_ir::op::FusedMbConv;
use effc_ir::{Error, NodeId, Result};
use effc_kernels::Isa;

use super::conv::conv_bufs;
use super::gemm::dense_product;
use super::mbconv::{dense_buf, dims4, need_dense, start_depthwise};
use super::{Lowering, Weights};
use crate::emit::activation::kernel_activation;
use crate::emit::gemm::{self, Mat, ProductSpec, Ptrs};
use crate::emit::window::{Epilogue, Rows, byte_strides, geom, row_table};
use crate::emit::{Base, Kb};

/// The largest stack buffer of one streamed row (the patch, or the expanded row).
const ROW_BYTES: usize = 128 << 10;

/// How a Fused-MBConv block runs, decided once from its shapes and the kernel variant;
/// the planner sizes scratch from it and the lowering follows it.
pub(super) struct FusedMbConvPlan {
    /// Dims [N, C, H, W] of the expansion's input (after a leading depthwise conv, if any)
    /// and of the output.
    x: [usize; 4],
    out: [usize; 4],
    c_exp: usize,
    /// Output rows stream through stack buffers (no scratch for the expansion).
    streams: bool,
    /// The leading depthwise conv's output has a buffer.
    started: bool,
}

/// Scratch slots of a Fused-MBConv block, in the planner's order.
const EXPANDED: usize = 0;
const STARTED: usize = 1;

impl FusedMbConvPlan {
    pub(super) fn new(b: &FusedMbConv, x: &[usize], out: &[usize], micro: Option<Isa>) -> Result<Self> {
        let started = b.start.as_ref().map(|s| s.output_shape(x)).transpose()?;
        let (x, out, c_exp) = (dims4(started.as_deref().unwrap_or(x))?, dims4(out)?, b.expanded());
        let taps: usize = b.expand.kernel.iter().product();
        let patch = out[3].saturating_mul(taps).saturating_mul(x[1]).saturating_mul(4);
        let row = out[3].saturating_mul(c_exp).saturating_mul(4);
        let kernels = micro.and_then(|isa| isa.gemm()).is_some()
            && kernel_activation(b.expand.act).is_some()
            && kernel_activation(b.project.act).is_some();
        let streams = kernels && patch <= ROW_BYTES && row <= ROW_BYTES;
        Ok(FusedMbConvPlan { x, out, c_exp, streams, started: started.is_some() })
    }

    /// Scratch bytes per slot: the whole expanded tensor unless rows stream
    /// ([`EXPANDED`]), then the leading depthwise conv's output ([`STARTED`]).
    pub(super) fn scratch_bytes(&self) -> Vec<usize> {
        let ([n, c_in, h, w], [_, _, oh, ow]) = (self.x, self.out);
        let expanded = if self.streams { 0 } else { n * oh * ow * self.c_exp * 4 };
        let started = if self.started { n * c_in * h * w * 4 } else { 0 };
        vec![expanded, started]
    }
}

pub(super) fn fused_mbconv(l: &mut Lowering, id: NodeId, b: &FusedMbConv) -> Result<()> {
    let block_input = l.input(id, 0)?;
    let out = l.output(id, 0)?;
    need_dense(&block_input)?;
    need_dense(&out)?;
    let plan = FusedMbConvPlan::new(b, &block_input.dims, &out.dims, l.micro)?;
    let x = match &b.start {
        Some(s) => start_depthwise(l, &block_input, s, dense_buf(Base::Arena(l.scratch(id, STARTED)?), &plan.x))?,
        None => block_input.clone(),
    };
    let residual = b.residual.then_some(block_input.base);
    let bias = b.expand_b.f32_data();
    if plan.streams {
        l.role = "expand+project";
        l.traffic_saved += 2 * (plan.out[0] * plan.out[2] * plan.out[3] * plan.c_exp * 4) as u64;
        return streamed(l, &plan, (x.base, out.base, residual), b, &bias);
    }
    let [n, _, oh, ow] = plan.out;
    let expanded = dense_buf(Base::Arena(l.scratch(id, EXPANDED)?), &[n, plan.c_exp, oh, ow]);
    l.role = "expand";
    let epi = Epilogue { act: b.expand.act, ..Epilogue::default() };
    conv_bufs(l, (&x, &expanded), &b.expand, &b.expand_w, &bias, epi)?;
    l.role = "project";
    let product = dense_product(l, &b.project, (expanded.base, n * oh * ow), out.base, residual)?;
    gemm::emit(l, &product)
}

/// The streamed schedule (see the module doc): one work item per output row.
fn streamed(
    l: &mut Lowering,
    plan: &FusedMbConvPlan,
    (x, out, block_input): (Base, Base, Option<Base>),
    b: &FusedMbConv,
    bias: &[f32],
) -> Result<()> {
    let ([n, c_in, h, w], [_, c_out, oh, ow], c_exp) = (plan.x, plan.out, plan.c_exp);
    let (x_buf, e_buf) = (dense_buf(x, &[n, c_in, h, w]), dense_buf(Base::Arena(0), &[n, c_exp, oh, ow]));
    let e = &b.expand;
    let g = geom(&x_buf, &e_buf, &e.kernel, &e.strides, &e.dilations, &e.pads_begin)?;
    let k = g.kh * g.kw * c_in;
    // The expansion: [OW × KH·KW·C_in] patch × weights packed in the patch's order.
    let data = b.expand_w.f32_data();
    let wv = Weights::new(&data, [c_exp, c_in, g.kh, g.kw], "Fused-MBConv expansion weights")?;
    let spec = ProductSpec {
        c: Some(Mat { base: l.const_f32(bias), offset: 0, rs: 0, cs: 1 }),
        beta: 1.0,
        act: e.act,
        ..ProductSpec::new(
            (ow, c_exp, k),
            Mat { base: Base::Arena(0), offset: 0, rs: k as isize, cs: 1 },
            Mat { base: Base::Arena(0), offset: 0, rs: c_exp as isize, cs: 1 },
        )
    };
    let expand = spec.with_const_b(l, |r, j| {
        let (tap, ci) = (r / c_in, r % c_in);
        wv.at([j, ci, tap / g.kw, tap % g.kw])
    });
    // The projection of one row, the residual (the input row at the same pixel) added.
    let project = dense_product(l, &b.project, (Base::Arena(0), ow), Base::Arena(0), block_input)?;
    let refused = || Error::other("a Fused-MBConv product the GEMM micro-kernel refused");
    let (m_expand, m_project) =
        (gemm::micro(l, &expand).ok_or_else(refused)?, gemm::micro(l, &project).ok_or_else(refused)?);
    let params =
        l.const_struct(effc_kernels::Im2colParams { c: c_in, plane: 0, win: g.row_window(), border_only: false });
    let (xs, os) = (byte_strides(&x_buf)?, byte_strides(&dense_buf(out, &[n, c_out, oh, ow]))?);
    let (w_expand, w_project) = (expand.b.base, project.b.base);
    l.kernel(n * oh, move |kb: &mut Kb| {
        let (xb, ob) = (kb.addr(x, 0), kb.addr(out, 0));
        let rb = block_input.map(|r| kb.addr(r, 0));
        let (w1, w2) = (kb.addr(w_expand, 0), kb.addr(w_project, 0));
        let slot = |kb: &mut Kb, bytes: usize| {
            kb.b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, bytes as u32, 6))
        };
        let (patch, row) = (slot(kb, ow * k * 4), slot(kb, ow * c_exp * 4));
        let (lo, hi) = (kb.lo, kb.hi);
        kb.for_range(lo, hi, 1, |kb, r| {
            let nn = kb.b.ins().udiv_imm_u(r, oh as i64);
            let ohv = kb.b.ins().urem_imm_u(r, oh as i64);
            let x_n = kb.offset(xb, nn, xs[0]);
            let table = row_table(kb, g, Rows::Strided, (x_n, xs[2]), ohv);
            let patch_ptr = kb.b.ins().stack_addr(types::I64, patch, 0);
            let row_ptr = kb.b.ins().stack_addr(types::I64, row, 0);
            let params = kb.addr(Base::Const(params), 0);
            kb.call_c(effc_kernels::im2col_row as *const () as usize, &[table, patch_ptr, params]);
            let rows = kb.ic(ow as i64);
            let p1 = Ptrs { a: patch_ptr, b: w1, out: row_ptr, c: None, res: None, ks: None };
            gemm::call_micro(kb, m_expand, &p1, rows);
            let o_n = kb.offset(ob, nn, os[0]);
            let o_row = kb.offset(o_n, ohv, os[2]);
            // A residual block keeps the input's shape (and a leading depthwise conv has
            // stride 1 there): the block input's row `oh` is the output's.
            let res = rb.map(|rb| {
                let r_n = kb.offset(rb, nn, xs[0]);
                kb.offset(r_n, ohv, xs[2])
            });
            let p2 = Ptrs { a: row_ptr, b: w2, out: o_row, c: None, res, ks: None };
            gemm::call_micro(kb, m_project, &p2, rows);
        });
    })
}
