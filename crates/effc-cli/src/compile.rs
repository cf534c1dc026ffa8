//! `effc compile`: what the model holds and what the compiler made of it.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};

#[derive(Args)]
pub struct CompileArgs {
    /// The ONNX model.
    pub model: PathBuf,
    /// Shape for an input with symbolic dims, e.g. `input=1x3x224x224`. Repeatable.
    #[arg(long = "input-shape", value_name = "NAME=DIMS")]
    pub input_shapes: Vec<String>,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Also write an artefact: `dot` (the optimised graph for Graphviz), `clif` (the
    /// Cranelift IR of every kernel) or `lib` (a static library OUT.a and its C header
    /// OUT.h, which a C program links; no effc at run time).
    #[arg(long, value_enum)]
    pub emit: Vec<Emit>,
    /// Where `--emit` writes (default: the model's name with the artefact's extension;
    /// for `lib`, the path without `.a`).
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// `--emit lib`: the prefix of the library's C symbols (default: OUT's file name made
    /// a C identifier).
    #[arg(long)]
    pub name: Option<String>,
    /// `--emit lib`: the CPUs the code is for: native (this one), x86-64-v3 (AVX2) or
    /// x86-64-v4 (AVX-512). The library refuses, in NAME_new, to run on a CPU without them.
    #[arg(long, default_value = "native")]
    pub target_cpu: effc::TargetCpu,
    /// List the passes with how many changes each made.
    #[arg(long)]
    pub print_passes: bool,
    /// Turn fusion passes off.
    #[arg(long)]
    pub no_fuse: bool,
    #[command(flatten)]
    pub codegen: crate::compile::CodegenArgs,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Emit {
    /// The optimised graph for Graphviz.
    Dot,
    /// The Cranelift IR of every kernel.
    Clif,
    /// A static library and its C header.
    Lib,
}

/// How to generate code, shared by every command that compiles a model.
#[derive(Args)]
pub struct CodegenArgs {
    /// Refuse models whose arena plus weights exceed SIZE (e.g. 512M, 2G).
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "4G")]
    pub max_memory: usize,
    /// Checked mode: canaries around every buffer, verified after every kernel.
    #[arg(long)]
    pub checked: bool,
    /// Code for matrix products: auto (the best micro-kernels for this CPU), avx512, avx2,
    /// portable, or jit (Cranelift code only).
    #[arg(long, default_value = "auto")]
    pub kernels: effc::Kernels,
    /// Keep a quantized model's int8 weights int8 in memory (a quarter of their f32 size;
    /// slower where they stay cached).
    #[arg(long)]
    pub int8_weights: bool,
}

impl CodegenArgs {
    /// Default options with these settings. The commands need the compiled model, not
    /// the graph: code generation may consume it, holding one copy of the weights.
    pub fn options(&self) -> effc::Options {
        effc::Options {
            checked: self.checked,
            kernels: self.kernels,
            int8_weights: self.int8_weights,
            max_memory: Some(self.max_memory),
            keep_graph: false,
            ..Default::default()
        }
    }
}

/// Parses a byte size: a number with an optional K, M or G suffix (powers of 1024).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let (digits, shift) = match t.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&t[..t.len() - 1], 10),
        Some('M') => (&t[..t.len() - 1], 20),
        Some('G') => (&t[..t.len() - 1], 30),
        _ => (t, 0),
    };
    digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(1usize << shift))
        .ok_or_else(|| format!("'{s}' is not a size like 512M or 2G"))
}

/// Parses `name=1x3x224x224`.
pub fn parse_input_shapes(specs: &[String]) -> Result<HashMap<String, Vec<usize>>> {
    let mut map = HashMap::new();
    for spec in specs {
        let (name, dims) = parse_input_shape(spec)?;
        if map.contains_key(&name) {
            bail!("--input-shape gives '{name}' twice");
        }
        map.insert(name, dims);
    }
    Ok(map)
}

/// One `--input-shape NAME=1x3x224x224`.
pub fn parse_input_shape(spec: &str) -> Result<(String, Vec<usize>)> {
    let (name, dims) =
        spec.rsplit_once('=').with_context(|| format!("--input-shape '{spec}' should look like NAME=1x3x224x224"))?;
    let dims = dims
        .split(['x', ','])
        .map(|d| d.trim().parse::<usize>().ok().filter(|&d| d > 0))
        .collect::<Option<Vec<_>>>()
        .with_context(|| format!("--input-shape '{spec}': dims must be positive integers"))?;
    Ok((name.to_string(), dims))
}

fn histogram_line(h: &BTreeMap<String, usize>) -> String {
    let mut v: Vec<_> = h.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    v.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ")
}

fn millions(n: u64) -> String {
    format!("{:.1} M", n as f64 / 1e6)
}

/// Where `--emit lib` writes: OUT.a and OUT.h.
struct LibPaths {
    archive: PathBuf,
    header: PathBuf,
}

impl LibPaths {
    fn of(args: &CompileArgs) -> Result<Self> {
        let out = args.output.clone().unwrap_or_else(|| args.model.with_extension(""));
        let out = match out.extension().and_then(|e| e.to_str()) {
            Some("a" | "h") => out.with_extension(""),
            _ => out,
        };
        let with = |ext: &str| {
            let mut p = out.clone().into_os_string();
            p.push(ext);
            PathBuf::from(p)
        };
        let paths = LibPaths { archive: with(".a"), header: with(".h") };
        // Found out before compiling: a path that cannot be written (a file that is not
        // there yet is made and removed again, an existing one kept as it is).
        for p in [&paths.archive, &paths.header] {
            let existed = p.exists();
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(p)
                .with_context(|| format!("cannot write {}", p.display()))?;
            if !existed {
                let _ = std::fs::remove_file(p);
            }
        }
        Ok(paths)
    }

    /// The symbols' prefix: `--name`, else the file name made a C identifier.
    fn name(&self, args: &CompileArgs) -> Result<String> {
        if let Some(n) = &args.name {
            if !effc::is_c_identifier(n) {
                bail!("--name '{n}': the library's name prefixes C symbols, so it must be a C identifier");
            }
            return Ok(n.clone());
        }
        let stem = self.archive.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
        let mut name: String = stem.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
            name.insert_str(0, "model_");
        }
        if !effc::is_c_identifier(&name) {
            name.push_str("_model");
        }
        Ok(name)
    }
}

pub fn run(args: &CompileArgs) -> Result<()> {
    if args.emit.iter().any(|e| matches!(e, Emit::Lib)) {
        if args.emit.len() > 1 {
            bail!("--emit lib writes OUT.a and OUT.h alone; run effc compile again for dot or clif");
        }
        return emit_lib(args);
    }
    let opts = effc::Options {
        input_shapes: parse_input_shapes(&args.input_shapes)?,
        fuse: !args.no_fuse,
        keep_clif: args.emit.iter().any(|e| matches!(e, Emit::Clif)),
        keep_graph: args.emit.iter().any(|e| matches!(e, Emit::Dot)),
        ..args.codegen.options()
    };
    let c = effc::compile_file(&args.model, &opts)?;
    for emit in &args.emit {
        match emit {
            Emit::Dot => {
                let path = args.output.clone().unwrap_or_else(|| args.model.with_extension("dot"));
                std::fs::write(&path, c.graph.to_dot()).with_context(|| format!("cannot write {}", path.display()))?;
                if !args.json {
                    println!("wrote {}", path.display());
                }
            }
            Emit::Lib => unreachable!("--emit lib returned above"),
            Emit::Clif => {
                let path = args.output.clone().unwrap_or_else(|| args.model.with_extension("clif"));
                let model = c.model()?;
                let mut text = String::new();
                for (name, clif) in model.clif().unwrap_or_default() {
                    text.push_str(&format!("; kernel {name}\n{clif}\n"));
                }
                std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
                if !args.json {
                    println!("wrote {}", path.display());
                }
            }
        }
    }
    print_summary(&c.summary, args)
}

/// `effc compile --emit lib`: the static library, its header, and the command to link them.
fn emit_lib(args: &CompileArgs) -> Result<()> {
    let paths = LibPaths::of(args)?;
    let name = paths.name(args)?;
    let opts = effc::Options {
        input_shapes: parse_input_shapes(&args.input_shapes)?,
        fuse: !args.no_fuse,
        artifact: Some(effc::LibOptions { name: name.clone(), target: args.target_cpu }),
        ..args.codegen.options()
    };
    let c = effc::compile_file(&args.model, &opts)?;
    let artifact = c.artifact.context("the compilation made no artifact")?;
    let archive = std::path::absolute(&paths.archive).unwrap_or_else(|_| paths.archive.clone());
    let archive_text = archive.display().to_string();
    std::fs::write(&paths.archive, &artifact.archive)
        .with_context(|| format!("cannot write {}", paths.archive.display()))?;
    let runtime = artifact.runtime_path(&archive);
    if let Some(runtime) = &runtime {
        let bytes = effc::runtime_archive()?;
        if std::fs::read(runtime).ok().as_deref() != Some(&bytes[..]) {
            std::fs::write(runtime, &bytes).with_context(|| format!("cannot write {}", runtime.display()))?;
        }
    }
    let source = args.model.file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_default();
    std::fs::write(&paths.header, artifact.header(&archive_text, &source))
        .with_context(|| format!("cannot write {}", paths.header.display()))?;
    if !args.json {
        println!(
            "wrote     {} ({:.1} MB) and {}: {name}_new, {name}_run, ... for --target-cpu {}",
            paths.archive.display(),
            artifact.archive.len() as f64 / 1e6,
            paths.header.display(),
            artifact.target
        );
        println!("cpu       {name}_new checks for {}", artifact.features.join(", "));
        if let Some(runtime) = &runtime {
            println!("runtime   {} (micro-kernels and the thread team)", runtime.display());
        }
        println!("link      {}", artifact.link_command(&archive_text));
    }
    print_summary(&c.summary, args)
}

fn print_summary(s: &effc::Summary, args: &CompileArgs) -> Result<()> {
    if args.json {
        println!("{}", serde_json::to_string_pretty(s)?);
        return Ok(());
    }
    println!("model     {} ({}, opset {})", s.model, s.producer, s.opset);
    for t in &s.inputs {
        println!("input     {} {}{:?}", t.name, t.dtype, t.shape);
    }
    for t in &s.outputs {
        println!("output    {} {}{:?}", t.name, t.dtype, t.shape);
    }
    println!("ops in    {}", histogram_line(&s.ops_before));
    println!("ops out   {}", histogram_line(&s.ops_after));
    println!("params    {} ({})", millions(s.params), s.params);
    let m = &s.macs_split;
    println!(
        "MACs      {} = 1x1 conv {} + depthwise {} + other conv {} + gemm {}",
        millions(s.macs),
        millions(m.conv1x1),
        millions(m.depthwise),
        millions(m.conv_other),
        millions(m.gemm)
    );
    if s.kernels > 0 {
        println!(
            "backend   {} kernels, arena {:.2} MB, weights {:.2} MB, ~{:.1} MB of activations moved per run",
            s.kernels,
            s.arena_bytes as f64 / 1e6,
            s.weight_bytes as f64 / 1e6,
            s.activation_bytes_moved as f64 / 1e6
        );
        println!("schedule  {}", s.backend);
    }
    for u in &s.unfused {
        println!("unfused   conv '{}': {}", u.node, u.reason);
    }
    if args.print_passes {
        for p in &s.passes {
            println!("pass      {:<24} {} changes", p.name, p.changes);
        }
    }
    let stages: Vec<String> = s.stages_ms.iter().map(|(k, v)| format!("{k} {v:.1}")).collect();
    println!("time      {:.1} ms ({})", s.compile_ms, stages.join(", "));
    Ok(())
}
