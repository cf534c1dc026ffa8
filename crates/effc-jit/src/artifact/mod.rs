//! Ahead-of-time output (`effc compile --emit lib`): the model's kernels in an object
//! file, with its weights as read-only data and a small C API around them, packed as a
//! static library plus a C header. The kernels come from the same lowering as JIT code;
//! only the sink differs (see `module::Sink`).

mod archive;
mod cpu;
mod entry;
mod header;

/// The runtime object effc-jit's build script made (see build.rs).
mod rt {
    include!(concat!(env!("OUT_DIR"), "/rt/runtime.rs"));
}

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};

use cranelift_module::{DataDescription, Module};
use effc_ir::{DType, Error, Graph, Result};

pub use cpu::TargetCpu;

use crate::lower::Lowering;
use crate::module::{Jit, Sink, const_symbol};
use crate::{IoInfo, JitOptions, Kernels};

/// What an artifact is called and which CPUs it runs on.
#[derive(Clone, Debug)]
pub struct LibOptions {
    /// The prefix of every exported symbol: a C identifier.
    pub name: String,
    pub target: TargetCpu,
}

/// A model compiled ahead of time: a static library and what its header declares.
#[derive(Debug)]
pub struct Artifact {
    pub name: String,
    pub target: TargetCpu,
    /// The `ar` archive holding the model's object file.
    pub archive: Vec<u8>,
    pub inputs: Vec<IoInfo>,
    pub outputs: Vec<IoInfo>,
    /// The CPU features `NAME_new` checks for.
    pub features: Vec<&'static str>,
    /// Libraries the object needs besides the C library (`-lm` for Cranelift's libcalls).
    pub libs: Vec<String>,
    /// Whether the code calls micro-kernels: then the program links the runtime archive
    /// ([`runtime_archive`]) too, and contexts may run on a thread team.
    pub needs_runtime: bool,
    /// The micro-kernels' instruction set, or `None` for Cranelift code only.
    pub micro: Option<effc_kernels::Isa>,
    pub arena_bytes: usize,
    pub const_bytes: usize,
    pub kernel_count: usize,
    pub traffic_saved: u64,
}

impl Artifact {
    /// The C header, whose first `// link:` line names `archive_path` (as given).
    pub fn header(&self, archive_path: &str, source: &str) -> String {
        header::write(self, archive_path, source)
    }

    /// Where the runtime archive goes for an artifact at `archive_path`: beside it, one
    /// per directory, shared by the artifacts there; `None` if it needs none.
    pub fn runtime_path(&self, archive_path: &std::path::Path) -> Option<std::path::PathBuf> {
        self.needs_runtime.then(|| archive_path.with_file_name(RUNTIME_FILE))
    }

    /// The command that links a program `app.c` with the artifact, whose archive is at
    /// `archive_path` and the runtime's (if it needs it) beside it.
    pub fn link_command(&self, archive_path: &str) -> String {
        let mut parts = vec!["cc".to_string(), "app.c".into(), archive_path.to_string()];
        if let Some(runtime) = self.runtime_path(std::path::Path::new(archive_path)) {
            parts.push(runtime.display().to_string());
            parts.extend(rt::LIBS.split_whitespace().map(str::to_string));
        }
        for lib in &self.libs {
            if !parts.contains(lib) {
                parts.push(lib.clone());
            }
        }
        parts.join(" ")
    }
}

/// The runtime archive's file name.
pub const RUNTIME_FILE: &str = "libeffc_rt.a";

/// The runtime archive artifacts with micro-kernels link: the kernels and the thread
/// team, every symbol but `effc_rt_*` local.
pub fn runtime_archive() -> Result<Vec<u8>> {
    if !rt::MISSING.is_empty() {
        return Err(Error::unsupported(format!(
            "this effc was built without the runtime archive ({}); artifacts with micro-kernels need it: \
             use --kernels jit",
            rt::MISSING
        )));
    }
    let symbols: Vec<(String, usize)> = rt::SYMBOLS.iter().map(|s| (s.to_string(), 0)).collect();
    Ok(archive::write(&[("effc_rt.o", rt::OBJECT)], &symbols))
}

/// The kernels an artifact for `target` uses: `auto` picks the micro-kernels of the
/// target's level (this CPU's best for `native`); an explicit choice must fit the level.
/// Micro-kernels are compiled in for the instruction sets this CPU has only.
pub fn artifact_kernels(target: TargetCpu, requested: Kernels) -> Result<Kernels> {
    use effc_kernels::Isa;
    let isa = match (requested, target) {
        (Kernels::Jit, _) => return Ok(Kernels::Jit),
        (Kernels::Isa(isa), _) => isa,
        (Kernels::Auto, TargetCpu::Native) => Isa::detect(),
        (Kernels::Auto, TargetCpu::X86_64V3) => Isa::Avx2,
        (Kernels::Auto, TargetCpu::X86_64V4) => Isa::Avx512,
    };
    if !rt::MISSING.is_empty() {
        return match requested {
            // Without the runtime, `auto` means the code that needs none.
            Kernels::Auto => Ok(Kernels::Jit),
            _ => runtime_archive().map(|_| Kernels::Jit),
        };
    }
    let level = crate::module::target_isa(&target, true)?;
    let has: Vec<&str> = target.required(level.as_ref()).iter().map(|f| f.name).collect();
    let needs: &[&str] = match isa {
        Isa::Avx512 => &["AVX-512F"],
        Isa::Avx2 => &["AVX2", "FMA"],
        Isa::Portable => &[],
    };
    if let Some(f) = needs.iter().find(|f| !has.contains(f)) {
        return Err(Error::unsupported(format!(
            "--kernels {}: its micro-kernels need {f}, which --target-cpu {} does not have",
            isa.name(),
            target
        )));
    }
    if let Some(f) = isa.missing_feature() {
        return Err(Error::unsupported(format!(
            "--kernels {}: this CPU lacks {f}, and effc compiles micro-kernels in for the instruction sets of the \
             CPU it runs on",
            isa.name()
        )));
    }
    Ok(Kernels::Isa(isa))
}

/// Whether `name` can prefix C symbols: an identifier, not a keyword, not reserved.
pub fn is_c_identifier(name: &str) -> bool {
    const KEYWORDS: [&str; 44] = [
        "auto",
        "break",
        "case",
        "char",
        "const",
        "continue",
        "default",
        "do",
        "double",
        "else",
        "enum",
        "extern",
        "float",
        "for",
        "goto",
        "if",
        "inline",
        "int",
        "long",
        "register",
        "restrict",
        "return",
        "short",
        "signed",
        "sizeof",
        "static",
        "struct",
        "switch",
        "typedef",
        "union",
        "unsigned",
        "void",
        "volatile",
        "while",
        "bool",
        "true",
        "false",
        "alignas",
        "alignof",
        "nullptr",
        "static_assert",
        "thread_local",
        "typeof",
        "constexpr",
    ];
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
        && !KEYWORDS.contains(&name)
        && name.len() <= 64
}

/// Defines the pool buffers the code refers to as data objects, and those their pointer
/// slots refer to (kernel parameters point at weights), with a relocation per slot.
fn define_constants(jit: &mut Jit, pool: &crate::aligned::ConstPool) -> Result<()> {
    let err = |e: cranelift_module::ModuleError| Error::other(format!("weights: {e}"));
    let mut todo: Vec<usize> = jit.const_data.keys().copied().collect();
    let mut done = HashSet::new();
    while let Some(chunk) = todo.pop() {
        if !done.insert(chunk) {
            continue;
        }
        let mut bytes = pool.chunk(chunk).to_vec();
        let mut desc = DataDescription::new();
        for (at, target) in pool.pointers_in(chunk) {
            if target == 0 {
                continue;
            }
            let (to, offset) = pool
                .locate(target)
                .ok_or_else(|| Error::other(format!("a constant points at {target:#x}, outside the model's pool")))?;
            let (id, new) = const_symbol(jit.sink.module(), &mut jit.const_data, to)?;
            if new {
                todo.push(to);
            }
            let gv = jit.module().declare_data_in_data(id, &mut desc);
            desc.write_data_addr(at as u32, gv, offset as i64);
            bytes[at..at + 8].fill(0);
        }
        desc.define(bytes.into());
        desc.set_align(crate::aligned::ALIGN as u64);
        let id = jit.const_data[&chunk];
        jit.module().define_data(id, &desc).map_err(err)?;
    }
    Ok(())
}

/// Compiles `graph` (shapes static, passes done) into an artifact.
pub fn compile_lib(graph: Graph, opts: &JitOptions, lib: &LibOptions) -> Result<Artifact> {
    if !is_c_identifier(&lib.name) {
        return Err(Error::invalid(format!(
            "--name '{}': an artifact's name prefixes C symbols, so it must be a C identifier (letters, digits, _)",
            lib.name
        )));
    }
    let kernels = artifact_kernels(lib.target, opts.kernels)?;
    let (inputs, outputs) = crate::runtime::io_of(&graph);
    if let Some(t) = inputs.iter().chain(&outputs).find(|t| t.dtype != DType::F32) {
        return Err(Error::unsupported(format!(
            "'{}' is {}: an artifact's C API takes and returns f32 tensors only",
            t.name, t.dtype
        )));
    }
    let libcalls = Arc::new(Mutex::new(BTreeSet::new()));
    let seen = libcalls.clone();
    let names = Box::new(move |call| {
        let name = cranelift_module::default_libcall_names()(call);
        seen.lock().unwrap_or_else(|p| p.into_inner()).insert(name.clone());
        name
    });
    let jit = Jit::object(&format!("{}.o", lib.name), &lib.target, names)?;
    let opts = JitOptions { keep_clif: false, checked: false, weights: None, kernels, ..opts.clone() };
    let lowered = Lowering::run_releasing(graph, jit, &opts)?;
    let mut jit = lowered.jit;
    define_constants(&mut jit, &lowered.consts)?;
    let needs_runtime = jit.calls_runtime;
    if needs_runtime {
        runtime_archive()?;
    }
    let required = lib.target.required(jit.module().isa());
    let features: Vec<&'static str> = required.iter().map(|f| f.name).collect();
    let cpu_check = cpu::define_check(&mut jit, &lib.name, &required)?;
    let api = entry::Api {
        name: &lib.name,
        inputs: &inputs,
        outputs: &outputs,
        steps: &lowered.steps,
        arena_bytes: lowered.arena_bytes,
        cpu_check,
        features: &features,
        target: lib.target.name(),
        team: needs_runtime,
    };
    let exported = entry::define(&mut jit, &api)?;
    let Sink::Object(module) = jit.sink else { return Err(Error::other("an artifact compiled into JIT memory")) };
    let object = module.finish().emit().map_err(|e| Error::other(format!("object file: {e}")))?;
    let member = format!("{}.o", &lib.name[..lib.name.len().min(13)]);
    let symbols: Vec<(String, usize)> = exported.into_iter().map(|s| (s, 0)).collect();
    let archive = archive::write(&[(&member, &object)], &symbols);
    let libcalls = libcalls.lock().unwrap_or_else(|p| p.into_inner());
    let needs_libm = libcalls.iter().any(|c| !matches!(c.as_str(), "memcpy" | "memset" | "memmove" | "memcmp"));
    Ok(Artifact {
        name: lib.name.clone(),
        target: lib.target,
        archive,
        inputs,
        outputs,
        features,
        libs: if needs_libm { vec!["-lm".into()] } else { Vec::new() },
        needs_runtime,
        micro: lowered.micro,
        arena_bytes: lowered.arena_bytes,
        const_bytes: lowered.const_bytes,
        kernel_count: lowered.steps.len(),
        traffic_saved: lowered.traffic_saved,
    })
}
