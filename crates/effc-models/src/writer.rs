//! Builds ONNX models in code through effc's own prost types: used by tests to cover
//! exporter quirks without shipping model files, and by the model-family writer.

use std::path::Path;

use bytes::Bytes;
use prost::Message;

use effc_onnx::proto::attribute_proto::AttributeType;
use effc_onnx::proto::tensor_proto::{DataLocation, DataType};
use effc_onnx::proto::tensor_shape_proto::{Dimension, dimension};
use effc_onnx::proto::type_proto::{self, Tensor as TensorType};
use effc_onnx::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};

/// A dim of a graph input: fixed, or symbolic (named).
#[derive(Clone, Debug)]
pub enum Dim {
    Fixed(i64),
    Symbolic(String),
}

impl From<i64> for Dim {
    fn from(v: i64) -> Self {
        Dim::Fixed(v)
    }
}

impl From<&str> for Dim {
    fn from(v: &str) -> Self {
        Dim::Symbolic(v.to_string())
    }
}

pub fn attr_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: AttributeType::Int as i32, i: v, ..Default::default() }
}

pub fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: AttributeType::Ints as i32, ints: v.to_vec(), ..Default::default() }
}

pub fn attr_float(name: &str, v: f32) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: AttributeType::Float as i32, f: v, ..Default::default() }
}

pub fn attr_floats(name: &str, v: &[f32]) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: AttributeType::Floats as i32, floats: v.to_vec(), ..Default::default() }
}

pub fn attr_string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::String as i32,
        s: Bytes::copy_from_slice(v.as_bytes()),
        ..Default::default()
    }
}

pub fn attr_tensor(name: &str, t: TensorProto) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: AttributeType::Tensor as i32, t: Some(t), ..Default::default() }
}

/// An f32 tensor stored as little-endian `raw_data`.
pub fn tensor_f32(name: &str, dims: &[i64], data: &[f32]) -> TensorProto {
    let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DataType::Float as i32,
        raw_data: raw.into(),
        ..Default::default()
    }
}

/// An i64 tensor stored in `int64_data`.
pub fn tensor_i64(name: &str, dims: &[i64], data: &[i64]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DataType::Int64 as i32,
        int64_data: data.to_vec(),
        ..Default::default()
    }
}

/// A uint8, int8 or int32 tensor (quantized weights, zero points and biases) stored as
/// little-endian `raw_data`, as onnxruntime's quantizer writes them; `data` must fit the
/// type.
pub fn tensor_quantized(name: &str, dims: &[i64], data_type: DataType, data: &[i32]) -> TensorProto {
    let raw: Vec<u8> = match data_type {
        DataType::Uint8 => data.iter().map(|&v| v as u8).collect(),
        DataType::Int8 => data.iter().map(|&v| v as i8 as u8).collect(),
        _ => data.iter().flat_map(|v| v.to_le_bytes()).collect(),
    };
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: data_type as i32,
        raw_data: raw.into(),
        ..Default::default()
    }
}

fn value_info(name: &str, elem_type: DataType, dims: Option<&[Dim]>) -> ValueInfoProto {
    let shape = dims.map(|dims| TensorShapeProto {
        dim: dims
            .iter()
            .map(|d| Dimension {
                value: Some(match d {
                    Dim::Fixed(v) => dimension::Value::DimValue(*v),
                    Dim::Symbolic(s) => dimension::Value::DimParam(s.clone()),
                }),
                ..Default::default()
            })
            .collect(),
    });
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(TensorType { elem_type: elem_type as i32, shape })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Accumulates nodes, weights, inputs and outputs of one graph.
#[derive(Clone, Debug)]
pub struct GraphBuilder {
    pub graph: GraphProto,
    pub opset: i64,
    next_id: usize,
}

impl GraphBuilder {
    pub fn new(opset: i64) -> Self {
        GraphBuilder { graph: GraphProto { name: "effc".into(), ..Default::default() }, opset, next_id: 0 }
    }

    /// A fresh value name with the given prefix.
    pub fn fresh(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}_{}", self.next_id)
    }

    pub fn input(&mut self, name: &str, elem_type: DataType, dims: &[Dim]) -> String {
        self.graph.input.push(value_info(name, elem_type, Some(dims)));
        name.to_string()
    }

    pub fn input_f32(&mut self, name: &str, dims: &[i64]) -> String {
        let dims: Vec<Dim> = dims.iter().map(|&d| Dim::Fixed(d)).collect();
        self.input(name, DataType::Float, &dims)
    }

    /// Adds a weight; returns its name.
    pub fn weight(&mut self, t: TensorProto) -> String {
        let name = t.name.clone();
        self.graph.initializer.push(t);
        name
    }

    pub fn weight_f32(&mut self, prefix: &str, dims: &[i64], data: &[f32]) -> String {
        let name = self.fresh(prefix);
        self.weight(tensor_f32(&name, dims, data))
    }

    pub fn weight_i64(&mut self, prefix: &str, data: &[i64]) -> String {
        let name = self.fresh(prefix);
        self.weight(tensor_i64(&name, &[data.len() as i64], data))
    }

    /// x → QuantizeLinear → DequantizeLinear with one scale and zero point of `data_type`
    /// (uint8 or int8): the pair onnxruntime's `quantize_static` puts on activations.
    pub fn quantize_dequantize(&mut self, x: &str, scale: f32, zero_point: i32, data_type: DataType) -> String {
        let s = self.weight_f32("scale", &[], &[scale]);
        let z = self.fresh("zero_point");
        let z = self.weight(tensor_quantized(&z, &[], data_type, &[zero_point]));
        let q = self.node("QuantizeLinear", &[x, &s, &z], vec![]);
        self.node("DequantizeLinear", &[&q, &s, &z], vec![])
    }

    /// Adds a node with `n_out` fresh outputs and returns their names.
    pub fn node_n(&mut self, op_type: &str, inputs: &[&str], attrs: Vec<AttributeProto>, n_out: usize) -> Vec<String> {
        let name = self.fresh(op_type);
        let outputs: Vec<String> = (0..n_out).map(|i| format!("{name}_out{i}")).collect();
        self.graph.node.push(NodeProto {
            name,
            op_type: op_type.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.clone(),
            attribute: attrs,
            ..Default::default()
        });
        outputs
    }

    /// Adds a single-output node and returns the output's name.
    pub fn node(&mut self, op_type: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> String {
        self.node_n(op_type, inputs, attrs, 1).remove(0)
    }

    /// Declares `name` a graph output (f32, shape left to inference).
    pub fn output(&mut self, name: &str) {
        self.graph.output.push(value_info(name, DataType::Float, None));
    }

    pub fn build(self) -> ModelProto {
        ModelProto {
            ir_version: if self.opset >= 21 { 10 } else { 8 },
            producer_name: "effc-writer".into(),
            opset_import: vec![OperatorSetIdProto { domain: String::new(), version: self.opset }],
            graph: Some(self.graph),
            ..Default::default()
        }
    }
}

pub fn encode(model: &ModelProto) -> Vec<u8> {
    model.encode_to_vec()
}

pub fn save(model: &ModelProto, path: &Path) -> std::io::Result<()> {
    std::fs::write(path, model.encode_to_vec())
}

/// Saves `model` with every initializer of at least `min_bytes` moved into `data_file`
/// (next to `path`), as the dynamo exporter does.
pub fn save_with_external_data(
    model: &ModelProto,
    path: &Path,
    data_file: &str,
    min_bytes: usize,
) -> std::io::Result<()> {
    let mut model = model.clone();
    let mut blob: Vec<u8> = Vec::new();
    if let Some(g) = model.graph.as_mut() {
        for t in &mut g.initializer {
            if t.raw_data.len() < min_bytes {
                continue;
            }
            // Align each tensor to 64 bytes, as ONNX's own tools do.
            blob.resize(blob.len().next_multiple_of(64), 0);
            let offset = blob.len();
            blob.extend_from_slice(&t.raw_data);
            let entry = |k: &str, v: String| StringStringEntryProto { key: k.into(), value: v };
            t.external_data = vec![
                entry("location", data_file.to_string()),
                entry("offset", offset.to_string()),
                entry("length", t.raw_data.len().to_string()),
            ];
            t.data_location = DataLocation::External as i32;
            t.raw_data = Bytes::new();
        }
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::write(dir.join(data_file), blob)?;
    save(&model, path)
}
