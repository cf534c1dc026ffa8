//! ONNX graph → effc IR.
//!
//! Nodes are visited in dependency order. Each ONNX node becomes zero or more typed IR nodes;
//! its attributes and parameter inputs (axes, pads, shapes) are resolved to Rust values on
//! the spot. Every node whose inputs are all constant is evaluated immediately, so the
//! shape arithmetic exporters emit is folded away as the graph is built.

mod attrs;
mod ops;
mod versions;

use std::collections::{HashMap, HashSet, VecDeque};

use effc_ir::shape::infer;
use effc_ir::{Error, Graph, Op, Result, Tensor, ValueInfo, ValueRef, eval};

use crate::OnnxModel;
use crate::proto::{GraphProto, NodeProto, ValueInfoProto, tensor_shape_proto::dimension, type_proto};
pub(crate) use attrs::Attrs;

pub use versions::{NEWEST_OPSET, OLDEST_OPSET};

#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// Shapes for inputs with symbolic dims, by input name.
    pub input_shapes: HashMap<String, Vec<usize>>,
    /// Largest constant (in elements) the importer will materialise by folding.
    pub max_folded_elements: usize,
    /// Bytes all folding together may compute (8 a value: evaluation runs in f64), so a
    /// chain of folds cannot add up to more memory than the caller allows.
    pub max_folded_bytes: usize,
    /// Bytes the initializers may take in all, checked from their declared dims before
    /// any is read.
    pub max_weight_bytes: usize,
    /// Shapes of the run-time inputs by position (the graph's inputs in order, those
    /// compiled from their initializer left out), for inputs `input_shapes` does not name:
    /// what a caller passes when it has the data (`effc run` reads them from its files).
    /// Each must fit the declared dims; symbolic dims take its values.
    pub shapes_in_order: Vec<Option<Vec<usize>>>,
    /// Graph inputs that also have an initializer, to bind as run-time inputs the caller
    /// feeds. Any other such input takes its initializer, its default in ONNX, as a
    /// constant (what onnxruntime computes when it is not fed).
    pub overridden: Vec<String>,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            input_shapes: HashMap::new(),
            max_folded_elements: 64 << 20,
            max_folded_bytes: 4 << 30,
            max_weight_bytes: 4 << 30,
            shapes_in_order: Vec::new(),
            overridden: Vec::new(),
        }
    }
}

/// Converts a loaded ONNX model into an IR graph with static shapes.
pub fn import_model(model: &OnnxModel, opts: &ImportOptions) -> Result<Graph> {
    let result = (|| -> Result<Graph> {
        let opset = model.opset()?;
        versions::check_opset(opset)?;
        let graph = model.proto.graph.as_ref().ok_or_else(|| Error::invalid("the model has no graph"))?;
        let mut imp = Importer { graph: Graph::new(), values: HashMap::new(), opset, model, opts, folded_bytes: 0 };
        imp.run(graph)?;
        Ok(imp.graph)
    })();
    match &model.path {
        Some(p) => result.map_err(|e| e.in_file(p)),
        None => result,
    }
}

pub(crate) struct Importer<'m> {
    graph: Graph,
    /// ONNX value name → the IR value that carries it.
    values: HashMap<String, ValueRef>,
    opset: i64,
    model: &'m OnnxModel,
    opts: &'m ImportOptions,
    /// What folding has computed so far, against `opts.max_folded_bytes`.
    folded_bytes: usize,
}

impl Importer<'_> {
    fn run(&mut self, g: &GraphProto) -> Result<()> {
        let declared: Vec<usize> =
            g.initializer.iter().map(|t| crate::tensor_proto::declared_bytes(t).unwrap_or(0)).collect();
        let total = declared.iter().fold(0usize, |a, &b| a.saturating_add(b));
        if total > self.opts.max_weight_bytes {
            let mb = |b: usize| b.div_ceil(1 << 20);
            let largest = declared.iter().zip(&g.initializer).max_by_key(|(b, _)| **b).map(|(_, t)| t.name.as_str());
            let e = Error::limit(format!(
                "the initializers need {} MB, over the {} MB memory cap",
                mb(total),
                mb(self.opts.max_weight_bytes)
            ));
            return Err(match largest {
                Some(name) => e.for_tensor(name),
                None => e,
            });
        }
        for name in &self.opts.overridden {
            let is_input = g.input.iter().any(|i| &i.name == name);
            if !is_input || !g.initializer.iter().any(|t| &t.name == name) {
                return Err(Error::invalid(format!(
                    "--override names '{name}', which is not a graph input with an initializer"
                )));
            }
        }
        let mut seen = HashSet::new();
        for init in &g.initializer {
            // Checked before the tensor is converted: a second copy is never read.
            if !seen.insert(init.name.as_str()) {
                return Err(Error::invalid(format!("initializer '{}' is defined twice", init.name)));
            }
            if self.opts.overridden.contains(&init.name) {
                continue;
            }
            let t = crate::tensor_proto::convert(init, &self.model.external)?;
            let v = self.graph.add_const(init.name.clone(), t);
            self.values.insert(init.name.clone(), v);
        }
        for vi in &g.input {
            // Old exporters list weights as inputs too; the initializer wins unless the
            // caller overrides it.
            if !self.values.contains_key(&vi.name) {
                self.bind_input(vi)?;
            }
        }
        for name in self.opts.input_shapes.keys() {
            if !g.input.iter().any(|i| &i.name == name) {
                return Err(Error::invalid(format!("--input-shape names '{name}', which is not a model input")));
            }
        }
        for node in topo_sort(g)? {
            self.import_node(node).map_err(|e| e.at_node(&node.name, &node.op_type).with_opset(self.opset))?;
        }
        let mut seen = HashSet::new();
        for out in &g.output {
            if !seen.insert(out.name.as_str()) {
                return Err(Error::invalid(format!("output '{}' is listed twice", out.name)));
            }
            let v = *self
                .values
                .get(&out.name)
                .ok_or_else(|| Error::invalid(format!("output '{}' is not produced by any node", out.name)))?;
            self.graph.outputs.push((out.name.clone(), v));
        }
        if self.graph.outputs.is_empty() {
            return Err(Error::invalid("the graph has no outputs"));
        }
        self.graph.prune_dead();
        Ok(())
    }

    fn bind_input(&mut self, vi: &ValueInfoProto) -> Result<()> {
        let err = |m: String| Error::invalid(format!("input '{}': {m}", vi.name));
        let declared = DeclaredTensor::of(vi)?;
        let dims = declared.dims.as_deref().unwrap_or_default();
        if let Some(d) = dims.iter().filter_map(DeclaredDim::fixed).find(|&d| d < 0) {
            return Err(err(format!("negative dim {d}")));
        }
        let position = self.graph.inputs.len();
        let given = match self.opts.input_shapes.get(&vi.name) {
            Some(s) => Some((s, "--input-shape")),
            None => self.opts.shapes_in_order.get(position).and_then(Option::as_ref).map(|s| (s, "the data's shape")),
        };
        let shape = if let Some((s, from)) = given {
            let compatible =
                s.len() == dims.len() && s.iter().zip(dims).all(|(&a, b)| b.fixed().is_none_or(|b| b as usize == a));
            if !compatible {
                return Err(err(format!("{from} {s:?} does not fit the declared dims {}", declared.dims_text())));
            }
            s.clone()
        } else {
            declared.default_shape().ok_or_else(|| {
                err(format!(
                    "dims {} are not static; give them with --input-shape {}=AxBxC...",
                    declared.dims_text(),
                    vi.name
                ))
            })?
        };
        if shape.contains(&0) {
            return Err(Error::unsupported(format!("input '{}': empty tensors (zero-size dim in {shape:?})", vi.name)));
        }
        effc_ir::checked_numel(&shape).map_err(|e| err(e.kind.to_string()))?;
        let index = self.graph.inputs.len();
        let info = ValueInfo { name: vi.name.clone(), dtype: declared.dtype, shape };
        let id = self.graph.add_node(vi.name.clone(), Op::Input { index }, &[], vec![info]);
        self.graph.inputs.push(id);
        self.values.insert(vi.name.clone(), ValueRef::new(id, 0));
        Ok(())
    }

    fn import_node(&mut self, node: &NodeProto) -> Result<()> {
        if !(node.domain.is_empty() || node.domain == "ai.onnx" || node.domain == ops::MICROSOFT) {
            return Err(effc_ir::ErrorKind::UnsupportedOp {
                op_type: node.op_type.clone(),
                domain: node.domain.clone(),
            }
            .into());
        }
        if node.domain != ops::MICROSOFT {
            versions::check_op(&node.op_type, self.opset)?;
        }
        let mut ctx = NodeCtx { imp: self, node, attrs: Attrs::new(node) };
        let outs = ops::import(&mut ctx)?;
        if let Some((i, name)) = node.output.iter().enumerate().skip(outs.len()).find(|(_, n)| !n.is_empty()) {
            return Err(Error::unsupported(format!("{}'s output {i} ('{name}')", node.op_type)));
        }
        for (name, v) in node.output.iter().zip(outs) {
            if !name.is_empty() {
                self.values.insert(name.clone(), v);
            }
        }
        Ok(())
    }
}

/// A dim of a graph input as the file declares it.
#[derive(Clone, Debug, PartialEq)]
pub enum DeclaredDim {
    Fixed(i64),
    /// A symbolic dim: its name (`N`, `batch_size`), or `None` when the file names none.
    Symbol(Option<String>),
}

impl DeclaredDim {
    pub fn fixed(&self) -> Option<i64> {
        match self {
            DeclaredDim::Fixed(v) => Some(*v),
            DeclaredDim::Symbol(_) => None,
        }
    }
}

/// A graph input or output as declared: what a caller may feed it, or get back.
#[derive(Clone, Debug)]
pub struct DeclaredTensor {
    pub name: String,
    pub dtype: effc_ir::DType,
    /// `None` when the file declares no shape at all.
    pub dims: Option<Vec<DeclaredDim>>,
}

impl DeclaredTensor {
    fn of(vi: &ValueInfoProto) -> Result<Self> {
        let Some(type_proto::Value::TensorType(tt)) = vi.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
            return Err(Error::invalid(format!("input '{}': only tensor inputs are supported", vi.name)));
        };
        let dims = tt.shape.as_ref().map(|s| {
            s.dim
                .iter()
                .map(|d| match &d.value {
                    Some(dimension::Value::DimValue(v)) => DeclaredDim::Fixed(*v),
                    Some(dimension::Value::DimParam(p)) if !p.is_empty() => DeclaredDim::Symbol(Some(p.clone())),
                    _ => DeclaredDim::Symbol(None),
                })
                .collect()
        });
        Ok(DeclaredTensor { name: vi.name.clone(), dtype: crate::dtype_from_onnx(tt.elem_type)?, dims })
    }

    /// The shape compiled when the caller gives none: the static dims, with a lone symbolic
    /// leading dim (the batch) bound to 1; `None` if another dim is symbolic or negative, or
    /// no shape is declared.
    pub fn default_shape(&self) -> Option<Vec<usize>> {
        let dims = self.dims.as_ref()?;
        (dims.iter().enumerate())
            .map(|(i, d)| match d {
                DeclaredDim::Fixed(v) => usize::try_from(*v).ok(),
                DeclaredDim::Symbol(_) => (i == 0).then_some(1),
            })
            .collect()
    }

    /// The declared dims for messages: numbers, symbols by name, `?` for unnamed ones.
    pub fn dims_text(&self) -> String {
        let Some(dims) = &self.dims else { return "(no shape declared)".into() };
        let parts: Vec<String> = dims
            .iter()
            .map(|d| match d {
                DeclaredDim::Fixed(v) => v.to_string(),
                DeclaredDim::Symbol(Some(name)) => name.clone(),
                DeclaredDim::Symbol(None) => "?".into(),
            })
            .collect();
        format!("[{}]", parts.join(", "))
    }
}

/// Graph inputs that also have an initializer and are not `overridden`: compiled with the
/// initializer as their value, their ONNX default, and not fed at run time.
pub fn defaulted_inputs(model: &OnnxModel, overridden: &[String]) -> Vec<String> {
    let Some(g) = &model.proto.graph else { return Vec::new() };
    let defaulted = |name: &String| g.initializer.iter().any(|t| &t.name == name) && !overridden.contains(name);
    g.input.iter().map(|i| &i.name).filter(|n| defaulted(n)).cloned().collect()
}

/// The graph inputs fed at run time, in order: those without an initializer, and those with
/// one that `overridden` names (see [`ImportOptions::overridden`]).
pub fn declared_inputs(model: &OnnxModel, overridden: &[String]) -> Result<Vec<DeclaredTensor>> {
    let g = model.proto.graph.as_ref().ok_or_else(|| Error::invalid("the model has no graph"))?;
    let defaulted = defaulted_inputs(model, overridden);
    g.input.iter().filter(|vi| !defaulted.contains(&vi.name)).map(DeclaredTensor::of).collect()
}

/// The graph outputs as declared; an output whose type the file leaves out reads as f32
/// of no declared shape.
pub fn declared_outputs(model: &OnnxModel) -> Result<Vec<DeclaredTensor>> {
    let g = model.proto.graph.as_ref().ok_or_else(|| Error::invalid("the model has no graph"))?;
    Ok(g.output
        .iter()
        .map(|vi| {
            DeclaredTensor::of(vi).unwrap_or(DeclaredTensor {
                name: vi.name.clone(),
                dtype: effc_ir::DType::F32,
                dims: None,
            })
        })
        .collect())
}

/// Orders nodes so that every node comes after the producers of its inputs. Files are
/// supposed to be sorted already, but not every exporter sorts them.
fn topo_sort(g: &GraphProto) -> Result<Vec<&NodeProto>> {
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (i, n) in g.node.iter().enumerate() {
        for o in n.output.iter().filter(|o| !o.is_empty()) {
            if producer.insert(o, i).is_some() {
                return Err(Error::invalid(format!("value '{o}' is produced by more than one node")));
            }
        }
    }
    let known: HashSet<&str> =
        g.initializer.iter().map(|t| t.name.as_str()).chain(g.input.iter().map(|i| i.name.as_str())).collect();
    for o in producer.keys() {
        if known.contains(o) {
            return Err(Error::invalid(format!("value '{o}' is both a graph input or initializer and a node output")));
        }
    }
    let mut pending = vec![0usize; g.node.len()];
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); g.node.len()];
    for (i, n) in g.node.iter().enumerate() {
        for inp in n.input.iter().filter(|s| !s.is_empty()) {
            if let Some(&p) = producer.get(inp.as_str()) {
                pending[i] += 1;
                users[p].push(i);
            } else if !known.contains(inp.as_str()) {
                return Err(
                    Error::invalid(format!("input '{inp}' is not produced by any node")).at_node(&n.name, &n.op_type)
                );
            }
        }
    }
    let mut ready: VecDeque<usize> = (0..g.node.len()).filter(|&i| pending[i] == 0).collect();
    let mut order = Vec::with_capacity(g.node.len());
    while let Some(i) = ready.pop_front() {
        order.push(&g.node[i]);
        for &u in &users[i] {
            pending[u] -= 1;
            if pending[u] == 0 {
                ready.push_back(u);
            }
        }
    }
    if order.len() < g.node.len() {
        let stuck = (0..g.node.len()).find(|&i| pending[i] > 0).map(|i| &g.node[i]).unwrap();
        return Err(Error::invalid("the graph has a cycle").at_node(&stuck.name, &stuck.op_type));
    }
    Ok(order)
}

/// What an op importer sees: the node, its attributes and the graph being built.
pub(crate) struct NodeCtx<'a, 'm> {
    imp: &'a mut Importer<'m>,
    pub node: &'a NodeProto,
    pub attrs: Attrs<'a>,
}

impl NodeCtx<'_, '_> {
    pub fn opset(&self) -> i64 {
        self.imp.opset
    }

    pub fn num_inputs(&self) -> usize {
        self.node.input.len()
    }

    /// Input `i`, or `None` when it is absent or named "".
    pub fn input(&self, i: usize) -> Result<Option<ValueRef>> {
        match self.node.input.get(i).map(String::as_str) {
            None | Some("") => Ok(None),
            Some(name) => self
                .imp
                .values
                .get(name)
                .copied()
                .map(Some)
                .ok_or_else(|| Error::invalid(format!("input '{name}' comes from an output effc does not produce"))),
        }
    }

    /// Input `i`, which must be present.
    pub fn x(&self, i: usize) -> Result<ValueRef> {
        self.input(i)?.ok_or_else(|| Error::invalid(format!("required input {i} is missing")))
    }

    pub fn info(&self, v: ValueRef) -> &ValueInfo {
        self.imp.graph.value(v)
    }

    pub fn shape(&self, v: ValueRef) -> Vec<usize> {
        self.info(v).shape.clone()
    }

    /// The constant value of input `i`, if present. A present but non-constant input is an
    /// error: effc needs parameters such as axes and pads at compile time.
    pub fn const_input(&self, i: usize) -> Result<Option<Tensor>> {
        let Some(v) = self.input(i)? else {
            return Ok(None);
        };
        match self.imp.graph.const_value(v) {
            Some(t) => Ok(Some(t.clone())),
            None => {
                Err(Error::unsupported(format!("input {i} ('{}') must be a compile-time constant", self.node.input[i])))
            }
        }
    }

    pub fn const_ints(&self, i: usize) -> Result<Option<Vec<i64>>> {
        self.const_input(i)?.map(|t| t.to_i64_vec()).transpose()
    }

    /// Adds a constant as an intermediate value of this node; `tag` makes its name unique.
    pub fn constant_step(&mut self, t: Tensor, tag: &str) -> Result<ValueRef> {
        self.check_size(t.numel())?;
        let name = self.out_name(0, tag);
        Ok(self.imp.graph.add_const(name, t))
    }

    /// The constant value of `v`, if it is one.
    pub fn const_value(&self, v: ValueRef) -> Option<Tensor> {
        self.imp.graph.const_value(v).cloned()
    }

    /// Adds a constant named after output `port` of this node.
    pub fn constant(&mut self, port: usize, t: Tensor) -> Result<ValueRef> {
        self.check_size(t.numel())?;
        let name = self.out_name(port, "");
        Ok(self.imp.graph.add_const(name, t))
    }

    fn out_name(&self, port: usize, tag: &str) -> String {
        let base = self.node.output.get(port).map(String::as_str).unwrap_or("");
        let base = if base.is_empty() { self.node.name.as_str() } else { base };
        if tag.is_empty() { base.to_string() } else { format!("{base}::{tag}") }
    }

    fn check_size(&mut self, numel: usize) -> Result<()> {
        let opts = self.imp.opts;
        if numel > opts.max_folded_elements {
            return Err(Error::limit(format!(
                "a constant of {numel} elements is larger than the folding limit of {}",
                opts.max_folded_elements
            )));
        }
        self.imp.folded_bytes = self.imp.folded_bytes.saturating_add(numel.saturating_mul(8));
        if self.imp.folded_bytes > opts.max_folded_bytes {
            return Err(Error::limit(format!(
                "constant folding would compute more than {} bytes in all (the memory limit)",
                opts.max_folded_bytes
            )));
        }
        Ok(())
    }

    /// Adds `op` as this node's result (its outputs take the node's output names).
    pub fn emit(&mut self, op: Op, inputs: &[Option<ValueRef>]) -> Result<Vec<ValueRef>> {
        self.add(op, inputs, "")
    }

    /// Adds `op` as an intermediate step of this node; `tag` makes its value names unique.
    pub fn emit_step(&mut self, op: Op, inputs: &[Option<ValueRef>], tag: &str) -> Result<ValueRef> {
        Ok(self.add(op, inputs, tag)?[0])
    }

    fn add(&mut self, op: Op, inputs: &[Option<ValueRef>], tag: &str) -> Result<Vec<ValueRef>> {
        let g = &self.imp.graph;
        let infos: Vec<Option<&ValueInfo>> = inputs.iter().map(|v| v.map(|v| g.value(v))).collect();
        let types = infer(&op, &infos)?;
        let names: Vec<String> = (0..types.len()).map(|p| self.out_name(p, tag)).collect();
        let all_const = inputs.iter().flatten().all(|&v| g.const_value(v).is_some());
        if op.is_foldable() && all_const {
            let consts: Vec<Tensor> = inputs.iter().flatten().filter_map(|&v| g.const_value(v)).cloned().collect();
            for (_, s) in &types {
                self.check_size(s.iter().product())?;
            }
            let refs: Vec<&Tensor> = consts.iter().collect();
            let shapes: Vec<Vec<usize>> = types.iter().map(|(_, s)| s.clone()).collect();
            let outs = eval::eval(&op, &refs, &shapes)?;
            return Ok(outs.into_iter().zip(names).map(|(t, n)| self.imp.graph.add_const(n, t)).collect());
        }
        let outputs = types
            .into_iter()
            .zip(names)
            .map(|((dtype, shape), name)| ValueInfo { name, dtype, shape })
            .collect::<Vec<_>>();
        let n = outputs.len();
        let node_name = if self.node.name.is_empty() { self.out_name(0, tag) } else { self.node.name.clone() };
        let id = self.imp.graph.add_node(node_name, op, inputs, outputs);
        Ok((0..n).map(|p| ValueRef::new(id, p)).collect())
    }
}
