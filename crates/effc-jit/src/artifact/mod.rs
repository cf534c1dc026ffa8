//! Ahead-of-time output (`effc compile --emit lib`): the model's kernels in an object
//! file, with its weights as read-only data and a small C API around them, packed as a
//! static library plus a C header. The kernels come from the same lowering as JIT code;
//! only the sink differs (see `module::Sink`).

mod archive;
mod cpu;
mod entry;
mod header;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use cranelift_module::{DataDescription, Module};
use effc_ir::{DType, Error, Graph, Result};

pub use cpu::TargetCpu;

use crate::lower::Lowering;
use crate::module::{Jit, Sink};
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

    /// The command that links a program `app.c` with the artifact.
    pub fn link_command(&self, archive_path: &str) -> String {
        let mut parts = vec!["cc".to_string(), "app.c".into(), archive_path.to_string()];
        parts.extend(self.libs.iter().cloned());
        parts.join(" ")
    }
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

/// Compiles `graph` (shapes static, passes done) into an artifact.
pub fn compile_lib(graph: Graph, opts: &JitOptions, lib: &LibOptions) -> Result<Artifact> {
    if !is_c_identifier(&lib.name) {
        return Err(Error::invalid(format!(
            "--name '{}': an artifact's name prefixes C symbols, so it must be a C identifier (letters, digits, _)",
            lib.name
        )));
    }
    if opts.kernels != Kernels::Jit {
        return Err(Error::unsupported(format!(
            "--emit lib with --kernels {}: artifacts hold JIT code only for now (--kernels jit)",
            opts.kernels
        )));
    }
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
    let opts = JitOptions { keep_clif: false, checked: false, weights: None, ..opts.clone() };
    let lowered = Lowering::run_releasing(graph, jit, &opts)?;
    if lowered.consts.holds_addresses() {
        return Err(Error::unsupported("constants holding addresses (micro-kernel parameters) in an artifact"));
    }
    let mut jit = lowered.jit;
    // The weights: one read-only data object per pool buffer the kernels refer to.
    let mut chunks: Vec<_> = jit.const_data.iter().map(|(&c, &id)| (c, id)).collect();
    chunks.sort_unstable();
    for (chunk, id) in chunks {
        let mut desc = DataDescription::new();
        desc.define(lowered.consts.chunk(chunk).into());
        desc.set_align(crate::aligned::ALIGN as u64);
        jit.module().define_data(id, &desc).map_err(|e| Error::other(format!("weights: {e}")))?;
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
        arena_bytes: lowered.arena_bytes,
        const_bytes: lowered.const_bytes,
        kernel_count: lowered.steps.len(),
        traffic_saved: lowered.traffic_saved,
    })
}
