//! `effc bench`: latency of effc (and tract, in the same run) on seeded inputs.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use clap::Args;
use serde::Serialize;

use crate::compile::{parse_input_shape, parse_input_shapes};

#[derive(Args)]
pub struct BenchArgs {
    /// The ONNX model.
    pub model: PathBuf,
    /// Timed runs.
    #[arg(long, default_value_t = 50)]
    pub runs: usize,
    /// Untimed runs first.
    #[arg(long, default_value_t = 5)]
    pub warmup: usize,
    /// Threads for one run.
    #[arg(long, default_value_t = 1, value_parser = crate::thread_count)]
    pub threads: usize,
    /// Also time this reference in the same process (only `tract`).
    #[arg(long, value_parser = ["tract"])]
    pub vs: Option<String>,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Turn fusion passes off.
    #[arg(long)]
    pub no_fuse: bool,
    /// Print the time spent in each fused op (kernel), slowest first, with --threads threads.
    #[arg(long)]
    pub profile: bool,
    /// Shape for an input with symbolic dims, e.g. `input=1x3x224x224`. Given more than
    /// once for an input, a sweep: one model fed each shape in turn (first call, cached
    /// calls, per-image time and resident memory for each).
    #[arg(long = "input-shape", value_name = "NAME=DIMS")]
    pub input_shapes: Vec<String>,
    #[command(flatten)]
    pub codegen: crate::compile::CodegenArgs,
}

/// Latency statistics in milliseconds.
#[derive(Serialize, Clone, Copy)]
pub struct Stats {
    pub min_ms: f64,
    pub p10_ms: f64,
    pub median_ms: f64,
    pub p90_ms: f64,
}

impl Stats {
    fn of(mut v: Vec<f64>) -> Stats {
        v.sort_by(f64::total_cmp);
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        Stats { min_ms: v[0], p10_ms: at(0.1), median_ms: at(0.5), p90_ms: at(0.9) }
    }
}

#[derive(Serialize)]
struct Report {
    model: String,
    /// The CPU the figures were measured on (model name, family and model numbers).
    cpu: String,
    threads: usize,
    runs: usize,
    #[serde(flatten)]
    effc: Stats,
    gflops: f64,
    /// Which code ran the matrix products (`--kernels`, resolved).
    kernels: String,
    /// Measured single-core FMA peak at the vector width of the kernels that ran (the
    /// widest this CPU has for `jit`), and the share of `threads` × that peak the run
    /// reached.
    peak_isa: &'static str,
    peak_gflops: f64,
    percent_of_peak: f64,
    /// Median of a few compilations, file → ready to run.
    compile_ms: f64,
    /// The process's peak resident memory (VmHWM) after compiling and running effc, before
    /// tract is loaded, in MB (Linux only).
    #[serde(skip_serializing_if = "Option::is_none")]
    peak_rss_mb: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tract: Option<Stats>,
    /// effc median / tract median.
    #[serde(skip_serializing_if = "Option::is_none")]
    ratio: Option<f64>,
}

pub fn time(runs: usize, warmup: usize, mut f: impl FnMut() -> Result<()>) -> Result<Stats> {
    for _ in 0..warmup {
        f()?;
    }
    let mut v = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        f()?;
        v.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(Stats::of(v))
}

/// Compile time is noisy (allocation, page faults): the median of the first compilation
/// and four more.
fn median_compile_ms(model: &std::path::Path, opts: &effc::Options, first: f64) -> Result<f64> {
    let mut v = vec![first];
    for _ in 0..4 {
        v.push(effc::compile_file(model, opts)?.summary.compile_ms);
    }
    v.sort_by(f64::total_cmp);
    Ok(v[v.len() / 2])
}

/// VmHWM from /proc/self/status, in MB.
fn peak_rss_mb() -> Option<f64> {
    proc_status_mb("VmHWM:")
}

/// A memory field of /proc/self/status (given in kB), in MB.
fn proc_status_mb(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

pub fn run(args: &BenchArgs) -> Result<()> {
    let points = sweep_points(&args.input_shapes)?;
    if points.len() > 1 {
        return sweep(args, &points);
    }
    let opts = effc::Options {
        input_shapes: parse_input_shapes(&args.input_shapes)?,
        fuse: !args.no_fuse,
        ..args.codegen.options()
    };
    let c = effc::compile_file(&args.model, &opts)?;
    let model = c.model()?;
    let inputs: Vec<effc::Tensor> = (model.inputs().iter().enumerate())
        .map(|(i, info)| effc::input::seeded(&info.shape, info.dtype, i as u64))
        .collect::<effc::Result<_>>()?;
    if args.profile {
        let team = (args.threads > 1).then(|| effc::Team::new(args.threads));
        let per_kernel = model.profile_with(team.as_ref(), &inputs, args.runs.max(1))?;
        let total: f64 = per_kernel.iter().map(|(_, t)| t).sum();
        let mut by_op: Vec<(String, f64)> = Vec::new();
        for (name, t) in per_kernel {
            match by_op.iter_mut().find(|(n, _)| *n == name) {
                Some(e) => e.1 += t,
                None => by_op.push((name, t)),
            }
        }
        by_op.sort_by(|a, b| b.1.total_cmp(&a.1));
        let (runs, ops) = (args.runs as f64, by_op.len());
        println!("{} per run: {:.2} ms in {ops} ops, {} thread(s)", args.model.display(), total / runs, args.threads);
        for (name, t) in &by_op {
            println!("{:>8.3} ms {:>5.1}%  {name}", t / args.runs as f64, 100.0 * t / total);
        }
        return Ok(());
    }
    let session = effc::Session::new(model, args.threads)?;
    let effc_stats = time(args.runs, args.warmup, || {
        session.run(&inputs)?;
        Ok(())
    })?;
    // Before tract or the extra compilations below can raise it.
    let rss = peak_rss_mb();
    let tract = match &args.vs {
        Some(_) => {
            let shapes: Vec<Vec<usize>> = model.inputs().iter().map(|i| i.shape.clone()).collect();
            let r = effc_tract::Reference::load(&args.model, &shapes, &[])?;
            let data: Vec<Vec<f32>> = inputs.iter().map(|t| t.to_f32_vec()).collect();
            let refs: Vec<&[f32]> = data.iter().map(Vec::as_slice).collect();
            Some(time(args.runs, args.warmup, || {
                r.run(&refs)?;
                Ok(())
            })?)
        }
        None => None,
    };
    let flops = 2.0 * c.summary.macs as f64;
    let resolved = args.codegen.kernels.resolve()?;
    let peak_isa = resolved.unwrap_or_else(effc_kernels::Isa::detect);
    let peak = effc_kernels::peak_gflops(peak_isa).unwrap_or(f64::NAN);
    let gflops = flops / (effc_stats.median_ms * 1e6);
    let kernels = resolved.map_or("jit", |isa| isa.name()).to_string();
    let report = Report {
        model: args.model.display().to_string(),
        cpu: cpu_model(),
        threads: args.threads,
        runs: args.runs,
        effc: effc_stats,
        gflops,
        kernels,
        peak_isa: peak_isa.name(),
        peak_gflops: peak,
        percent_of_peak: 100.0 * gflops / (peak * args.threads as f64),
        compile_ms: median_compile_ms(&args.model, &opts, c.summary.compile_ms)?,
        peak_rss_mb: rss,
        ratio: tract.map(|t| effc_stats.median_ms / t.median_ms),
        tract,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let line = |name: &str, s: &Stats| {
        println!(
            "{name:<6} min {:>8.2} ms  p10 {:>8.2}  median {:>8.2}  p90 {:>8.2}",
            s.min_ms, s.p10_ms, s.median_ms, s.p90_ms
        )
    };
    println!("{} ({} threads, {} runs, compile {:.1} ms)", report.model, args.threads, args.runs, report.compile_ms);
    println!("cpu    {}", report.cpu);
    line("effc", &report.effc);
    println!(
        "       {:.1} GFLOP/s with {} kernels = {:.1}% of {} × the {} single-core peak ({:.0} GFLOP/s)",
        report.gflops, report.kernels, report.percent_of_peak, args.threads, report.peak_isa, report.peak_gflops
    );
    if let (Some(t), Some(r)) = (&report.tract, report.ratio) {
        line("tract", t);
        println!("ratio  effc/tract median = {r:.3}");
    }
    Ok(())
}

/// The shapes of each point of a sweep: every input given once keeps its shape, and those
/// given k times take their i-th shape at point i.
fn sweep_points(specs: &[String]) -> Result<Vec<HashMap<String, Vec<usize>>>> {
    let mut given: Vec<(String, Vec<Vec<usize>>)> = Vec::new();
    for spec in specs {
        let (name, dims) = parse_input_shape(spec)?;
        match given.iter_mut().find(|(n, _)| *n == name) {
            Some((_, list)) => list.push(dims),
            None => given.push((name, vec![dims])),
        }
    }
    let points = given.iter().map(|(_, l)| l.len()).max().unwrap_or(1);
    if let Some((name, l)) = given.iter().find(|(_, l)| l.len() != 1 && l.len() != points) {
        bail!(
            "--input-shape gives '{name}' {} times but another input {points} times: a sweep needs one count",
            l.len()
        );
    }
    Ok((0..points).map(|i| given.iter().map(|(n, l)| (n.clone(), l[i.min(l.len() - 1)].clone())).collect()).collect())
}

/// One point of a sweep.
#[derive(Serialize)]
struct SweepPoint {
    shapes: Vec<Vec<usize>>,
    /// The first call with these shapes: compiling them, then one run (at load for the first).
    first_call_ms: f64,
    #[serde(flatten)]
    cached: Stats,
    /// The cached median over the leading dim of the first input (the batch).
    per_image_ms: f64,
    /// Resident memory after the point (VmRSS), in MB, and the shapes cached by then.
    rss_mb: Option<f64>,
    shapes_cached: usize,
}

/// `--input-shape` given several times for an input: one [`effc::Model`] fed each point in
/// turn, as a server fed requests of several batch sizes would be.
fn sweep(args: &BenchArgs, points: &[HashMap<String, Vec<usize>>]) -> Result<()> {
    let t = Instant::now();
    let opts = effc::Options {
        input_shapes: HashMap::new(),
        fuse: !args.no_fuse,
        shape_cache: points.len(),
        keep_graph: false,
        ..args.codegen.options()
    };
    // The inputs' order, to give the first point's shapes to the model at load.
    let file = effc_onnx::load_model_within(&args.model, opts.max_memory.unwrap_or(usize::MAX))?;
    let names: Vec<String> = effc_onnx::declared_inputs(&file, &[])?.into_iter().map(|i| i.name).collect();
    drop(file);
    let in_order = |point: &HashMap<String, Vec<usize>>| names.iter().map(|n| point.get(n).cloned()).collect();
    let model = effc::Model::load(&args.model, &effc::Options { shapes_in_order: in_order(&points[0]), ..opts })?;
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    let at_load = model.cached_shapes().into_iter().next().unwrap_or_default();
    let session = effc::Session::new(&model, args.threads)?;
    let mut report = Vec::new();
    for (i, point) in points.iter().enumerate() {
        let shapes: Vec<Vec<usize>> = in_order(point)
            .into_iter()
            .zip(&at_load)
            .map(|(given, bound): (Option<Vec<usize>>, _)| given.unwrap_or_else(|| bound.clone()))
            .collect();
        let inputs: Vec<effc::Tensor> = (shapes.iter().zip(model.inputs()).enumerate())
            .map(|(k, (s, info))| effc::input::seeded(s, info.dtype, k as u64))
            .collect::<effc::Result<_>>()?;
        let t = Instant::now();
        session.run(&inputs)?;
        let first_call_ms = if i == 0 { load_ms } else { 0.0 } + t.elapsed().as_secs_f64() * 1e3;
        let cached = time(args.runs, args.warmup, || {
            session.run(&inputs)?;
            Ok(())
        })?;
        let images = shapes.first().and_then(|s| s.first()).copied().unwrap_or(1).max(1);
        report.push(SweepPoint {
            per_image_ms: cached.median_ms / images as f64,
            shapes,
            first_call_ms,
            cached,
            rss_mb: current_rss_mb(),
            shapes_cached: model.cached_shapes().len(),
        });
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("{} ({} threads, {} runs per shape)", args.model.display(), args.threads, args.runs);
    println!("cpu    {}", cpu_model());
    for p in &report {
        println!(
            "{:<24} first call {:>8.1} ms  cached median {:>8.2} ms  per image {:>7.3} ms  rss {:>6.0} MB  ({} cached)",
            format!("{:?}", p.shapes),
            p.first_call_ms,
            p.cached.median_ms,
            p.per_image_ms,
            p.rss_mb.unwrap_or(f64::NAN),
            p.shapes_cached
        );
    }
    Ok(())
}

/// VmRSS from /proc/self/status, in MB.
fn current_rss_mb() -> Option<f64> {
    proc_status_mb("VmRSS:")
}

/// The CPU's model name with its family and model numbers (`AMD EPYC (family 25, model
/// 17)`: virtual machines often report a bare "AMD EPYC", which the numbers tell apart),
/// from /proc/cpuinfo; "unknown" where that is not readable.
pub fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    match (field("model name"), field("cpu family"), field("model")) {
        (Some(name), Some(family), Some(model)) => format!("{name} (family {family}, model {model})"),
        (Some(name), _, _) => name,
        _ => "unknown".to_string(),
    }
}
