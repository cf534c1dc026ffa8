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
    /// Also write an artefact: `dot` (the optimised graph for Graphviz) or `clif` (the
    /// Cranelift IR of every kernel).
    #[arg(long, value_enum)]
    pub emit: Vec<Emit>,
    /// Where `--emit` writes (default: the model's name with the artefact's extension).
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
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
}

impl CodegenArgs {
    /// Default options with these settings. The commands need the compiled model, not
    /// the graph: code generation may consume it, holding one copy of the weights.
    pub fn options(&self) -> effc::Options {
        effc::Options {
            checked: self.checked,
            kernels: self.kernels,
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

pub fn run(args: &CompileArgs) -> Result<()> {
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
    let s = &c.summary;
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
