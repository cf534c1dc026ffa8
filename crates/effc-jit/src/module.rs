//! Cranelift modules: ISA setup and kernel compilation, into JIT memory or an object file.
//!
//! The lowering emits every kernel through [`Jit::kernel`] whatever the sink; the two
//! differ only in how a kernel reaches the model's constants ([`ConstAccess`]) and in
//! what `finish` makes of the module.

use std::collections::HashMap;

use cranelift_codegen::Context;
use cranelift_codegen::ir::{AbiParam, Function, GlobalValue, InstBuilder, UserFuncName, types};
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{DataId, FuncId, Linkage, Module};
use cranelift_object::ObjectModule;
use effc_ir::{Error, Result};

use crate::aligned::ConstPool;
use crate::emit::{Kb, TargetCaps};

pub use effc_kernels::KernelFn;

/// Cranelift's flags for effc's code: `is_pic` for object files, which are linked into
/// position-independent executables.
fn flags(is_pic: bool) -> Result<settings::Flags> {
    let mut flags = settings::builder();
    let set = |f: &mut settings::Builder, k: &str, v: &str| {
        f.set(k, v).map_err(|e| Error::other(format!("cranelift flag {k}={v}: {e}")))
    };
    set(&mut flags, "opt_level", "speed")?;
    set(&mut flags, "is_pic", if is_pic { "true" } else { "false" })?;
    set(&mut flags, "enable_verifier", if cfg!(debug_assertions) { "true" } else { "false" })?;
    Ok(settings::Flags::new(flags))
}

pub(crate) fn host_isa() -> Result<OwnedTargetIsa> {
    target_isa(&crate::TargetCpu::Native, false)
}

/// The ISA for `cpu`'s instruction-set level.
pub(crate) fn target_isa(cpu: &crate::TargetCpu, is_pic: bool) -> Result<OwnedTargetIsa> {
    // Emitters ask `TargetCaps` before using x86-specific CLIF, but only x86-64 has been
    // built and run: its micro-kernel rows, the artifacts' CPUID checks and levels.
    if !cfg!(target_arch = "x86_64") {
        return Err(Error::unsupported("effc's backend emits x86-64 code only"));
    }
    let mut builder = cranelift_native::builder().map_err(|e| Error::other(format!("host ISA: {e}")))?;
    if let Some(features) = cpu.cranelift_features() {
        // Only the level's features: start from none, not from this host's.
        builder = cranelift_codegen::isa::lookup(builder.triple().clone())
            .map_err(|e| Error::other(format!("target ISA: {e}")))?;
        for f in features {
            builder.enable(f).map_err(|e| Error::other(format!("target ISA flag {f}: {e}")))?;
        }
    }
    builder.finish(flags(is_pic)?).map_err(|e| Error::other(format!("target ISA: {e}")))
}

pub(crate) type LibcallNames = Box<dyn Fn(cranelift_codegen::ir::LibCall) -> String + Send + Sync>;

/// Where the machine code goes.
pub(crate) enum Sink {
    /// JIT memory of this process.
    Memory(Box<JITModule>),
    /// An object file (`effc compile --emit lib`).
    Object(Box<ObjectModule>),
}

impl Sink {
    pub fn module(&mut self) -> &mut dyn Module {
        match self {
            Sink::Memory(m) => m.as_mut(),
            Sink::Object(m) => m.as_mut(),
        }
    }
}

/// How emitted code reaches the model's constants.
pub(crate) enum ConstAccess<'a> {
    /// JIT memory: constants stay where the pool put them; addresses are immediates.
    Absolute,
    /// An object file: a constant is the data symbol of its pool buffer plus an offset,
    /// relocated when the program is linked.
    Symbols(SymbolAccess<'a>),
}

pub(crate) struct SymbolAccess<'a> {
    pool: &'a ConstPool,
    module: &'a mut ObjectModule,
    data: &'a mut HashMap<usize, DataId>,
    /// Set when the code calls a micro-kernel, which the runtime archive holds.
    calls_runtime: &'a mut bool,
    /// The first reference that could not be made (reported after the kernel is built).
    pub error: Option<String>,
}

/// The read-only data symbol of pool buffer `chunk` in an object, declared on first use
/// (then `true`) and kept in `data`.
pub(crate) fn const_symbol(
    module: &mut dyn Module,
    data: &mut HashMap<usize, DataId>,
    chunk: usize,
) -> Result<(DataId, bool)> {
    if let Some(&id) = data.get(&chunk) {
        return Ok((id, false));
    }
    let id = module
        .declare_data(&format!("effc_const{chunk}"), Linkage::Local, false, false)
        .map_err(|e| Error::other(format!("weights: {e}")))?;
    data.insert(chunk, id);
    Ok((id, true))
}

/// The runtime symbol of each function JIT code may call, by address.
fn entry_points() -> &'static [(String, usize)] {
    static POINTS: std::sync::OnceLock<Vec<(String, usize)>> = std::sync::OnceLock::new();
    POINTS.get_or_init(effc_kernels::entry_points)
}

impl SymbolAccess<'_> {
    /// The symbol of the pool buffer holding `addr` in `func`, and `addr`'s offset in it.
    pub fn global(&mut self, func: &mut Function, addr: usize) -> Option<(GlobalValue, i64)> {
        let Some((chunk, offset)) = self.pool.locate(addr) else {
            self.error.get_or_insert_with(|| format!("a constant at {addr:#x} is not in the model's pool"));
            return None;
        };
        let id = match const_symbol(self.module, self.data, chunk) {
            Ok((id, _)) => id,
            Err(e) => {
                self.error.get_or_insert_with(|| e.to_string());
                return None;
            }
        };
        Some((self.module.declare_data_in_func(id, func), offset as i64))
    }

    /// The micro-kernel at `addr` as a function of `func`, imported by its runtime symbol.
    pub fn function(
        &mut self,
        func: &mut Function,
        addr: usize,
        sig: &cranelift_codegen::ir::Signature,
    ) -> Option<cranelift_codegen::ir::FuncRef> {
        let Some((name, _)) = entry_points().iter().find(|(_, a)| *a == addr) else {
            self.error.get_or_insert_with(|| format!("a call to {addr:#x}, which the runtime does not export"));
            return None;
        };
        let id = match self.module.declare_function(name, Linkage::Import, sig) {
            Ok(id) => id,
            Err(e) => {
                self.error.get_or_insert_with(|| e.to_string());
                return None;
            }
        };
        *self.calls_runtime = true;
        Some(self.module.declare_func_in_func(id, func))
    }
}

/// Builds and owns the machine code of one model.
pub(crate) struct Jit {
    pub sink: Sink,
    pub ctx: Context,
    pub fctx: FunctionBuilderContext,
    /// CLIF text per kernel, when requested (`--emit clif`).
    pub clif: Option<Vec<(String, String)>>,
    count: usize,
    /// Object sink: the data symbol of each constant-pool buffer referenced so far.
    pub const_data: HashMap<usize, DataId>,
    /// Object sink: whether some kernel calls a micro-kernel (of the runtime archive).
    pub calls_runtime: bool,
}

impl Jit {
    /// Code for this process's memory.
    pub fn new(keep_clif: bool) -> Result<Self> {
        let isa = host_isa()?;
        let module = JITModule::new(JITBuilder::with_isa(isa, cranelift_module::default_libcall_names()));
        Ok(Self::with_sink(Sink::Memory(Box::new(module)), keep_clif))
    }

    /// Code for an object file named `name`, for `cpu`'s instruction-set level;
    /// `libcalls` names the C functions Cranelift calls for some instructions.
    pub fn object(name: &str, cpu: &crate::TargetCpu, libcalls: LibcallNames) -> Result<Self> {
        let isa = target_isa(cpu, true)?;
        let builder = cranelift_object::ObjectBuilder::new(isa, name, libcalls)
            .map_err(|e| Error::other(format!("object file: {e}")))?;
        Ok(Self::with_sink(Sink::Object(Box::new(ObjectModule::new(builder))), false))
    }

    fn with_sink(sink: Sink, keep_clif: bool) -> Self {
        Jit {
            sink,
            ctx: Context::new(),
            fctx: FunctionBuilderContext::new(),
            clif: keep_clif.then(Vec::new),
            count: 0,
            const_data: HashMap::new(),
            calls_runtime: false,
        }
    }

    pub fn module(&mut self) -> &mut dyn Module {
        self.sink.module()
    }

    /// Compiles one kernel whose body `build` emits; `consts` is the pool its constants are in.
    pub fn kernel(&mut self, name: &str, consts: &ConstPool, build: impl FnOnce(&mut Kb)) -> Result<FuncId> {
        let ptr = types::I64;
        let mut sig = self.module().make_signature();
        for _ in 0..4 {
            sig.params.push(AbiParam::new(ptr));
        }
        self.count += 1;
        let symbol = format!("k{}_{}", self.count, sanitize(name));
        let id = self
            .module()
            .declare_function(&symbol, Linkage::Local, &sig)
            .map_err(|e| Error::other(format!("declare {symbol}: {e}")))?;
        self.ctx.func = Function::with_name_signature(UserFuncName::user(0, id.as_u32()), sig);
        let (frontend_config, caps, call_conv) = {
            let module = self.module();
            let isa = module.isa();
            (isa.frontend_config(), TargetCaps::of(isa), isa.default_call_conv())
        };
        let access = match &mut self.sink {
            Sink::Memory(_) => ConstAccess::Absolute,
            Sink::Object(m) => ConstAccess::Symbols(SymbolAccess {
                pool: consts,
                module: m.as_mut(),
                data: &mut self.const_data,
                calls_runtime: &mut self.calls_runtime,
                error: None,
            }),
        };
        let refused = {
            let mut b = FunctionBuilder::new(&mut self.ctx.func, &mut self.fctx);
            let entry = b.create_block();
            b.append_block_params_for_function_params(entry);
            b.switch_to_block(entry);
            let p = b.block_params(entry).to_vec();
            let mut kb = Kb::new(b, [p[0], p[1], p[2], p[3]], caps, call_conv, access);
            build(&mut kb);
            kb.b.ins().return_(&[]);
            kb.b.seal_all_blocks();
            kb.b.finalize(frontend_config);
            match kb.consts {
                ConstAccess::Symbols(s) => s.error,
                ConstAccess::Absolute => None,
            }
        };
        if let Some(e) = refused {
            return Err(Error::unsupported(format!("kernel {symbol}: {e}")));
        }
        if let Some(clif) = &mut self.clif {
            clif.push((symbol.clone(), self.ctx.func.display().to_string()));
        }
        let ctx = &mut self.ctx;
        let module = self.sink.module();
        module.define_function(id, ctx).map_err(|e| Error::other(format!("compile {symbol}: {e:?}")))?;
        module.clear_context(ctx);
        Ok(id)
    }

    /// Defines function `id`, declared with `sig`, whose whole body `build` emits (return
    /// included) from the entry block's parameters; it gets the module to reference other
    /// functions and data. For code around the kernels: an artifact's C API.
    pub fn function(
        &mut self,
        id: FuncId,
        sig: cranelift_codegen::ir::Signature,
        build: impl FnOnce(&mut FunctionBuilder, &mut dyn Module, &[cranelift_codegen::ir::Value]),
    ) -> Result<()> {
        self.ctx.func = Function::with_name_signature(UserFuncName::user(0, id.as_u32()), sig);
        let module = self.sink.module();
        let frontend_config = module.isa().frontend_config();
        {
            let mut b = FunctionBuilder::new(&mut self.ctx.func, &mut self.fctx);
            let entry = b.create_block();
            b.append_block_params_for_function_params(entry);
            b.switch_to_block(entry);
            let params = b.block_params(entry).to_vec();
            build(&mut b, module, &params);
            b.seal_all_blocks();
            b.finalize(frontend_config);
        }
        module.define_function(id, &mut self.ctx).map_err(|e| Error::other(format!("compile function {id}: {e:?}")))?;
        module.clear_context(&mut self.ctx);
        Ok(())
    }

    /// Finalises all kernels in JIT memory and returns their entry points.
    pub fn finish(&mut self, ids: &[FuncId]) -> Result<Vec<KernelFn>> {
        let Sink::Memory(module) = &mut self.sink else {
            return Err(Error::other("an object file's kernels have no addresses in this process"));
        };
        module.finalize_definitions().map_err(|e| Error::other(format!("finalize: {e}")))?;
        Ok(ids
            .iter()
            .map(|&id| {
                let p = module.get_finalized_function(id);
                // SAFETY: `p` is the finalised code of a function declared with the KernelFn
                // signature (four i64 params, no returns, host calling convention).
                unsafe { std::mem::transmute::<*const u8, KernelFn>(p) }
            })
            .collect())
    }
}

fn sanitize(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).take(48).collect()
}
