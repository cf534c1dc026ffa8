//! What `effc compile` reports about a model.

use std::collections::BTreeMap;

use effc_ir::{Graph, Result, cost};
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct TensorSummary {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<usize>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PassSummary {
    pub name: String,
    pub changes: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct MacsSplit {
    pub conv1x1: u64,
    pub depthwise: u64,
    pub conv_other: u64,
    pub gemm: u64,
}

/// What the summary reports of generated code, in JIT memory or in an artifact.
pub(crate) struct CodeFigures {
    arena_bytes: usize,
    const_bytes: usize,
    kernels: usize,
    traffic_saved: u64,
    micro: Option<effc_jit::Isa>,
}

impl CodeFigures {
    pub(crate) fn of_model(c: &effc_jit::CompiledModel) -> Self {
        CodeFigures {
            arena_bytes: c.arena_bytes(),
            const_bytes: c.const_bytes(),
            kernels: c.kernel_count(),
            traffic_saved: c.traffic_saved(),
            micro: c.kernels(),
        }
    }

    pub(crate) fn of_artifact(a: &effc_jit::Artifact) -> Self {
        CodeFigures {
            arena_bytes: a.arena_bytes,
            const_bytes: a.const_bytes,
            kernels: a.kernel_count,
            traffic_saved: a.traffic_saved,
            micro: None,
        }
    }
}

/// The backend's layout and schedule decisions, reported with every compilation: what
/// runs the compute-heavy tiles depends on the kernel variant chosen.
fn backend(kernels: Option<effc_jit::Isa>) -> String {
    let layout = "activations channels-last (NHWC), rank<=2 row-major";
    match kernels {
        Some(isa) => format!(
            "{} micro-kernels ({} f32 lanes, {}-row GEMM tile) called from cranelift code; {layout}; \
             1x1 conv as GEMM, depthwise rows and im2col stem in the kernels, MBConv expansions over 1 MiB streamed",
            isa.name(),
            isa.kernels().map_or(0, |k| k.lanes),
            isa.gemm_rows()
        ),
        None => format!(
            "cranelift f32x4 only; {layout}; 1x1 conv as 4x8 register-blocked GEMM; depthwise and pools vectorised over channels"
        ),
    }
}

/// The facts `effc compile` prints, as text or as JSON.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub model: String,
    pub producer: String,
    pub opset: i64,
    pub inputs: Vec<TensorSummary>,
    /// Graph inputs that have an initializer and were compiled with it as their value
    /// (`--override NAME` makes one a run-time input instead).
    pub defaulted_inputs: Vec<String>,
    pub outputs: Vec<TensorSummary>,
    /// ONNX op histogram of the file as written.
    pub ops_before: BTreeMap<String, usize>,
    /// IR op histogram after import (Identity, Dropout and folded shape arithmetic gone).
    pub ops_imported: BTreeMap<String, usize>,
    /// IR op histogram after the passes.
    pub ops_after: BTreeMap<String, usize>,
    pub params: u64,
    /// Multiply-accumulates of one inference.
    pub macs: u64,
    pub macs_split: MacsSplit,
    pub passes: Vec<PassSummary>,
    /// Bytes of scratch memory per run (planned by liveness); 0 when not compiled.
    pub arena_bytes: usize,
    /// Bytes of packed weights and constants owned by the compiled model.
    pub weight_bytes: usize,
    /// Kernel launches per run.
    pub kernels: usize,
    /// Estimated bytes of activations read and written per inference.
    pub activation_bytes_moved: u64,
    /// Layout and schedule decisions made by the backend.
    pub backend: String,
    /// Milliseconds per stage.
    pub stages_ms: BTreeMap<String, f64>,
    /// File to optimised graph, in milliseconds.
    pub compile_ms: f64,
    /// Every conv left outside a super-op, with the first fusion rule that failed.
    pub unfused: Vec<UnfusedConv>,
}

/// A conv that no super-op took, and why.
#[derive(Clone, Debug, Serialize)]
pub struct UnfusedConv {
    pub node: String,
    pub reason: String,
}

/// What the summary needs from the decoded file, taken before the file's bytes are
/// dropped (they are not needed past import, and holding them would add the model's size
/// to the peak memory of compilation).
pub(crate) struct Source {
    model: String,
    producer: String,
    opset: i64,
    ops_before: BTreeMap<String, usize>,
    defaulted_inputs: Vec<String>,
}

impl Source {
    pub(crate) fn opset(&self) -> i64 {
        self.opset
    }

    pub(crate) fn of(model: &effc_onnx::OnnxModel, overridden: &[String]) -> Result<Self> {
        Ok(Source {
            defaulted_inputs: effc_onnx::defaulted_inputs(model, overridden),
            model: model.path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "<memory>".into()),
            producer: format!("{} {}", model.proto.producer_name, model.proto.producer_version).trim().to_string(),
            opset: model.opset()?,
            ops_before: model.op_histogram(),
        })
    }
}

impl Summary {
    /// What the optimised graph shows; [`add_code`](Self::add_code) adds what code
    /// generation made of it.
    pub(crate) fn new(
        model: Source,
        graph: &Graph,
        ops_imported: BTreeMap<String, usize>,
        passes: &[effc_opt::PassReport],
    ) -> Result<Self> {
        let tensor = |name: &str, v: effc_ir::ValueRef| {
            let info = graph.value(v);
            TensorSummary { name: name.to_string(), dtype: info.dtype.to_string(), shape: info.shape.clone() }
        };
        let m = cost::macs(graph);
        Ok(Summary {
            model: model.model,
            producer: model.producer,
            opset: model.opset,
            inputs: graph
                .inputs
                .iter()
                .map(|&id| tensor(&graph.node(id).outputs[0].name, effc_ir::ValueRef::new(id, 0)))
                .collect(),
            defaulted_inputs: model.defaulted_inputs,
            outputs: graph.outputs.iter().map(|(n, v)| tensor(n, *v)).collect(),
            ops_before: model.ops_before,
            ops_imported,
            ops_after: graph.op_histogram(),
            params: cost::params(graph),
            macs: m.total(),
            macs_split: MacsSplit {
                conv1x1: m.conv1x1,
                depthwise: m.depthwise,
                conv_other: m.conv_other,
                gemm: m.gemm,
            },
            arena_bytes: 0,
            weight_bytes: 0,
            kernels: 0,
            activation_bytes_moved: cost::activation_traffic(graph),
            backend: "not compiled".into(),
            passes: passes.iter().map(|p| PassSummary { name: p.name.to_string(), changes: p.changes }).collect(),
            stages_ms: BTreeMap::new(),
            compile_ms: 0.0,
            unfused: Vec::new(),
        })
    }

    /// The generated code's figures (if any) and the compile times.
    pub(crate) fn add_code<const N: usize>(
        &mut self,
        code: Option<CodeFigures>,
        stages: [(&str, f64); N],
        compile_ms: f64,
    ) {
        if let Some(c) = code {
            self.arena_bytes = c.arena_bytes;
            self.weight_bytes = c.const_bytes;
            self.kernels = c.kernels;
            self.activation_bytes_moved = self.activation_bytes_moved.saturating_sub(c.traffic_saved);
            self.backend = backend(c.micro);
        }
        self.stages_ms = stages.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        self.compile_ms = compile_ms;
    }
}
