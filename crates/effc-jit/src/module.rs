//! The Cranelift JIT module: ISA setup and kernel compilation.

use cranelift_codegen::Context;
use cranelift_codegen::ir::{AbiParam, Function, InstBuilder, UserFuncName, types};
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{FuncId, Linkage, Module};
use effc_ir::{Error, Result};

use crate::emit::Kb;

/// Signature of every kernel: `(arena, io, lo, hi)`. `arena` is the run's scratch memory,
/// `io` points at the table of caller input/output buffers, and the kernel handles the
/// slice `lo..hi` of its outermost (parallel) loop.
pub type KernelFn = unsafe extern "C" fn(arena: *mut u8, io: *const *mut u8, lo: u64, hi: u64);

pub(crate) fn host_isa() -> Result<OwnedTargetIsa> {
    let mut flags = settings::builder();
    let set = |f: &mut settings::Builder, k: &str, v: &str| {
        f.set(k, v).map_err(|e| Error::other(format!("cranelift flag {k}={v}: {e}")))
    };
    set(&mut flags, "opt_level", "speed")?;
    set(&mut flags, "is_pic", "false")?;
    set(&mut flags, "enable_verifier", if cfg!(debug_assertions) { "true" } else { "false" })?;
    let builder = cranelift_native::builder().map_err(|e| Error::other(format!("host ISA: {e}")))?;
    let isa = builder.finish(settings::Flags::new(flags)).map_err(|e| Error::other(format!("host ISA: {e}")))?;
    // The kernels use x86-specific CLIF (x86_cvtt2dq) where it saves instructions.
    if !cfg!(target_arch = "x86_64") {
        return Err(Error::unsupported("effc's backend emits x86-64 code only"));
    }
    Ok(isa)
}

/// Builds and owns the machine code of one model.
pub(crate) struct Jit {
    pub module: JITModule,
    ctx: Context,
    fctx: FunctionBuilderContext,
    /// CLIF text per kernel, when requested (`--emit clif`).
    pub clif: Option<Vec<(String, String)>>,
    count: usize,
}

impl Jit {
    pub fn new(keep_clif: bool) -> Result<Self> {
        let isa = host_isa()?;
        let module = JITModule::new(JITBuilder::with_isa(isa, cranelift_module::default_libcall_names()));
        let ctx = module.make_context();
        Ok(Jit { module, ctx, fctx: FunctionBuilderContext::new(), clif: keep_clif.then(Vec::new), count: 0 })
    }

    /// Compiles one kernel whose body `build` emits.
    pub fn kernel(&mut self, name: &str, build: impl FnOnce(&mut Kb)) -> Result<FuncId> {
        let ptr = types::I64;
        let mut sig = self.module.make_signature();
        for _ in 0..4 {
            sig.params.push(AbiParam::new(ptr));
        }
        self.count += 1;
        let symbol = format!("k{}_{}", self.count, sanitize(name));
        let id = self
            .module
            .declare_function(&symbol, Linkage::Local, &sig)
            .map_err(|e| Error::other(format!("declare {symbol}: {e}")))?;
        self.ctx.func = Function::with_name_signature(UserFuncName::user(0, id.as_u32()), sig);
        let frontend_config = self.module.isa().frontend_config();
        let has_fma = self.module.isa().has_native_fma();
        let call_conv = self.module.isa().default_call_conv();
        {
            let mut b = FunctionBuilder::new(&mut self.ctx.func, &mut self.fctx);
            let entry = b.create_block();
            b.append_block_params_for_function_params(entry);
            b.switch_to_block(entry);
            let p = b.block_params(entry).to_vec();
            let mut kb = Kb::new(b, [p[0], p[1], p[2], p[3]], has_fma, call_conv);
            build(&mut kb);
            kb.b.ins().return_(&[]);
            kb.b.seal_all_blocks();
            kb.b.finalize(frontend_config);
        }
        if let Some(clif) = &mut self.clif {
            clif.push((symbol.clone(), self.ctx.func.display().to_string()));
        }
        self.module.define_function(id, &mut self.ctx).map_err(|e| Error::other(format!("compile {symbol}: {e:?}")))?;
        self.module.clear_context(&mut self.ctx);
        Ok(id)
    }

    /// Finalises all kernels and returns their entry points.
    pub fn finish(&mut self, ids: &[FuncId]) -> Result<Vec<KernelFn>> {
        self.module.finalize_definitions().map_err(|e| Error::other(format!("finalize: {e}")))?;
        Ok(ids
            .iter()
            .map(|&id| {
                let p = self.module.get_finalized_function(id);
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
