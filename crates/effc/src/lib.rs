//! effc: an ONNX graph compiler for the EfficientNet family.
//!
//! The pipeline is: [`effc_onnx`] decodes the file and imports it into the IR
//! ([`effc_ir::Graph`]), folding constants and resolving static shapes; [`effc_opt`] runs the
//! passes; the backend (next) lowers the result to machine code.
//!
//! ```no_run
//! let c = effc::compile_file("model.onnx", &effc::Options::default())?;
//! println!("{} M multiply-accumulates", c.summary.macs as f64 / 1e6);
//! # Ok::<(), effc::Error>(())
//! ```

pub mod compare;
pub mod input;
mod model;
mod summary;

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

pub use effc_ir::{DType, Error, ErrorKind, Graph, Result, Tensor, TensorData};
pub use effc_jit::{
    Artifact, CompiledModel, IoInfo, Isa, Kernels, LibOptions, RUNTIME_FILE, TargetCpu, Team, TensorMut, TensorRef,
    WeightStore, is_c_identifier, runtime_archive,
};
pub use effc_onnx::{DeclaredDim, DeclaredTensor};
pub use model::{Model, Specialised};
pub use summary::{Summary, TensorSummary, UnfusedConv};

/// How to compile a model.
#[derive(Clone, Debug)]
pub struct Options {
    /// Shapes for inputs with symbolic dims, by input name.
    pub input_shapes: HashMap<String, Vec<usize>>,
    /// Shapes of the run-time inputs by position, for those `input_shapes` does not name
    /// (the shapes of the data at hand); they must fit the declared dims.
    pub shapes_in_order: Vec<Option<Vec<usize>>>,
    /// Run the fusion passes (`--no-fuse` turns them off).
    pub fuse: bool,
    /// Stop after the passes: no machine code (`effc compile` without running).
    pub analyze_only: bool,
    /// Keep the CLIF text of every kernel.
    pub keep_clif: bool,
    /// Also return every named tensor that survives the passes (for `check --layers`).
    pub expose_layers: bool,
    /// Checked mode: canaries around every buffer, verified after every kernel.
    pub checked: bool,
    /// Refuse models whose arena plus weights exceed this many bytes (`--max-memory`).
    pub max_memory: Option<usize>,
    /// Micro-kernels for an instruction set, the best one (default), or pure JIT code.
    pub kernels: Kernels,
    /// Keep int8 weights (a QDQ or QOperator model's) int8 in memory: smaller, and slower
    /// where the weights stay cached (`effc_jit::JitOptions::int8_weights`).
    pub int8_weights: bool,
    /// Keep the optimised graph, weights included, in [`Compilation::graph`] (default).
    /// Without it, code generation consumes the graph and drops each weight once its
    /// packed copy exists, so compiling peaks at about one copy of the weights instead of
    /// two (B0: ~43 MB instead of ~63 MB for a whole process), and `Compilation::graph` is
    /// left empty. The CLI compiles this way when it does not print the graph.
    pub keep_graph: bool,
    /// Graph inputs with an initializer to feed at run time (`--override`), by name; any
    /// other such input is frozen to its initializer, its ONNX default.
    pub overridden: Vec<String>,
    /// How many input shapes a [`Model`] with symbolic dims keeps compiled (least recently
    /// used first out); at least 1.
    pub shape_cache: usize,
    /// Where packed weights are held: a store shared by the compilations that use it (a
    /// [`Model`]'s specialisations), or `None` for weights of the compilation's own.
    pub weights: Option<std::sync::Arc<WeightStore>>,
    /// Compile into an ahead-of-time artifact ([`Compilation::artifact`]) instead of JIT
    /// memory (`effc compile --emit lib`).
    pub artifact: Option<LibOptions>,
}

/// The default memory cap: 4 GiB for arena plus weights.
pub const DEFAULT_MAX_MEMORY: usize = 4 << 30;

impl Default for Options {
    fn default() -> Self {
        Options {
            input_shapes: HashMap::new(),
            shapes_in_order: Vec::new(),
            fuse: true,
            analyze_only: false,
            keep_clif: false,
            expose_layers: false,
            checked: false,
            max_memory: Some(DEFAULT_MAX_MEMORY),
            kernels: Kernels::Auto,
            int8_weights: false,
            keep_graph: true,
            overridden: Vec::new(),
            shape_cache: 4,
            weights: None,
            artifact: None,
        }
    }
}

/// The result of compiling: the optimised graph, the machine code and what was learned
/// on the way.
pub struct Compilation {
    /// The optimised graph; empty unless [`Options::keep_graph`].
    pub graph: Graph,
    /// `None` with [`Options::analyze_only`] or [`Options::artifact`].
    pub model: Option<CompiledModel>,
    /// With [`Options::artifact`]: the static library and what its header declares.
    pub artifact: Option<Artifact>,
    pub summary: Summary,
    /// With [`Options::expose_layers`]: the intermediate tensors returned after the model's
    /// own outputs, in execution order.
    pub layers: Vec<String>,
    /// For each model output a DequantizeLinear of one scale produces (a QDQ model's), that
    /// scale, and 1 for a uint8/int8 output (a QuantizeLinear's): the step its values move
    /// in, which `effc check` compares in.
    pub output_quanta: Vec<Option<f32>>,
}

impl Compilation {
    /// The compiled model; an error if compilation stopped at analysis.
    pub fn model(&self) -> Result<&CompiledModel> {
        self.model.as_ref().ok_or_else(|| Error::other("the model was only analysed, not compiled"))
    }
}

/// Loads, imports and optimises an ONNX file.
pub fn compile_file(path: impl AsRef<Path>, opts: &Options) -> Result<Compilation> {
    let path = path.as_ref();
    let t0 = Instant::now();
    let model = effc_onnx::load_model_within(path, decode_limit(opts))?;
    compile_loaded(model, opts, t0)
}

/// Like [`compile_file`], for a model held in memory. External data, if any, is resolved
/// relative to `dir`.
pub fn compile_bytes(bytes: Vec<u8>, dir: Option<&Path>, opts: &Options) -> Result<Compilation> {
    let t0 = Instant::now();
    let model = effc_onnx::load_model_bytes_within(bytes, dir.map(Path::to_path_buf), decode_limit(opts))?;
    compile_loaded(model, opts, t0)
}

/// Decoding counts against the memory limit like everything after it.
fn decode_limit(opts: &Options) -> usize {
    opts.max_memory.unwrap_or(usize::MAX)
}

fn compile_loaded(model: effc_onnx::OnnxModel, opts: &Options, t0: Instant) -> Result<Compilation> {
    let Some(lib) = &opts.artifact else {
        let imported = import(&model, opts, t0)?;
        drop(model);
        return optimize_and_compile(imported, opts, t0);
    };
    let in_file = |e: Error| match &model.path {
        Some(p) => e.in_file(p),
        None => e,
    };
    shapes_bound(&model, opts).map_err(in_file)?;
    // The passes fuse for the kernels the artifact will call.
    let kernels = effc_jit::artifact_kernels(lib.target, opts.kernels).map_err(in_file)?;
    let opts = &Options { kernels, ..opts.clone() };
    let imported = import(&model, opts, t0)?;
    drop(model);
    optimize_and_compile(imported, opts, t0)
}

/// An artifact's shapes are fixed: every input with a symbolic dim needs its shape from
/// `--input-shape` (import would otherwise default a batch dim to 1 silently).
fn shapes_bound(model: &effc_onnx::OnnxModel, opts: &Options) -> Result<()> {
    for input in effc_onnx::declared_inputs(model, &opts.overridden)? {
        let fixed = input.dims.as_ref().is_some_and(|d| d.iter().all(|d| d.fixed().is_some()));
        if fixed || opts.input_shapes.contains_key(&input.name) {
            continue;
        }
        let example = input
            .default_shape()
            .map_or("DIMS".to_string(), |s| s.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("x"));
        return Err(Error::invalid(format!(
            "input '{}' has dims {}, but an artifact's shapes are fixed: give them with --input-shape {}={example}",
            input.name,
            input.dims_text(),
            input.name
        )));
    }
    Ok(())
}

/// A model imported into the IR, with what the summary needs from its file.
pub(crate) struct Imported {
    graph: Graph,
    source: summary::Source,
    path: Option<std::path::PathBuf>,
    decode_ms: f64,
    import_ms: f64,
}

/// Imports `model` with the shapes `opts` gives; the file is not needed past this.
pub(crate) fn import(model: &effc_onnx::OnnxModel, opts: &Options, t0: Instant) -> Result<Imported> {
    let decode_ms = ms(t0);
    let mut import_opts = effc_onnx::ImportOptions {
        input_shapes: opts.input_shapes.clone(),
        shapes_in_order: opts.shapes_in_order.clone(),
        overridden: opts.overridden.clone(),
        ..Default::default()
    };
    if let Some(limit) = opts.max_memory {
        import_opts.max_folded_bytes = limit;
        import_opts.max_weight_bytes = limit;
    }
    let t1 = Instant::now();
    let graph = effc_onnx::import_model(model, &import_opts)?;
    let import_ms = ms(t1);
    let source = summary::Source::of(model, &opts.overridden)?;
    Ok(Imported { graph, source, path: model.path.clone(), decode_ms, import_ms })
}

/// Runs the passes over an imported model and generates its code (unless
/// [`Options::analyze_only`]).
pub(crate) fn optimize_and_compile(imported: Imported, opts: &Options, t0: Instant) -> Result<Compilation> {
    let Imported { mut graph, source, path, decode_ms, import_ms } = imported;
    let ops_before = graph.op_histogram();
    let output_quanta = graph.outputs.iter().map(|&(_, v)| dequantized_quantum(&graph, v)).collect();
    let t2 = Instant::now();
    let fusion = std::sync::Arc::new(opts.kernels);
    let passes = effc_opt::pipeline(&effc_opt::PassOptions { fuse: opts.fuse, fusion });
    // Errors past import name the file and the opset too, as import's do.
    let opset = source.opset();
    let locate = |e: Error| {
        let e = e.with_opset(opset);
        match &path {
            Some(p) => e.in_file(p),
            None => e,
        }
    };
    let reports = effc_opt::optimize(&mut graph, &passes).map_err(locate)?;
    let optimize_ms = ms(t2);
    let layers = if opts.expose_layers { expose_layers(&mut graph)? } else { Vec::new() };
    let mut summary = Summary::new(source, &graph, ops_before, &reports)?;
    if opts.fuse {
        let unfused = effc_opt::explain_unfused(&graph, &opts.kernels);
        summary.unfused = unfused.into_iter().map(|u| UnfusedConv { node: u.node, reason: u.reason }).collect();
    }
    let t3 = Instant::now();
    let jit_opts = effc_jit::JitOptions {
        keep_clif: opts.keep_clif,
        checked: opts.checked,
        max_memory: opts.max_memory,
        kernels: opts.kernels,
        int8_weights: opts.int8_weights,
        weights: opts.weights.clone(),
    };
    let (compiled, artifact, graph) = match &opts.artifact {
        _ if opts.analyze_only => (None, None, graph),
        Some(lib) => {
            let artifact = effc_jit::compile_lib(graph, &jit_opts, lib).map_err(locate)?;
            (None, Some(artifact), Graph::default())
        }
        None => {
            let (c, graph) = if opts.keep_graph {
                (CompiledModel::compile(&graph, &jit_opts), graph)
            } else {
                (CompiledModel::compile_owned(graph, &jit_opts), Graph::default())
            };
            (Some(c.map_err(locate)?), None, graph)
        }
    };
    let codegen_ms = ms(t3);
    let stages = [("decode", decode_ms), ("import", import_ms), ("optimize", optimize_ms), ("codegen", codegen_ms)];
    let figures = match (&compiled, &artifact) {
        (Some(c), _) => Some(summary::CodeFigures::of_model(c)),
        (None, Some(a)) => Some(summary::CodeFigures::of_artifact(a)),
        (None, None) => None,
    };
    summary.add_code(figures, stages, ms(t0));
    Ok(Compilation { graph, model: compiled, artifact, summary, layers, output_quanta })
}

/// The step `v`'s values move in: 1 for quantized integers, the scale of the
/// DequantizeLinear producing it if it has one scale.
fn dequantized_quantum(graph: &Graph, v: effc_ir::ValueRef) -> Option<f32> {
    if graph.value(v).dtype.quant_range().is_some() {
        return Some(1.0);
    }
    let effc_ir::Op::Dequantize(_) = graph.node(v.node).op else { return None };
    let scale = graph.const_value(graph.input(v.node, 1)?)?;
    match scale.to_f32_vec()[..] {
        [s] => Some(s),
        _ => None,
    }
}

/// Makes every named intermediate tensor a model output; returns their names. Values
/// that exist only inside effc (names with `::`) are skipped.
fn expose_layers(graph: &mut Graph) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for id in graph.topo_order()? {
        let node = graph.node(id);
        if matches!(node.op, effc_ir::Op::Const(_) | effc_ir::Op::Input { .. }) {
            continue;
        }
        for port in 0..node.outputs.len() {
            let v = effc_ir::ValueRef::new(id, port);
            let name = graph.value(v).name.clone();
            if !name.contains("::") && !graph.is_output(v) && graph.value(v).dtype == DType::F32 {
                graph.outputs.push((name.clone(), v));
                names.push(name);
            }
        }
    }
    Ok(names)
}

/// What a [`Session`] runs: a model compiled for one set of shapes, or a [`Model`] that
/// compiles (and caches) code for each set of shapes it is fed.
pub trait Runnable: Sync {
    fn run_with(&self, team: Option<&Team>, inputs: &[Tensor]) -> Result<Vec<Tensor>>;
}

impl Runnable for CompiledModel {
    fn run_with(&self, team: Option<&Team>, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        CompiledModel::run_with(self, team, inputs)
    }
}

/// A model plus the threads that run it: `threads` = 1 runs on the caller.
pub struct Session<'m, M: Runnable + ?Sized = CompiledModel> {
    model: &'m M,
    team: Option<Team>,
}

impl<'m, M: Runnable + ?Sized> Session<'m, M> {
    pub fn new(model: &'m M, threads: usize) -> Result<Self> {
        if threads == 0 {
            return Err(Error::invalid("--threads must be at least 1"));
        }
        Ok(Session { model, team: (threads > 1).then(|| Team::new(threads)) })
    }

    pub fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        self.model.run_with(self.team.as_ref(), inputs)
    }
}

impl Session<'_, CompiledModel> {
    pub fn run_into(&self, inputs: &[TensorRef], outputs: &mut [TensorMut]) -> Result<()> {
        self.model.run_into_with(self.team.as_ref(), inputs, outputs)
    }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}
