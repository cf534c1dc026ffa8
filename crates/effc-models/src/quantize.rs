//! The QDQ spelling onnxruntime's `quantize_static` writes, applied to a float model built
//! here, so int8 tests run without model files:
//! - activations: uint8, asymmetric, one scale per tensor from a calibrated range, as a
//!   QuantizeLinear → DequantizeLinear pair after every tensor a quantized op produces
//!   (and after the graph inputs);
//! - Conv and Gemm weights: int8 initializers, symmetric (±127, zero point 0), one scale
//!   per output channel, read through DequantizeLinear on axis 0;
//! - biases: int32 with scale = input scale × weight scale, zero point 0;
//! - a Relu or Clip right after a conv goes: its output's range sets the conv's
//!   quantization, whose saturation clamps as the activation did;
//! - reshapes, transposes, pads and max pools keep their input's scale and zero point.
//!
//! The calibration (running the float model to find each tensor's range) is the caller's:
//! [`calibration_outputs`] names the tensors to measure and [`with_outputs`] exposes them.
//! BatchNormalization is folded into the conv before it first ([`fold_batch_norms`]), as
//! onnxruntime's pre-processing does.

use std::collections::HashMap;

use effc_onnx::proto::tensor_proto::DataType;
use effc_onnx::proto::{GraphProto, ModelProto, NodeProto, TensorProto};

use crate::writer::{attr_int, tensor_f32, tensor_quantized};

/// The ops whose outputs get their own calibrated quantization.
const COMPUTE: &[&str] =
    &["Conv", "Gemm", "MatMul", "Add", "Mul", "Sigmoid", "GlobalAveragePool", "AveragePool", "Relu", "Clip"];

/// The ops that only move or pick values: their output keeps their input's quantization.
const LAYOUT: &[&str] = &["Pad", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "MaxPool"];

/// The activations `quantize_static` removes after a conv.
const REMOVABLE: &[&str] = &["Relu", "Clip"];

/// A tensor's calibrated range: (min, max) over the calibration inputs.
pub type Ranges = HashMap<String, (f32, f32)>;

/// The uint8 scale and zero point of a range widened to hold 0, as `quantize_static`
/// computes them for activations.
pub fn activation_params((min, max): (f32, f32)) -> (f32, i32) {
    let (min, max) = (min.min(0.0), max.max(0.0));
    let scale = if max > min { (max - min) / 255.0 } else { 1.0 };
    let zero_point = (-min / scale).round_ties_even().clamp(0.0, 255.0) as i32;
    (scale, zero_point)
}

/// The f32 values of an initializer the writer made (raw little-endian data or
/// `float_data`).
fn floats(t: &TensorProto) -> Option<Vec<f32>> {
    if t.data_type != DataType::Float as i32 {
        return None;
    }
    if !t.float_data.is_empty() {
        return Some(t.float_data.clone());
    }
    Some(t.raw_data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

fn graph(model: &ModelProto) -> GraphProto {
    model.graph.clone().unwrap_or_default()
}

/// The f32 tensors whose range the QDQ spelling needs: the graph inputs and the outputs of
/// the ops it quantizes.
pub fn calibration_outputs(model: &ModelProto) -> Vec<String> {
    let g = graph(model);
    let inputs = g.input.iter().map(|i| i.name.clone());
    let computed = g.node.iter().filter(|n| COMPUTE.contains(&n.op_type.as_str())).flat_map(|n| n.output.clone());
    inputs.chain(computed).collect()
}

/// `model` with `names` added to its outputs (f32, shapes left to inference).
pub fn with_outputs(model: &ModelProto, names: &[String]) -> ModelProto {
    let mut b = crate::writer::GraphBuilder::new(0);
    for n in names {
        if !graph(model).output.iter().any(|o| &o.name == n) {
            b.output(n);
        }
    }
    let mut model = model.clone();
    if let Some(g) = model.graph.as_mut() {
        g.output.extend(b.graph.output);
    }
    model
}

/// Folds every BatchNormalization whose input is a Conv's output read by nothing else
/// into that conv's weights and bias (all constant).
pub fn fold_batch_norms(model: &ModelProto) -> ModelProto {
    let mut model = model.clone();
    let Some(g) = model.graph.as_mut() else { return model };
    let readers = |g: &GraphProto, name: &str| g.node.iter().filter(|n| n.input.iter().any(|i| i == name)).count();
    let mut i = 0;
    while i < g.node.len() {
        let bn = g.node[i].clone();
        let conv_at = g.node.iter().position(|n| n.op_type == "Conv" && n.output.first() == bn.input.first());
        let foldable = bn.op_type == "BatchNormalization" && readers(g, &bn.input[0]) == 1;
        if let Some(c) = conv_at.filter(|_| foldable)
            && fold_one(g, c, &bn)
        {
            g.node.remove(i);
            continue;
        }
        i += 1;
    }
    retain_read_initializers(g);
    model
}

/// Drops the initializers no node reads (the float weights a rewrite replaced).
fn retain_read_initializers(g: &mut GraphProto) {
    let read: std::collections::HashSet<String> = g.node.iter().flat_map(|n| n.input.iter().cloned()).collect();
    g.initializer.retain(|t| read.contains(&t.name));
}

fn fold_one(g: &mut GraphProto, conv_at: usize, bn: &NodeProto) -> bool {
    let init = |g: &GraphProto, name: &str| g.initializer.iter().find(|t| t.name == name).and_then(floats);
    let params: Option<Vec<Vec<f32>>> = bn.input[1..].iter().map(|n| init(g, n)).collect();
    let conv = g.node[conv_at].clone();
    let (Some(params), Some(w)) = (params, conv.input.get(1).and_then(|n| init(g, n))) else { return false };
    let [gamma, beta, mean, var] = &params[..] else { return false };
    let eps = bn.attribute.iter().find(|a| a.name == "epsilon").map_or(1e-5, |a| a.f);
    let c = gamma.len();
    let bias = match conv.input.get(2) {
        Some(n) if !n.is_empty() => init(g, n).unwrap_or_else(|| vec![0.0; c]),
        _ => vec![0.0; c],
    };
    let Some(dims) = g.initializer.iter().find(|t| t.name == conv.input[1]).map(|t| t.dims.clone()) else {
        return false;
    };
    let per = w.len() / c.max(1);
    let scale: Vec<f32> = (0..c).map(|o| gamma[o] / (var[o] + eps).sqrt()).collect();
    let wf: Vec<f32> = w.iter().enumerate().map(|(i, v)| v * scale[i / per]).collect();
    let bf: Vec<f32> = (0..c).map(|o| (bias[o] - mean[o]) * scale[o] + beta[o]).collect();
    let (wn, bn_name) = (format!("{}_folded_w", conv.output[0]), format!("{}_folded_b", conv.output[0]));
    g.initializer.push(tensor_f32(&wn, &dims, &wf));
    g.initializer.push(tensor_f32(&bn_name, &[c as i64], &bf));
    let node = &mut g.node[conv_at];
    node.input = vec![conv.input[0].clone(), wn, bn_name];
    node.output = bn.output.clone();
    true
}

/// One activation's quantization.
#[derive(Clone, Copy, Debug)]
struct Params {
    scale: f32,
    zero_point: i32,
}

/// Writes the QDQ model.
struct Writer<'a> {
    g: GraphProto,
    ranges: &'a Ranges,
    /// Per quantized activation: its quantization and the name of its dequantized value.
    quantized: HashMap<String, (Params, String)>,
    nodes: Vec<NodeProto>,
    /// Float initializers by name.
    floats: HashMap<String, (Vec<i64>, Vec<f32>)>,
}

impl Writer<'_> {
    /// Adds QuantizeLinear → DequantizeLinear after `x` (or, when `x` is a graph output,
    /// renames `x`'s producer so that the DequantizeLinear writes `x`).
    fn quantize(&mut self, x: &str, p: Params) {
        let is_output = self.g.output.iter().any(|o| o.name == x);
        let source = if is_output {
            let renamed = format!("{x}_float");
            for n in &mut self.nodes {
                for o in &mut n.output {
                    if o == x {
                        o.clone_from(&renamed);
                    }
                }
            }
            renamed
        } else {
            x.to_string()
        };
        let (s, z) = (format!("{x}_scale"), format!("{x}_zero_point"));
        self.g.initializer.push(tensor_f32(&s, &[], &[p.scale]));
        self.g.initializer.push(tensor_quantized(&z, &[], DataType::Uint8, &[p.zero_point]));
        let (q, dq) = (format!("{x}_quantized"), if is_output { x.to_string() } else { format!("{x}_dequantized") });
        self.nodes.push(node("QuantizeLinear", &[&source, &s, &z], &q, vec![]));
        self.nodes.push(node("DequantizeLinear", &[&q, &s, &z], &dq, vec![]));
        self.quantized.insert(x.to_string(), (p, dq));
    }

    fn calibrated(&self, x: &str) -> Option<Params> {
        self.ranges.get(x).map(|&r| {
            let (scale, zero_point) = activation_params(r);
            Params { scale, zero_point }
        })
    }

    /// A Conv's or Gemm's weight as int8 per output channel, dequantized; returns the
    /// dequantized name and the scales.
    fn weight(&mut self, name: &str) -> Option<(String, Vec<f32>)> {
        let (dims, w) = self.floats.get(name)?.clone();
        let c = *dims.first()? as usize;
        let per = w.len() / c.max(1);
        let scales: Vec<f32> = w
            .chunks(per.max(1))
            .map(|row| {
                let amax = row.iter().fold(0f32, |a, v| a.max(v.abs()));
                if amax > 0.0 { amax / 127.0 } else { 1.0 }
            })
            .collect();
        let q: Vec<i32> = w
            .iter()
            .enumerate()
            .map(|(i, v)| (v / scales[i / per]).round_ties_even().clamp(-127.0, 127.0) as i32)
            .collect();
        let (qn, s, z, dq) = names(name);
        self.g.initializer.push(tensor_quantized(&qn, &dims, DataType::Int8, &q));
        self.g.initializer.push(tensor_f32(&s, &[c as i64], &scales));
        self.g.initializer.push(tensor_quantized(&z, &[c as i64], DataType::Int8, &vec![0; c]));
        self.nodes.push(node("DequantizeLinear", &[&qn, &s, &z], &dq, vec![attr_int("axis", 0)]));
        Some((dq, scales))
    }

    /// A bias as int32 with scale input scale × weight scale, dequantized.
    fn bias(&mut self, name: &str, input: Params, weight_scales: &[f32]) -> Option<String> {
        let (_, b) = self.floats.get(name)?.clone();
        let scales: Vec<f32> = weight_scales.iter().map(|s| s * input.scale).collect();
        let q: Vec<i32> = b.iter().zip(&scales).map(|(v, s)| (v / s).round_ties_even() as i32).collect();
        let (qn, s, z, dq) = names(name);
        let c = b.len() as i64;
        self.g.initializer.push(tensor_quantized(&qn, &[c], DataType::Int32, &q));
        self.g.initializer.push(tensor_f32(&s, &[c], &scales));
        self.g.initializer.push(tensor_quantized(&z, &[c], DataType::Int32, &vec![0; b.len()]));
        self.nodes.push(node("DequantizeLinear", &[&qn, &s, &z], &dq, vec![attr_int("axis", 0)]));
        Some(dq)
    }
}

/// The names of a quantized initializer, its scale, its zero point and its dequantized
/// value.
fn names(name: &str) -> (String, String, String, String) {
    (format!("{name}_quantized"), format!("{name}_scale"), format!("{name}_zero_point"), format!("{name}_dequantized"))
}

fn node(op: &str, inputs: &[&str], output: &str, attribute: Vec<effc_onnx::proto::AttributeProto>) -> NodeProto {
    NodeProto {
        name: format!("{output}_{op}"),
        op_type: op.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        attribute,
        ..Default::default()
    }
}

/// `model` (BatchNorms already folded) in the QDQ spelling, with activation ranges from
/// `ranges` (keyed by tensor name, as [`calibration_outputs`] lists them). A tensor
/// without a range stays float.
pub fn qdq(model: &ModelProto, ranges: &Ranges) -> ModelProto {
    let g = graph(model);
    let floats = g.initializer.iter().filter_map(|t| Some((t.name.clone(), (t.dims.clone(), floats(t)?)))).collect();
    let mut w = Writer {
        g: GraphProto { node: vec![], ..g.clone() },
        ranges,
        quantized: HashMap::new(),
        nodes: vec![],
        floats,
    };
    let readers = |name: &str| g.node.iter().filter(|n| n.input.iter().any(|i| i == name)).collect::<Vec<_>>();
    for input in &g.input {
        if let Some(p) = w.calibrated(&input.name) {
            w.quantize(&input.name, p);
        }
    }
    // Activations that went: their output reads the conv's quantized output.
    let mut removed: HashMap<String, String> = HashMap::new();
    for n in &g.node {
        let mut n = n.clone();
        for i in &mut n.input {
            if let Some(r) = removed.get(i) {
                i.clone_from(r);
            }
        }
        if removed.contains_key(&n.output[0]) {
            // A removed activation: the conv's quantized output already stands for it.
            continue;
        }
        let op = n.op_type.clone();
        let x = n.input.first().cloned().unwrap_or_default();
        let input_params = w.quantized.get(&x).map(|(p, _)| *p);
        // Activations read their dequantized values.
        for i in &mut n.input {
            if let Some((_, dq)) = w.quantized.get(i) {
                i.clone_from(dq);
            }
        }
        // Per output channel needs the weight's first axis to be the output (Gemm's transB).
        let weight_rows_are_outputs = op == "Conv" || n.attribute.iter().any(|a| a.name == "transB" && a.i == 1);
        if matches!(op.as_str(), "Conv" | "Gemm")
            && weight_rows_are_outputs
            && let Some(p) = input_params
            && let Some((wq, scales)) = n.input.get(1).cloned().and_then(|name| w.weight(&name))
        {
            n.input[1] = wq;
            if let Some(b) = n.input.get(2).cloned().filter(|b| !b.is_empty())
                && let Some(bq) = w.bias(&b, p, &scales)
            {
                n.input[2] = bq;
            }
        }
        let out = n.output[0].clone();
        w.nodes.push(n);
        if COMPUTE.contains(&op.as_str()) {
            // A conv's sole reader that is a removable activation sets its range and goes.
            let after = readers(&out);
            let range_of = match after.as_slice() {
                [a] if op == "Conv" && REMOVABLE.contains(&a.op_type.as_str()) && input_params.is_some() => {
                    removed.insert(a.output[0].clone(), out.clone());
                    a.output[0].clone()
                }
                _ => out.clone(),
            };
            if let Some(p) = w.calibrated(&range_of) {
                w.quantize(&out, p);
            }
        } else if LAYOUT.contains(&op.as_str())
            && let Some(p) = input_params
        {
            w.quantize(&out, p);
        }
    }
    // Graph outputs that named a removed activation now name the conv's dequantized output.
    for o in &mut w.g.output {
        if let Some(r) = removed.get(&o.name) {
            o.name = w.quantized.get(r).map_or_else(|| r.clone(), |(_, dq)| dq.clone());
        }
    }
    let mut model = model.clone();
    w.g.node = w.nodes;
    // The float weights now quantized are read by nothing.
    retain_read_initializers(&mut w.g);
    model.graph = Some(w.g);
    model
}
