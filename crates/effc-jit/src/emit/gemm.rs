//! Register-blocked matrix products: the emitter that Gemm, MatMul, dense 1×1 and im2col
//! convolutions, and the expansion and projection of fused blocks all lower to.
//!
//! With micro-kernels (the default), each kernel calls `effc_kernels`' GEMM once per
//! block of rows, with the bias, residual and activation fused into its epilogue. On the
//! pure-JIT path a tile of MR rows × NV f32x4 column vectors is kept in registers while
//! the K loop streams one row of B (packed so columns are contiguous) and MR broadcast
//! elements of A.

use std::ops::{Deref, DerefMut};

use cranelift_codegen::ir::{InstBuilder, Value, types};
use cranelift_frontend::Variable;
use effc_ir::op::Unary;
use effc_ir::{Error, Result};
use effc_kernels::gemm::PANEL;
use effc_kernels::{GemmParams, Isa};

use super::activation::{emit_unary, kernel_activation, support};
use super::{Base, Kb};
use crate::lower::Lowering;

/// A strided 2-D matrix: element (r, c) is at `base + offset + r·rs + c·cs` (in f32s).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mat {
    pub base: Base,
    pub offset: isize,
    pub rs: isize,
    pub cs: isize,
}

/// One batch dim of a product: its extent and the element strides of A, B, the output
/// and C along it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BatchDim {
    pub extent: usize,
    pub a: isize,
    pub b: isize,
    pub out: isize,
    pub c: isize,
}

/// out[b][m][n] = alpha · Σ_k a[b][m][k]·B[b][k][n] + beta · c[b][m][n]: everything about a
/// product but its B operand, which [`ProductSpec::with_b`] or
/// [`ProductSpec::with_const_b`] supply to make a [`Product`].
pub(crate) struct ProductSpec {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a: Mat,
    pub out: Mat,
    pub c: Option<Mat>,
    pub alpha: f32,
    pub beta: f32,
    pub batch: Vec<BatchDim>,
    /// Added after `c` (same strides as `out` or its own), before `act`.
    pub residual: Option<Mat>,
    /// Activation applied last, in registers.
    pub act: Option<Unary>,
    /// Per-K scale of B's rows (a squeeze-excite gate) and its stride per batch entry, in
    /// f32s. Micro-kernel path only, with at most one batch dim.
    pub k_scale: Option<(Base, isize)>,
}

impl ProductSpec {
    /// A plain product `out = a × B` with no batch, bias, residual or activation.
    pub fn new((m, n, k): (usize, usize, usize), a: Mat, out: Mat) -> Self {
        ProductSpec {
            m,
            n,
            k,
            a,
            out,
            c: None,
            alpha: 1.0,
            beta: 0.0,
            batch: vec![],
            residual: None,
            act: None,
            k_scale: None,
        }
    }

    /// The product with B a strided matrix (run-time or constant) read as it is.
    pub fn with_b(self, b: Mat) -> Product {
        Product { spec: self, b, b_panels: false, b_int8: None }
    }

    /// [`with_const_b`](Self::with_const_b) for weights folded from int8 values with one
    /// scale per column (`scales`, from the tensor's [`effc_ir::Int8Origin`]): when asked
    /// for (`JitOptions::int8_weights`), the micro-kernel computes the product and every
    /// value is exactly an int8 times its column's scale, B stays int8 in memory (a quarter
    /// of the bytes), packed panel-major, and the kernel scales each column's sums before
    /// the bias.
    pub fn with_const_b_int8(
        self,
        l: &mut Lowering,
        get: impl Fn(usize, usize) -> f32,
        scales: Option<Vec<f32>>,
    ) -> Product {
        let (k, n) = (self.k, self.n);
        let shared_b = self.batch.iter().all(|d| d.b == 0);
        let usable = l.int8_weights && shared_b && micro_params(l, &self, (PANEL as isize, 1), true).is_some();
        if let Some(scales) = scales.filter(|s| usable && s.len() == n)
            && let Some(q) = int8_values(k, n, &get, &scales)
        {
            let mut packed = vec![0i8; panel_len(k, n)];
            effc_kernels::gemm::pack_panels(&mut packed, k, n, |r, c| q[r * n + c]);
            let bytes: Vec<u8> = packed.iter().map(|&v| v as u8).collect();
            let base = l.const_bytes(&bytes);
            let Base::Const(scale_at) = l.const_f32(&scales) else { unreachable!("const_f32 stores a constant") };
            let b = Mat { base, offset: 0, rs: PANEL as isize, cs: 1 };
            return Product { spec: self, b, b_panels: true, b_int8: Some(scale_at) };
        }
        self.with_const_b(l, get)
    }

    /// The product with B the constant K × N matrix `get(k, j)`, stored as its path reads
    /// it: panel-major when the micro-kernel will compute it, since each 32-column panel is
    /// then one contiguous run that hardware prefetchers stream from memory (rows of a
    /// row-major B lie a page or more apart, where they stop); row-major for the JIT's loops
    /// otherwise.
    pub fn with_const_b(self, l: &mut Lowering, get: impl Fn(usize, usize) -> f32) -> Product {
        let (k, n) = (self.k, self.n);
        if micro_params(l, &self, (PANEL as isize, 1), true).is_some() {
            let base = l.const_f32_with(panel_len(k, n), |out| effc_kernels::gemm::pack_panels(out, k, n, get));
            let b = Mat { base, offset: 0, rs: PANEL as isize, cs: 1 };
            return Product { spec: self, b, b_panels: true, b_int8: None };
        }
        let base = l.const_f32_with(k * n, |out| {
            for (i, v) in out.iter_mut().enumerate() {
                *v = get(i / n, i % n);
            }
        });
        self.with_b(Mat { base, offset: 0, rs: n as isize, cs: 1 })
    }
}

/// A product with its B operand; reads its other operands through [`ProductSpec`].
pub(crate) struct Product {
    spec: ProductSpec,
    pub b: Mat,
    /// B is panel-major ([n/32][k][32], `b.rs` = 32, panels 32·k apart). Micro-kernel
    /// path only: see [`ProductSpec::with_const_b`].
    b_panels: bool,
    /// B is int8, its per-column scales at this constant address (see
    /// [`ProductSpec::with_const_b_int8`]).
    pub b_int8: Option<usize>,
}

/// `get(k, j)` as int8 values q with `get(k, j) = q · scales[j]` exactly in f32 (what
/// DequantizeLinear of q computes), row-major; `None` if any value is not one.
fn int8_values(k: usize, n: usize, get: &impl Fn(usize, usize) -> f32, scales: &[f32]) -> Option<Vec<i8>> {
    let mut q = Vec::with_capacity(k * n);
    for r in 0..k {
        for (c, &s) in scales.iter().enumerate() {
            let w = get(r, c);
            let v = (w / s).round();
            if !(-128.0..=127.0).contains(&v) || v * s != w {
                return None;
            }
            q.push(v as i8);
        }
    }
    Some(q)
}

impl Product {
    /// B as rows that each belong to one K index (a gate value scales each): (rows, width).
    /// Row-major B is [K][N]; panel-major B is [panels][K][32], row r of which belongs to
    /// K index r mod K.
    pub fn b_rows(&self) -> (usize, usize) {
        if self.b_panels { (self.n.div_ceil(PANEL) * self.k, PANEL) } else { (self.k, self.n) }
    }
}

impl Deref for Product {
    type Target = ProductSpec;
    fn deref(&self) -> &ProductSpec {
        &self.spec
    }
}

impl DerefMut for Product {
    fn deref_mut(&mut self) -> &mut ProductSpec {
        &mut self.spec
    }
}

#[derive(Clone, Copy)]
enum Lanes {
    Vec(usize),
    Scalar,
}

const MR: usize = 4;
const NV: usize = 2;

/// Run-time base pointers of a product's operands (row 0, column 0).
#[derive(Clone, Copy)]
pub(crate) struct Ptrs {
    pub a: Value,
    pub b: Value,
    pub out: Value,
    pub c: Option<Value>,
    pub res: Option<Value>,
    /// Per-K scale (see [`ProductSpec::k_scale`]).
    pub ks: Option<Value>,
}

fn addr(kb: &mut Kb, m: &Mat) -> Value {
    kb.addr(m.base, m.offset as i64 * 4)
}

/// One MR×lanes tile at the given row/column origin pointers.
fn tile(kb: &mut Kb, mm: &Product, p: &Ptrs, mr: usize, lanes: Lanes) {
    let (nv, ty) = match lanes {
        Lanes::Vec(nv) => (nv, types::F32X4),
        Lanes::Scalar => (1, types::F32),
    };
    let accs: Vec<Vec<Variable>> = (0..mr)
        .map(|_| {
            (0..nv)
                .map(|_| {
                    let v = kb.b.declare_var(ty);
                    let z = kb.fc(ty, 0.0);
                    kb.b.def_var(v, z);
                    v
                })
                .collect()
        })
        .collect();
    let b_const = matches!(mm.b.base, Base::Const(_));
    kb.for_n(mm.k, |kb, k| {
        let a_k = kb.offset(p.a, k, mm.a.cs as i64 * 4);
        let b_k = kb.offset(p.b, k, mm.b.rs as i64 * 4);
        let bv: Vec<Value> = (0..nv)
            .map(|j| {
                let off = (j as isize * 4 * mm.b.cs * 4) as i32;
                if b_const { kb.load_const(ty, b_k, off) } else { kb.load(ty, b_k, off) }
            })
            .collect();
        for (r, row) in accs.iter().enumerate() {
            let a = kb.load(types::F32, a_k, (r as isize * mm.a.rs * 4) as i32);
            let a = if ty.is_vector() { kb.b.ins().splat(ty, a) } else { a };
            for (&var, &b) in row.iter().zip(&bv) {
                let acc = kb.b.use_var(var);
                let acc = kb.fma(a, b, acc);
                kb.b.def_var(var, acc);
            }
        }
    });
    for (r, row) in accs.iter().enumerate() {
        for (j, &var) in row.iter().enumerate() {
            let mut v = kb.b.use_var(var);
            if mm.alpha != 1.0 {
                let a = kb.fc(ty, mm.alpha as f64);
                v = kb.b.ins().fmul(v, a);
            }
            if let (Some(c), Some(cp)) = (&mm.c, p.c) {
                let off = ((r as isize * c.rs + j as isize * 4 * c.cs) * 4) as i32;
                let cv = if ty.is_vector() && c.cs == 0 {
                    let s = kb.load_from(c.base, types::F32, cp, off);
                    kb.b.ins().splat(ty, s)
                } else {
                    kb.load_from(c.base, ty, cp, off)
                };
                v = if mm.beta == 1.0 {
                    kb.b.ins().fadd(v, cv)
                } else {
                    let beta = kb.fc(ty, mm.beta as f64);
                    kb.fma(cv, beta, v)
                };
            }
            if let (Some(res), Some(rp)) = (&mm.residual, p.res) {
                let off = ((r as isize * res.rs + j as isize * 4 * res.cs) * 4) as i32;
                let rv = kb.load(ty, rp, off);
                v = kb.b.ins().fadd(v, rv);
            }
            if let Some(u) = mm.act.filter(|&u| support(u).in_tile) {
                v = emit_unary(kb, u, v);
            }
            let off = ((r as isize * mm.out.rs + j as isize * 4 * mm.out.cs) * 4) as i32;
            kb.store(v, p.out, off);
        }
    }
}

/// Pointers of the tile at row `row` (a value) and compile-time column `col` plus `col_v`.
fn at(kb: &mut Kb, mm: &Product, base: &Ptrs, row: Value, col: Option<Value>, col_const: usize) -> Ptrs {
    let shift = |kb: &mut Kb, p: Value, rs: isize, cs: isize| {
        let p = kb.offset(p, row, rs as i64 * 4);
        let p = match col {
            Some(c) => kb.offset(p, c, cs as i64 * 4),
            None => p,
        };
        kb.b.ins().iadd_imm_s(p, col_const as i64 * cs as i64 * 4)
    };
    Ptrs {
        a: shift(kb, base.a, mm.a.rs, 0),
        b: shift(kb, base.b, 0, mm.b.cs),
        out: shift(kb, base.out, mm.out.rs, mm.out.cs),
        // Pointers for `c` and the residual exist exactly when `mm` has them.
        c: base.c.zip(mm.c).map(|(cp, c)| shift(kb, cp, c.rs, c.cs)),
        res: base.res.zip(mm.residual).map(|(rp, r)| shift(kb, rp, r.rs, r.cs)),
        ks: None,
    }
}

/// All columns of a block of `mr` rows starting at row value `row`.
fn row_block(kb: &mut Kb, mm: &Product, base: &Ptrs, row: Value, mr: usize, vector: bool) {
    if !vector {
        kb.for_n(mm.n, |kb, col| {
            let p = at(kb, mm, base, row, Some(col), 0);
            tile(kb, mm, &p, mr, Lanes::Scalar);
        });
        return;
    }
    let block = 4 * NV;
    kb.for_n(mm.n / block, |kb, cb| {
        let col = kb.b.ins().imul_imm_s(cb, block as i64);
        let p = at(kb, mm, base, row, Some(col), 0);
        tile(kb, mm, &p, mr, Lanes::Vec(NV));
    });
    let mut col = mm.n / block * block;
    if mm.n - col >= 4 {
        let nv = (mm.n - col) / 4;
        let p = at(kb, mm, base, row, None, col);
        tile(kb, mm, &p, mr, Lanes::Vec(nv));
        col += nv * 4;
    }
    for c in col..mm.n {
        let p = at(kb, mm, base, row, None, c);
        tile(kb, mm, &p, mr, Lanes::Scalar);
    }
}

/// Applies `u` in place to rows `row..row+rows` of the output.
fn activate_rows(kb: &mut Kb, mm: &Product, p: &Ptrs, row: Value, rows: usize, u: Unary, vector: bool) {
    let out_row = kb.offset(p.out, row, mm.out.rs as i64 * 4);
    for r in 0..rows {
        let base = kb.b.ins().iadd_imm_s(out_row, r as i64 * mm.out.rs as i64 * 4);
        let nv = if vector { mm.n / 4 } else { 0 };
        kb.for_n(nv, |kb, j| {
            let ptr = kb.offset(base, j, 16);
            let v = kb.load(types::F32X4, ptr, 0);
            let v = emit_unary(kb, u, v);
            kb.store(v, ptr, 0);
        });
        kb.for_n(mm.n - nv * 4, |kb, j| {
            let j = kb.b.ins().iadd_imm_s(j, (nv * 4) as i64);
            let ptr = kb.offset(base, j, mm.out.cs as i64 * 4);
            let v = kb.load(types::F32, ptr, 0);
            let v = emit_unary(kb, u, v);
            kb.store(v, ptr, 0);
        });
    }
}

/// Whether the product can use the f32x4 tile (contiguous columns everywhere).
fn vector_ok(mm: &Product) -> bool {
    let c_ok = mm.c.is_none_or(|c| matches!(c.cs, 0 | 1)) && mm.residual.is_none_or(|r| r.cs == 1);
    mm.b.cs == 1 && mm.out.cs == 1 && c_ok && mm.n >= 4
}

/// A product the micro-kernel computes: its entry point and parameters' address.
#[derive(Clone, Copy)]
pub(crate) struct Micro {
    isa: Isa,
    func: usize,
    params: usize,
    /// The parameters themselves, for per-column-block variants.
    value: GemmParams,
}

impl Micro {
    /// The same product with A read in place through `taps` (see
    /// [`GemmParams::a_taps`]: K offsets, stored as model data) with rows `lda` apart;
    /// `None` for int8 weights, which the kernel does not combine with taps.
    pub(crate) fn with_taps(self, l: &mut Lowering, lda: usize, taps: &[usize]) -> Option<Micro> {
        if !self.value.b_scale.is_null() || taps.len() != self.value.k {
            return None;
        }
        let bytes: Vec<u8> = taps.iter().flat_map(|t| t.to_ne_bytes()).collect();
        let Base::Const(table) = l.const_bytes(&bytes) else { return None };
        let value = GemmParams { lda, a_taps: table as *const usize, ..self.value };
        Some(Micro { params: l.const_struct(value), value, ..self })
    }
}

/// Non-negative strides as the kernel's leading dimensions.
fn ld(stride: isize) -> Option<usize> {
    usize::try_from(stride).ok()
}

/// Whether (and how) the micro-kernel computes `mm`: unit column strides, alpha = 1, a
/// per-column constant bias (or none) with beta = 1, and an activation it knows.
pub(crate) fn micro(l: &mut Lowering, mm: &Product) -> Option<Micro> {
    let (isa, func, mut params) = micro_params(l, mm, (mm.b.rs, mm.b.cs), mm.b_panels)?;
    if let Some(scales) = mm.b_int8 {
        params.b_scale = scales as *const f32;
    }
    Some(Micro { isa, func, params: l.const_struct(params), value: params })
}

/// Bytes of packed weights that stay in cache from one micro-kernel call to the next (the
/// expand + depthwise kernel's row products call it once per input row with the same
/// 6–15 KB), whose tiles therefore need not request the next panel: without the requests
/// those products ran 3–5% faster on AVX2 (Zen 4; AVX-512, whose tiles are twice as tall,
/// unchanged).
const CACHED_B: usize = 32 * 1024;

/// What [`micro`] decides, without storing the parameters, for `mm` with B's row and
/// column strides `(b_rs, b_cs)`, panel-major or not.
fn micro_params(
    l: &Lowering,
    mm: &ProductSpec,
    (b_rs, b_cs): (isize, isize),
    b_panels: bool,
) -> Option<(Isa, usize, GemmParams)> {
    let isa = l.micro?;
    let func = isa.gemm()? as usize;
    let unit_columns = mm.a.cs == 1 && b_cs == 1 && mm.out.cs == 1 && mm.residual.is_none_or(|r| r.cs == 1);
    if !unit_columns || mm.alpha != 1.0 || (mm.k_scale.is_some() && mm.batch.len() > 1) {
        return None;
    }
    let bias = match &mm.c {
        None => std::ptr::null(),
        Some(Mat { base: Base::Const(addr), offset, rs: 0, cs: 1 }) if mm.beta == 1.0 => {
            (*addr as isize + offset * 4) as *const f32
        }
        Some(_) => return None,
    };
    let params = GemmParams {
        k: mm.k,
        n: mm.n,
        lda: ld(mm.a.rs)?,
        ldb: ld(b_rs)?,
        panel_stride: if b_panels { mm.k * PANEL } else { PANEL },
        ldo: ld(mm.out.rs)?,
        ldr: mm.residual.map_or(Some(0), |r| ld(r.rs))?,
        bias,
        b_scale: std::ptr::null(),
        a_taps: std::ptr::null(),
        act: kernel_activation(mm.act)?,
        request_next_panel: b_panels && panel_len(mm.k, mm.n) * 4 > CACHED_B,
    };
    Some((isa, func, params))
}

/// Calls the micro-kernel on `rows` (a value) rows at the tile pointers `p`.
pub(crate) fn call_micro(kb: &mut Kb, m: Micro, p: &Ptrs, rows: Value) {
    let params = kb.addr(Base::Const(m.params), 0);
    call_micro_with(kb, m, p, rows, params);
}

/// [`call_micro`] with a run-time parameters pointer (one of several column blocks).
fn call_micro_with(kb: &mut Kb, m: Micro, p: &Ptrs, rows: Value, params: Value) {
    let null = kb.ic(0);
    let (res, ks) = (p.res.unwrap_or(null), p.ks.unwrap_or(null));
    kb.call_c(m.func, &[p.a, p.b, p.out, res, rows, params, ks]);
}

/// Work items a product should have so two threads can share it evenly: threads take
/// equal counts of items, so with 9 items one does 5 (11% over an even split), with 16 or
/// more at most 1/16 more. Smaller column blocks also keep each item's B in L2.
const MIN_ITEMS: usize = 16;

/// Columns per block when row blocks alone give too few work items: a multiple of the
/// widest kernel panel (32), or all of `n`.
fn columns_per_item(n: usize, row_items: usize) -> usize {
    if row_items >= MIN_ITEMS {
        return n;
    }
    // Whole 32-column panels per block, rounded down so blocks come out at least as
    // many as wanted (an even count more often than rounding up would give).
    let panels = n.div_ceil(32);
    let per_block = (panels / MIN_ITEMS.div_ceil(row_items)).max(1);
    (per_block * 32).min(n)
}

/// Rows per work item of a micro-kernel product: all of them up to 8 register tiles,
/// else an even split into multiples of the tile height. Each item reads all of B once,
/// so items are never made small to create parallelism (column blocks do that).
fn rows_per_item(m: usize, tile_rows: usize) -> usize {
    let most = 8 * tile_rows;
    if m <= most {
        return m.max(1);
    }
    m.div_ceil(m.div_ceil(most)).next_multiple_of(tile_rows)
}

/// Emits all `mm.m` rows of one (unbatched) product inline, at run-time base pointers;
/// used inside fused kernels.
pub(crate) fn emit_rows(kb: &mut Kb, mm: &Product, base: &Ptrs, micro: Option<Micro>) {
    if let Some(m) = micro {
        let rows = kb.ic(mm.m as i64);
        call_micro(kb, m, base, rows);
        return;
    }
    let vector = vector_ok(mm);
    let mr = if vector { MR.min(mm.m) } else { 1 };
    let full = mm.m / mr;
    let block = |kb: &mut Kb, row: Value, rows: usize| {
        row_block(kb, mm, base, row, rows, vector);
        if let Some(u) = mm.act.filter(|&u| !support(u).in_tile) {
            activate_rows(kb, mm, base, row, rows, u, vector);
        }
    };
    kb.for_n(full, |kb, blk| {
        let row = kb.b.ins().imul_imm_s(blk, mr as i64);
        block(kb, row, mr);
    });
    for r in full * mr..mm.m {
        let row = kb.ic(r as i64);
        block(kb, row, 1);
    }
}

/// Emits the product as one kernel of micro-kernel calls over row blocks, or (pure JIT)
/// as up to two kernels: full MR-row blocks, then the leftover rows.
pub(crate) fn emit(l: &mut Lowering, mm: &Product) -> Result<()> {
    if let Some(m) = micro(l, mm) {
        return emit_micro(l, mm, m);
    }
    if mm.k_scale.is_some() || mm.b_panels {
        return Err(Error::other("a per-K scaled or panel-major product needs the micro-kernels"));
    }
    let vector = vector_ok(mm);
    let mr = if vector { MR.min(mm.m) } else { 1 };
    let batch: usize = mm.batch.iter().map(|d| d.extent).product();
    let full = mm.m / mr;
    let tail = mm.m - full * mr;
    let mut parts = vec![(full, mr, 0usize)];
    if tail > 0 {
        parts.push((tail, 1, full * mr));
    }
    for (blocks, rows, first_row) in parts {
        if blocks == 0 {
            continue;
        }
        l.kernel(batch * blocks, |kb| {
            let base = Ptrs {
                a: addr(kb, &mm.a),
                b: addr(kb, &mm.b),
                out: addr(kb, &mm.out),
                c: mm.c.as_ref().map(|c| addr(kb, c)),
                res: mm.residual.as_ref().map(|r| addr(kb, r)),
                ks: None,
            };
            let (lo, hi) = (kb.lo, kb.hi);
            kb.for_range(lo, hi, 1, |kb, r| {
                // r = batch index · blocks + block; split the batch index over its dims.
                let (blk, p) = batch_entry(kb, mm, &base, r, blocks);
                let row = kb.b.ins().imul_imm_s(blk, rows as i64);
                let row = kb.b.ins().iadd_imm_s(row, first_row as i64);
                row_block(kb, mm, &p, row, rows, vector);
                if let Some(u) = mm.act.filter(|&u| !support(u).in_tile) {
                    activate_rows(kb, mm, &p, row, rows, u, vector);
                }
            });
        })?;
    }
    Ok(())
}

/// Offsets the pointers of `base` to batch entry `r / blocks`; returns the block index.
fn batch_entry(kb: &mut Kb, mm: &Product, base: &Ptrs, r: Value, blocks: usize) -> (Value, Ptrs) {
    let blk = kb.b.ins().urem_imm_u(r, blocks as i64);
    let mut bi = kb.b.ins().udiv_imm_u(r, blocks as i64);
    let mut p = *base;
    for dim in mm.batch.iter().rev() {
        let coord = kb.b.ins().urem_imm_u(bi, dim.extent as i64);
        bi = kb.b.ins().udiv_imm_u(bi, dim.extent as i64);
        p.a = kb.offset(p.a, coord, dim.a as i64 * 4);
        p.b = kb.offset(p.b, coord, dim.b as i64 * 4);
        p.out = kb.offset(p.out, coord, dim.out as i64 * 4);
        p.c = p.c.map(|c| kb.offset(c, coord, dim.c as i64 * 4));
        p.res = p.res.map(|r| kb.offset(r, coord, dim.out as i64 * 4));
        p.ks = p.ks.map(|k| kb.offset(k, coord, mm.k_scale.map_or(0, |(_, s)| s) as i64 * 4));
    }
    (blk, p)
}

/// One kernel whose work items are (batch entry, block of rows), each one micro-kernel call.
fn emit_micro(l: &mut Lowering, mm: &Product, m: Micro) -> Result<()> {
    let batch: usize = mm.batch.iter().map(|d| d.extent).product();
    let per = rows_per_item(mm.m, m.isa.gemm_rows());
    let blocks = mm.m.div_ceil(per);
    let total = mm.m;
    // Small products (the head, the classifier) are also split by columns, each column
    // block with its own parameters (width and bias offset), picked through a table.
    let cols = columns_per_item(mm.n, batch * blocks);
    let col_blocks = mm.n.div_ceil(cols);
    let table: Vec<usize> = (0..col_blocks)
        .map(|cb| {
            let j0 = cb * cols;
            let at = |p: *const f32| if p.is_null() { p } else { p.wrapping_add(j0) };
            let (bias, b_scale) = (at(m.value.bias), at(m.value.b_scale));
            l.const_struct(GemmParams { n: cols.min(mm.n - j0), bias, b_scale, ..m.value })
        })
        .collect();
    let table = l.const_addresses(&table);
    l.kernel(batch * blocks * col_blocks, |kb| {
        let base = Ptrs {
            a: addr(kb, &mm.a),
            b: addr(kb, &mm.b),
            out: addr(kb, &mm.out),
            c: None,
            res: mm.residual.as_ref().map(|r| addr(kb, r)),
            ks: mm.k_scale.map(|(base, _)| kb.addr(base, 0)),
        };
        let (lo, hi) = (kb.lo, kb.hi);
        let table = kb.addr(table, 0);
        kb.for_range(lo, hi, 1, |kb, r| {
            let cb = kb.b.ins().urem_imm_u(r, col_blocks as i64);
            let r = kb.b.ins().udiv_imm_u(r, col_blocks as i64);
            let params = kb.offset(table, cb, 8);
            let params = kb.load_const(types::I64, params, 0);
            let j0 = kb.b.ins().imul_imm_s(cb, cols as i64);
            let (blk, mut p) = batch_entry(kb, mm, &base, r, blocks);
            // Blocks are whole 32-column panels (or the only block): B's column j0 is
            // panel j0 / 32.
            let b_bytes = if mm.b_int8.is_some() { 1 } else { 4 };
            p.b = kb.offset(p.b, cb, (m.value.b_col(cols) * b_bytes) as i64);
            p.out = kb.offset(p.out, j0, 4);
            p.res = p.res.map(|res| kb.offset(res, j0, 4));
            let row = kb.b.ins().imul_imm_s(blk, per as i64);
            // The last block may be short: rows = min(per, m - row).
            let left = kb.ic(total as i64);
            let left = kb.b.ins().isub(left, row);
            let full = kb.ic(per as i64);
            let rows = kb.b.ins().smin(left, full);
            let at_row = Ptrs {
                a: kb.offset(p.a, row, mm.a.rs as i64 * 4),
                b: p.b,
                out: kb.offset(p.out, row, mm.out.rs as i64 * 4),
                c: None,
                res: p.res.zip(mm.residual).map(|(res, r)| kb.offset(res, row, r.rs as i64 * 4)),
                ks: p.ks,
            };
            call_micro_with(kb, m, &at_row, rows, params);
        });
    })
}

/// Values of a K × N matrix packed panel-major (the last panel zero-padded).
pub(crate) fn panel_len(k: usize, n: usize) -> usize {
    n.div_ceil(PANEL) * k * PANEL
}
