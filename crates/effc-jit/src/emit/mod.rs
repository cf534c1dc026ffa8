//! Helpers for emitting kernel bodies: addressing, typed constants, memory flags and
//! bottom-tested loops.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{AbiParam, BlockArg, InstBuilder, MemFlagsData, Signature, Type, Value, types};
use cranelift_codegen::isa::CallConv;
use cranelift_frontend::FunctionBuilder;

use crate::module::ConstAccess;

pub(crate) mod activation;
pub(crate) mod gemm;
pub(crate) mod window;

/// Where a buffer lives at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Base {
    /// A byte offset into the run's arena.
    Arena(usize),
    /// Entry `i` of the caller's input/output pointer table.
    Io(usize),
    /// Immutable data owned by the compiled model (weights), by its address in the
    /// constant pool; code reaches it through [`Kb::addr`], which knows the sink.
    Const(usize),
}

/// What the target instruction set offers the code a [`Kb`] emits, asked of Cranelift's
/// ISA once per kernel: emitters choose instructions by it, never by the host's `cfg`.
#[derive(Clone, Copy, Debug)]
pub struct TargetCaps {
    /// Fused multiply-add.
    pub fma: bool,
    /// x86-64's own CLIF (`x86_cvtt2dq`: a float-to-int conversion in one instruction
    /// where the value needs no saturation).
    pub x86: bool,
}

impl TargetCaps {
    pub fn of(isa: &dyn cranelift_codegen::isa::TargetIsa) -> Self {
        TargetCaps { fma: isa.has_native_fma(), x86: isa.name() == "x64" }
    }
}

/// A kernel being built: the function builder plus the kernel's parameters.
pub struct Kb<'a> {
    pub b: FunctionBuilder<'a>,
    pub arena: Value,
    pub io: Value,
    pub lo: Value,
    pub hi: Value,
    pub caps: TargetCaps,
    /// The host's C calling convention, for calls into micro-kernels.
    pub call_conv: CallConv,
    /// How constants are addressed: immediates in JIT memory, symbols in an object file.
    pub consts: ConstAccess<'a>,
}

/// Loads and stores of activations: never trap (addresses are planned), not assumed aligned.
fn data_flags() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

/// Loads of weights: also read-only and free to move, so LICM can hoist them.
fn const_flags() -> MemFlagsData {
    MemFlagsData::new().with_notrap().with_readonly().with_can_move()
}

impl<'a> Kb<'a> {
    pub fn new(
        b: FunctionBuilder<'a>,
        [arena, io, lo, hi]: [Value; 4],
        caps: TargetCaps,
        call_conv: CallConv,
        consts: ConstAccess<'a>,
    ) -> Self {
        Kb { b, arena, io, lo, hi, caps, call_conv, consts }
    }

    /// Calls the C-ABI function at `addr` with pointer-sized arguments. The call spills
    /// every live vector register, so it belongs around a tile's worth of work.
    pub fn call_c(&mut self, addr: usize, args: &[Value]) {
        let mut sig = Signature::new(self.call_conv);
        sig.params.extend(args.iter().map(|_| AbiParam::new(types::I64)));
        if let ConstAccess::Symbols(s) = &mut self.consts {
            // An object file calls it by its runtime symbol (relocated at link time).
            if let Some(f) = s.function(self.b.func, addr, &sig) {
                self.b.ins().call(f, args);
            }
            return;
        }
        let sig = self.b.import_signature(sig);
        let callee = self.ic(addr as i64);
        self.b.ins().call_indirect(sig, callee, args);
    }

    pub fn ic(&mut self, v: i64) -> Value {
        self.b.ins().iconst(types::I64, v)
    }

    /// The address of `base` plus `byte_offset`.
    pub fn addr(&mut self, base: Base, byte_offset: i64) -> Value {
        match base {
            Base::Arena(off) => self.b.ins().iadd_imm_s(self.arena, off as i64 + byte_offset),
            Base::Io(i) => {
                let p = self.b.ins().load(types::I64, const_flags(), self.io, (i * 8) as i32);
                if byte_offset == 0 { p } else { self.b.ins().iadd_imm_s(p, byte_offset) }
            }
            Base::Const(a) => self.const_addr(a, byte_offset),
        }
    }

    /// The address of the constant at pool address `a`, plus `byte_offset`.
    fn const_addr(&mut self, a: usize, byte_offset: i64) -> Value {
        let ConstAccess::Symbols(s) = &mut self.consts else { return self.ic(a as i64 + byte_offset) };
        match s.global(self.b.func, a) {
            Some((gv, offset)) => {
                let p = self.b.ins().symbol_value(types::I64, gv);
                self.b.ins().iadd_imm_s(p, offset + byte_offset)
            }
            // The kernel is refused after it is built; any value keeps the CLIF valid.
            None => self.ic(0),
        }
    }

    /// A float constant of type `ty` (scalar, or splatted across a vector).
    pub fn fc(&mut self, ty: Type, v: f64) -> Value {
        let lane = ty.lane_type();
        let s = if lane == types::F64 { self.b.ins().f64const(v) } else { self.b.ins().f32const(v as f32) };
        if ty.is_vector() { self.b.ins().splat(ty, s) } else { s }
    }

    /// An integer constant of type `ty` (scalar, or splatted).
    pub fn int_const(&mut self, ty: Type, v: i64) -> Value {
        // Cranelift wants a narrow type's immediate zero-extended (−1 as i8 is 255).
        let bits = ty.lane_type().bits();
        let v = if bits < 64 { v & ((1i64 << bits) - 1) } else { v };
        let s = self.b.ins().iconst(ty.lane_type(), v);
        if ty.is_vector() { self.b.ins().splat(ty, s) } else { s }
    }

    pub fn load(&mut self, ty: Type, ptr: Value, off: i32) -> Value {
        self.b.ins().load(ty, data_flags(), ptr, off)
    }

    /// Load from weights or other immutable data.
    pub fn load_const(&mut self, ty: Type, ptr: Value, off: i32) -> Value {
        self.b.ins().load(ty, const_flags(), ptr, off)
    }

    pub fn load_from(&mut self, base: Base, ty: Type, ptr: Value, off: i32) -> Value {
        match base {
            Base::Const(_) => self.load_const(ty, ptr, off),
            _ => self.load(ty, ptr, off),
        }
    }

    pub fn store(&mut self, v: Value, ptr: Value, off: i32) {
        self.b.ins().store(data_flags(), v, ptr, off);
    }

    /// a*b + c, fused when the CPU has FMA.
    pub fn fma(&mut self, a: Value, b: Value, c: Value) -> Value {
        if self.caps.fma {
            self.b.ins().fma(a, b, c)
        } else {
            let m = self.b.ins().fmul(a, b);
            self.b.ins().fadd(m, c)
        }
    }

    /// `for i in start..end step step { body(i) }` as a guarded do-while loop, the shape
    /// Cranelift's LICM hoists out of reliably.
    pub fn for_range(&mut self, start: Value, end: Value, step: i64, body: impl FnOnce(&mut Self, Value)) {
        let header = self.b.create_block();
        let exit = self.b.create_block();
        self.b.append_block_param(header, types::I64);
        let enter = self.b.ins().icmp(IntCC::SignedLessThan, start, end);
        self.b.ins().brif(enter, header, &[BlockArg::Value(start)], exit, &[]);
        self.b.switch_to_block(header);
        let i = self.b.block_params(header)[0];
        body(self, i);
        let next = self.b.ins().iadd_imm_s(i, step);
        let again = self.b.ins().icmp(IntCC::SignedLessThan, next, end);
        self.b.ins().brif(again, header, &[BlockArg::Value(next)], exit, &[]);
        self.b.switch_to_block(exit);
    }

    /// `for i in 0..n` with a compile-time trip count; emits nothing when `n == 0` and no
    /// loop at all when `n == 1`.
    pub fn for_n(&mut self, n: usize, body: impl FnOnce(&mut Self, Value)) {
        match n {
            0 => {}
            1 => {
                let zero = self.ic(0);
                body(self, zero)
            }
            _ => {
                let header = self.b.create_block();
                let exit = self.b.create_block();
                self.b.append_block_param(header, types::I64);
                let zero = self.ic(0);
                self.b.ins().jump(header, &[BlockArg::Value(zero)]);
                self.b.switch_to_block(header);
                let i = self.b.block_params(header)[0];
                body(self, i);
                let next = self.b.ins().iadd_imm_s(i, 1);
                let again = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, next, n as i64);
                self.b.ins().brif(again, header, &[BlockArg::Value(next)], exit, &[]);
                self.b.switch_to_block(exit);
            }
        }
    }

    /// Work item `item` of a kernel over `outer` × `blocks` items, where each of the
    /// `outer` entries (samples) has `total` positions in blocks of `per`: returns the
    /// entry and the block's `first..last` positions (the last block may be short).
    pub fn block_of(&mut self, item: Value, blocks: usize, per: usize, total: usize) -> (Value, Value, Value) {
        let outer = self.b.ins().udiv_imm_u(item, blocks as i64);
        let blk = self.b.ins().urem_imm_u(item, blocks as i64);
        let first = self.b.ins().imul_imm_s(blk, per as i64);
        let last = self.b.ins().iadd_imm_s(first, per as i64);
        let end = self.ic(total as i64);
        let last = self.b.ins().smin(last, end);
        (outer, first, last)
    }

    /// Visits `len` consecutive f32s as vectors of 4 and then a scalar tail, calling
    /// `f(kb, byte_offset, type)` for each.
    pub fn for_lanes(&mut self, len: usize, mut f: impl FnMut(&mut Self, Value, Type)) {
        let nv = len / 4;
        self.for_n(nv, |kb, i| {
            let off = kb.b.ins().imul_imm_s(i, 16);
            f(kb, off, types::F32X4)
        });
        for j in nv * 4..len {
            let off = self.ic(j as i64 * 4);
            f(self, off, types::F32);
        }
    }

    /// Runs `body` only when `cond` (an i8 truth value) is non-zero.
    pub fn if_then(&mut self, cond: Value, body: impl FnOnce(&mut Self)) {
        self.if_else(cond, body, |_| {});
    }

    /// Runs `then` when `cond` (an i8 truth value) is non-zero, else `otherwise`.
    pub fn if_else(&mut self, cond: Value, then: impl FnOnce(&mut Self), otherwise: impl FnOnce(&mut Self)) {
        let (yes, no, done) = (self.b.create_block(), self.b.create_block(), self.b.create_block());
        self.b.ins().brif(cond, yes, &[], no, &[]);
        self.b.switch_to_block(yes);
        then(self);
        self.b.ins().jump(done, &[]);
        self.b.switch_to_block(no);
        otherwise(self);
        self.b.ins().jump(done, &[]);
        self.b.switch_to_block(done);
    }

    /// `p + i * scale` for a pointer `p` and an index `i`.
    pub fn offset(&mut self, p: Value, i: Value, scale: i64) -> Value {
        if scale == 0 {
            return p;
        }
        let o = self.b.ins().imul_imm_s(i, scale);
        self.b.ins().iadd(p, o)
    }
}
