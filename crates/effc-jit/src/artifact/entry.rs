//! An artifact's C API, emitted in CLIF beside the kernels: `NAME_new` checks the CPU
//! and allocates a context (its arena), `NAME_run` is the step loop calling every kernel
//! in order (or shares each out on the runtime's thread team), and the rest answer
//! questions from tables. Nothing calls outside the object but the C library's `calloc`
//! and `free`, and, with micro-kernels, the runtime archive (`effc_rt_*`).

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{
    AbiParam, FuncRef, GlobalValue, InstBuilder, MemFlagsData, Signature, StackSlotData, StackSlotKind, Value, types,
};
use cranelift_frontend::FunctionBuilder;
use cranelift_module::{DataDescription, DataId, FuncId, Linkage, Module};
use effc_ir::{Error, Result};

use crate::IoInfo;
use crate::lower::PendingStep;
use crate::module::Jit;

/// The context header `NAME_new` allocates ahead of the arena: the arena's address, then
/// the thread team's (NULL for one thread).
const HEADER: i64 = 16;
const TEAM: i32 = 8;
/// Arena alignment, as the JIT's (`aligned::ALIGN`).
const ALIGN: i64 = crate::aligned::ALIGN as i64;

/// What the C API is emitted from.
pub(crate) struct Api<'a> {
    pub name: &'a str,
    pub inputs: &'a [IoInfo],
    pub outputs: &'a [IoInfo],
    pub steps: &'a [PendingStep],
    pub arena_bytes: usize,
    /// `NAME_cpu_missing`: 0, or 1 + the index in `features` of a missing CPU feature.
    pub cpu_check: FuncId,
    pub features: &'a [&'static str],
    pub target: &'a str,
    /// Whether the runtime archive is linked: then contexts may run on a thread team.
    pub team: bool,
}

/// Defines the C API's functions; returns their exported symbol names.
pub(crate) fn define(jit: &mut Jit, api: &Api) -> Result<Vec<String>> {
    let mut e = Emitter { jit, name: api.name, exported: Vec::new(), strings: 0 };
    let error = e.data(&format!("{}_error", api.name), &[0; 8], true)?;
    let empty = e.string("")?;
    let ptr = types::I64;

    // const char *NAME_last_error(void)
    let (id, sig) = e.export("last_error", &[], Some(ptr))?;
    e.jit.function(id, sig, |b, m, _| {
        let msg = load_global(b, m, error);
        let none = global_addr(b, m, empty);
        let set = b.ins().icmp_imm_s(IntCC::NotEqual, msg, 0);
        let r = b.ins().select(set, msg, none);
        b.ins().return_(&[r]);
    })?;

    // size_t NAME_input_size(size_t i), NAME_output_size, NAME_input_name, NAME_output_name
    for (what, list) in [("input", api.inputs), ("output", api.outputs)] {
        let sizes: Vec<i64> = list.iter().map(|t| t.shape.iter().product::<usize>() as i64).collect();
        let (id, sig) = e.export(&format!("{what}_size"), &[ptr], Some(ptr))?;
        e.jit.function(id, sig, |b, _, p| {
            let r = pick(b, p[0], sizes.iter().map(|&s| Choice::Int(s)));
            b.ins().return_(&[r]);
        })?;
        let names: Vec<DataId> = list.iter().map(|t| e.string(&t.name)).collect::<Result<_>>()?;
        let (id, sig) = e.export(&format!("{what}_name"), &[ptr], Some(ptr))?;
        e.jit.function(id, sig, |b, m, p| {
            let globals: Vec<GlobalValue> = names.iter().map(|&d| m.declare_data_in_func(d, b.func)).collect();
            let r = pick(b, p[0], globals.into_iter().map(Choice::Global));
            b.ins().return_(&[r]);
        })?;
    }

    // NAME_ctx *NAME_new(int threads)
    let n = api.name;
    let missing: Vec<DataId> = api
        .features
        .iter()
        .map(|f| {
            e.string(&format!(
                "{n}_new: this CPU (or its OS) lacks {f}, which {n} was compiled for (--target-cpu {})",
                api.target
            ))
        })
        .collect::<Result<_>>()?;
    let max_threads: i64 = if api.team { 1024 } else { 1 };
    let threads_msg = e.string(&if api.team {
        format!("{n}_new: threads must be 0 to 1024")
    } else {
        format!(
            "{n}_new: threads must be 0 or 1: this artifact runs on the calling thread (compiled with --kernels jit)"
        )
    })?;
    let team_msg = e.string(&format!("{n}_new: could not start the thread team"))?;
    let team_fns = if api.team {
        Some((
            e.import("effc_rt_team_new", &[ptr], Some(ptr))?,
            e.import("effc_rt_team_run", &[ptr; 5], None)?,
            e.import("effc_rt_team_free", &[ptr], None)?,
        ))
    } else {
        None
    };
    let ctx_bytes = api.arena_bytes as i64 + HEADER + ALIGN;
    let oom_msg = e.string(&format!("{n}_new: out of memory allocating {ctx_bytes} bytes"))?;
    let calloc = e.import("calloc", &[ptr, ptr], Some(ptr))?;
    let free = e.import("free", &[ptr], None)?;
    let (id, sig) = e.export("new", &[types::I32], Some(ptr))?;
    let check = api.cpu_check;
    e.jit.function(id, sig, |b, m, p| {
        // The CPU first: nothing else has run yet that could use a missing feature.
        let check = m.declare_func_in_func(check, b.func);
        let call = b.ins().call(check, &[]);
        let which = b.inst_results(call)[0];
        let lacks = b.ins().icmp_imm_s(IntCC::NotEqual, which, 0);
        fail_if(b, m, lacks, error, |b, m| {
            let globals: Vec<GlobalValue> = missing.iter().map(|&d| m.declare_data_in_func(d, b.func)).collect();
            let index = b.ins().iadd_imm_s(which, -1);
            pick(b, index, globals.into_iter().map(Choice::Global))
        });
        let too_many = b.ins().icmp_imm_u(IntCC::UnsignedGreaterThan, p[0], max_threads);
        fail_if(b, m, too_many, error, |b, m| global_addr(b, m, threads_msg));
        let calloc = m.declare_func_in_func(calloc, b.func);
        let one = b.ins().iconst(ptr, 1);
        let bytes = b.ins().iconst(ptr, ctx_bytes);
        let call = b.ins().call(calloc, &[one, bytes]);
        let ctx = b.inst_results(call)[0];
        let failed = b.ins().icmp_imm_s(IntCC::Equal, ctx, 0);
        fail_if(b, m, failed, error, |b, m| global_addr(b, m, oom_msg));
        // The arena starts at the first aligned address past the header.
        let arena = b.ins().iadd_imm_s(ctx, HEADER + ALIGN - 1);
        let arena = b.ins().band_imm_s(arena, !(ALIGN - 1));
        b.ins().store(MemFlagsData::trusted(), arena, ctx, 0);
        if let Some((team_new, _, _)) = team_fns {
            // More than one thread: a team (calloc left the slot NULL otherwise).
            let (start, done) = (b.create_block(), b.create_block());
            let several = b.ins().icmp_imm_u(IntCC::UnsignedGreaterThan, p[0], 1);
            b.ins().brif(several, start, &[], done, &[]);
            b.switch_to_block(start);
            let team_new = m.declare_func_in_func(team_new, b.func);
            let threads = b.ins().uextend(ptr, p[0]);
            let call = b.ins().call(team_new, &[threads]);
            let team = b.inst_results(call)[0];
            b.ins().store(MemFlagsData::trusted(), team, ctx, TEAM);
            let failed = b.ins().icmp_imm_s(IntCC::Equal, team, 0);
            fail_if(b, m, failed, error, |b, m| {
                let free = m.declare_func_in_func(free, b.func);
                b.ins().call(free, &[ctx]);
                global_addr(b, m, team_msg)
            });
            b.ins().jump(done, &[]);
            b.switch_to_block(done);
        }
        b.ins().return_(&[ctx]);
    })?;

    // void NAME_free(NAME_ctx *ctx)
    let (id, sig) = e.export("free", &[ptr], None)?;
    e.jit.function(id, sig, |b, m, p| {
        if let Some((_, _, team_free)) = team_fns {
            let (has_ctx, done) = (b.create_block(), b.create_block());
            b.ins().brif(p[0], has_ctx, &[], done, &[]);
            b.switch_to_block(has_ctx);
            let team = b.ins().load(ptr, MemFlagsData::trusted(), p[0], TEAM);
            let team_free = m.declare_func_in_func(team_free, b.func);
            b.ins().call(team_free, &[team]);
            b.ins().jump(done, &[]);
            b.switch_to_block(done);
        }
        let free = m.declare_func_in_func(free, b.func);
        b.ins().call(free, &[p[0]]);
        b.ins().return_(&[]);
    })?;

    // int NAME_run(NAME_ctx *ctx, const float *const *inputs, float *const *outputs)
    let null_ctx = e.string(&format!("{n}_run: the context is NULL"))?;
    let null_io = e.string(&format!(
        "{n}_run: inputs, outputs or one of their {} + {} pointers is NULL",
        api.inputs.len(),
        api.outputs.len()
    ))?;
    let (id, sig) = e.export("run", &[ptr, ptr, ptr], Some(types::I32))?;
    e.jit.function(id, sig, |b, m, p| {
        let (ctx, inputs, outputs) = (p[0], p[1], p[2]);
        let is_null = b.ins().icmp_imm_s(IntCC::Equal, ctx, 0);
        fail_if(b, m, is_null, error, |b, m| global_addr(b, m, null_ctx));
        // The kernels' io table: the inputs' pointers, then the outputs'.
        let slots = (api.inputs.len() + api.outputs.len()).max(1) as u32;
        let io = b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, 8 * slots, 3));
        let io = b.ins().stack_addr(ptr, io, 0);
        // The tables are read only once known not NULL.
        let no_inputs = b.ins().icmp_imm_s(IntCC::Equal, inputs, 0);
        let no_outputs = b.ins().icmp_imm_s(IntCC::Equal, outputs, 0);
        let no_table = b.ins().bor(no_inputs, no_outputs);
        fail_if(b, m, no_table, error, |b, m| global_addr(b, m, null_io));
        let tables = [(inputs, api.inputs.len(), 0), (outputs, api.outputs.len(), api.inputs.len())];
        let mut any_null = b.ins().iconst(types::I8, 0);
        for (table, count, first) in tables {
            for i in 0..count {
                let p = b.ins().load(ptr, MemFlagsData::trusted(), table, (8 * i) as i32);
                b.ins().store(MemFlagsData::trusted(), p, io, (8 * (first + i)) as i32);
                let null = b.ins().icmp_imm_s(IntCC::Equal, p, 0);
                any_null = b.ins().bor(any_null, null);
            }
        }
        fail_if(b, m, any_null, error, |b, m| global_addr(b, m, null_io));
        let arena = b.ins().load(ptr, MemFlagsData::trusted(), ctx, 0);
        let kernels: Vec<FuncRef> = api.steps.iter().map(|s| m.declare_func_in_func(s.func, b.func)).collect();
        if let Some((_, team_run, _)) = team_fns {
            // With a team, each step is shared out as the JIT's runtime does.
            let team = b.ins().load(ptr, MemFlagsData::trusted(), ctx, TEAM);
            let (shared, alone) = (b.create_block(), b.create_block());
            b.ins().brif(team, shared, &[], alone, &[]);
            b.switch_to_block(shared);
            let team_run = m.declare_func_in_func(team_run, b.func);
            for (step, &f) in api.steps.iter().zip(&kernels) {
                let kernel = b.ins().func_addr(ptr, f);
                let extent = b.ins().iconst(ptr, step.extent as i64);
                b.ins().call(team_run, &[team, kernel, extent, arena, io]);
            }
            let ok = b.ins().iconst(types::I32, 0);
            b.ins().return_(&[ok]);
            b.switch_to_block(alone);
        }
        let zero = b.ins().iconst(ptr, 0);
        for (step, &f) in api.steps.iter().zip(&kernels) {
            let extent = b.ins().iconst(ptr, step.extent as i64);
            b.ins().call(f, &[arena, io, zero, extent]);
        }
        let ok = b.ins().iconst(types::I32, 0);
        b.ins().return_(&[ok]);
    })?;
    Ok(e.exported)
}

/// A value `pick` may return.
enum Choice {
    Int(i64),
    Global(GlobalValue),
}

/// Entry `index` of `choices`, or 0 (NULL) past their end: a chain of selects.
fn pick(b: &mut FunctionBuilder, index: Value, choices: impl Iterator<Item = Choice>) -> Value {
    let mut r = b.ins().iconst(types::I64, 0);
    for (k, c) in choices.enumerate() {
        let v = match c {
            Choice::Int(v) => b.ins().iconst(types::I64, v),
            Choice::Global(g) => b.ins().symbol_value(types::I64, g),
        };
        let here = b.ins().icmp_imm_s(IntCC::Equal, index, k as i64);
        r = b.ins().select(here, v, r);
    }
    r
}

/// When `cond` holds: stores the message `message` makes (after any cleanup it emits)
/// in the error slot and returns the function's failure value (NULL or 1, by its return
/// type).
fn fail_if(
    b: &mut FunctionBuilder,
    m: &mut dyn Module,
    cond: Value,
    error: DataId,
    message: impl FnOnce(&mut FunctionBuilder, &mut dyn Module) -> Value,
) {
    let (fail, go_on) = (b.create_block(), b.create_block());
    b.ins().brif(cond, fail, &[], go_on, &[]);
    b.switch_to_block(fail);
    let msg = message(b, m);
    let slot = global_addr(b, m, error);
    b.ins().store(MemFlagsData::trusted(), msg, slot, 0);
    let ty = b.func.signature.returns[0].value_type;
    let v = if ty == types::I32 { b.ins().iconst(types::I32, 1) } else { b.ins().iconst(ty, 0) };
    b.ins().return_(&[v]);
    b.switch_to_block(go_on);
}

fn global_addr(b: &mut FunctionBuilder, m: &mut dyn Module, data: DataId) -> Value {
    let g = m.declare_data_in_func(data, b.func);
    b.ins().symbol_value(types::I64, g)
}

fn load_global(b: &mut FunctionBuilder, m: &mut dyn Module, data: DataId) -> Value {
    let p = global_addr(b, m, data);
    b.ins().load(types::I64, MemFlagsData::trusted(), p, 0)
}

struct Emitter<'j> {
    jit: &'j mut Jit,
    name: &'j str,
    exported: Vec<String>,
    strings: usize,
}

impl Emitter<'_> {
    fn err(&self, e: cranelift_module::ModuleError) -> Error {
        Error::other(format!("artifact {}: {e}", self.name))
    }

    fn signature(&mut self, params: &[types::Type], ret: Option<types::Type>) -> Signature {
        let mut sig = self.jit.module().make_signature();
        sig.params.extend(params.iter().map(|&t| AbiParam::new(t)));
        sig.returns.extend(ret.map(AbiParam::new));
        sig
    }

    /// Declares the exported function `NAME_{what}`.
    fn export(&mut self, what: &str, params: &[types::Type], ret: Option<types::Type>) -> Result<(FuncId, Signature)> {
        let sig = self.signature(params, ret);
        let symbol = format!("{}_{what}", self.name);
        let id = self.jit.module().declare_function(&symbol, Linkage::Export, &sig).map_err(|e| self.err(e))?;
        self.exported.push(symbol);
        Ok((id, sig))
    }

    /// Declares a C library function.
    fn import(&mut self, symbol: &str, params: &[types::Type], ret: Option<types::Type>) -> Result<FuncId> {
        let sig = self.signature(params, ret);
        self.jit.module().declare_function(symbol, Linkage::Import, &sig).map_err(|e| self.err(e))
    }

    /// A data object of the artifact's own.
    fn data(&mut self, symbol: &str, bytes: &[u8], writable: bool) -> Result<DataId> {
        let module = self.jit.module();
        let id =
            module.declare_data(symbol, Linkage::Local, writable, false).map_err(|e| Error::other(e.to_string()))?;
        let mut desc = DataDescription::new();
        desc.define(bytes.into());
        desc.set_align(8);
        module.define_data(id, &desc).map_err(|e| Error::other(e.to_string()))?;
        Ok(id)
    }

    /// A NUL-terminated string.
    fn string(&mut self, text: &str) -> Result<DataId> {
        self.strings += 1;
        let mut bytes = text.as_bytes().to_vec();
        bytes.push(0);
        self.data(&format!("{}_str{}", self.name, self.strings), &bytes, false)
    }
}
