//! An upper bound on the memory decoding a model takes, read from its protobuf wire
//! format before anything is decoded. A file's size says little about it: an empty node
//! is 2 bytes in the file and a few hundred once decoded, so 20 million of them (40 MB)
//! decoded into ~5 GB before the first check.

use effc_ir::{Error, ErrorKind, Result};

use crate::proto::{AttributeProto, FunctionProto, GraphProto, ModelProto, NodeProto, TensorProto};

/// The messages whose fields the bound tells apart; every other message (value infos,
/// types, shapes, opset imports, metadata) is [`Msg::Other`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Msg {
    Model,
    Graph,
    Node,
    Attribute,
    Tensor,
    Function,
    Other,
}

/// What a field's bytes become once decoded.
#[derive(Clone, Copy, Debug)]
enum Field {
    /// A (possibly repeated) sub-message.
    Message(Msg),
    /// A string or byte string: copied.
    Text,
    /// Packed repeated numbers: at most 8 bytes each, one per byte of the field.
    Packed,
    /// `raw_data`: a slice of the file's buffer, not a copy.
    Shared,
}

impl Msg {
    /// Bytes of the decoded struct itself (an upper bound for [`Msg::Other`], whose
    /// structs are smaller than a node's).
    fn struct_bytes(self) -> u64 {
        let size = match self {
            Msg::Model => size_of::<ModelProto>(),
            Msg::Graph => size_of::<GraphProto>(),
            Msg::Node => size_of::<NodeProto>(),
            Msg::Attribute => size_of::<AttributeProto>(),
            Msg::Tensor => size_of::<TensorProto>(),
            Msg::Function => size_of::<FunctionProto>(),
            Msg::Other => 256,
        };
        size as u64
    }

    /// How field `number` of this message decodes (ONNX's schema, `proto/onnx.proto`).
    fn field(self, number: u64) -> Field {
        use Field::{Message, Packed, Shared, Text};
        match (self, number) {
            (Msg::Model, 7) => Message(Msg::Graph),
            (Msg::Model, 25) => Message(Msg::Function),
            (Msg::Model, 8 | 14 | 20) => Message(Msg::Other),
            (Msg::Model, _) => Text,
            (Msg::Graph, 1) => Message(Msg::Node),
            (Msg::Graph, 5) => Message(Msg::Tensor),
            (Msg::Graph, 2 | 10) => Text,
            (Msg::Graph, _) => Message(Msg::Other),
            (Msg::Node, 5) => Message(Msg::Attribute),
            (Msg::Node, 9) => Message(Msg::Other),
            (Msg::Node, _) => Text,
            (Msg::Attribute, 5 | 10) => Message(Msg::Tensor),
            (Msg::Attribute, 6 | 11) => Message(Msg::Graph),
            (Msg::Attribute, 7 | 8) => Packed,
            (Msg::Attribute, 22 | 23 | 14 | 15) => Message(Msg::Other),
            (Msg::Attribute, _) => Text,
            (Msg::Tensor, 9) => Shared,
            (Msg::Tensor, 1 | 4 | 5 | 7 | 10 | 11) => Packed,
            (Msg::Tensor, 3 | 13 | 16) => Message(Msg::Other),
            (Msg::Tensor, _) => Text,
            (Msg::Function, 7) => Message(Msg::Node),
            (Msg::Function, 11) => Message(Msg::Attribute),
            (Msg::Function, 9 | 12 | 13 | 14) => Message(Msg::Other),
            (Msg::Function, _) => Text,
            // Value infos, types, shapes, dims: nested messages and short strings. A
            // string that does not parse as a message is counted as text.
            (Msg::Other, _) => Message(Msg::Other),
        }
    }
}

/// Repeated elements live in vectors that may have grown to twice their length.
const GROWTH: u64 = 2;

/// Nesting deeper than this is refused (prost's own limit is 100).
const MAX_DEPTH: usize = 64;

/// The decoding bound of a model file and the nodes it holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecodeCost {
    pub bytes: u64,
    pub nodes: u64,
}

/// Reads the bound for `buf`, a serialized `ModelProto`.
pub fn decode_cost(buf: &[u8]) -> Result<DecodeCost> {
    let mut cost = DecodeCost { bytes: Msg::Model.struct_bytes(), nodes: 0 };
    walk(buf, Msg::Model, 0, &mut cost).map_err(|why| Error::new(ErrorKind::Decode(why.into())))?;
    Ok(cost)
}

/// Adds the cost of the fields of `msg` in `buf` to `cost`; `Err` if `buf` is not a
/// well-formed message.
fn walk(mut buf: &[u8], msg: Msg, depth: usize, cost: &mut DecodeCost) -> std::result::Result<(), &'static str> {
    if depth > MAX_DEPTH {
        return Err("messages nested too deeply");
    }
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        let (number, wire) = (key >> 3, key & 7);
        match wire {
            // A varint, 8 or 4 bytes: at most 8 bytes more in a vector of numbers.
            0 => {
                varint(&mut buf)?;
                cost.bytes += 8 * GROWTH;
            }
            1 | 5 => {
                let n = if wire == 1 { 8 } else { 4 };
                buf = buf.get(n..).ok_or("a truncated fixed-width field")?;
                cost.bytes += 8 * GROWTH;
            }
            2 => {
                let len = usize::try_from(varint(&mut buf)?).map_err(|_| "a field length past the address space")?;
                let (field, rest) = (buf.get(..len).ok_or("a truncated field")?, buf.get(len..).unwrap_or_default());
                buf = rest;
                let bytes = field.len() as u64;
                match msg.field(number) {
                    Field::Message(sub) => {
                        let mut inner = DecodeCost { bytes: sub.struct_bytes() * GROWTH, nodes: 0 };
                        match walk(field, sub, depth + 1, &mut inner) {
                            Ok(()) => {
                                cost.bytes += inner.bytes;
                                cost.nodes += inner.nodes + u64::from(sub == Msg::Node);
                            }
                            Err(_) if sub == Msg::Other => cost.bytes += (bytes + 24) * GROWTH,
                            Err(why) => return Err(why),
                        }
                    }
                    Field::Text => cost.bytes += (bytes + 24) * GROWTH,
                    Field::Packed => cost.bytes += bytes * 8 * GROWTH,
                    Field::Shared => cost.bytes += 32,
                }
            }
            _ => return Err("a field of an unknown wire type"),
        }
    }
    Ok(())
}

/// Reads a base-128 varint from the front of `buf`.
fn varint(buf: &mut &[u8]) -> std::result::Result<u64, &'static str> {
    let mut value = 0u64;
    for i in 0..10 {
        let (&byte, rest) = buf.split_first().ok_or("a truncated varint")?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("a varint longer than 10 bytes")
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    #[test]
    fn empty_nodes_cost_their_decoded_size_not_their_file_size() {
        let graph = GraphProto { node: vec![NodeProto::default(); 1000], ..Default::default() };
        let model = ModelProto { graph: Some(graph), ..Default::default() };
        let bytes = model.encode_to_vec();
        let cost = decode_cost(&bytes).unwrap();
        assert_eq!(cost.nodes, 1000);
        assert!(bytes.len() < 3000, "{} bytes", bytes.len());
        assert!(cost.bytes >= 1000 * size_of::<NodeProto>() as u64, "{cost:?}");
    }

    #[test]
    fn raw_data_is_shared_and_packed_numbers_widen() {
        let t = TensorProto { raw_data: vec![0u8; 1 << 20].into(), ..Default::default() };
        let small = TensorProto { int64_data: vec![0; 1000], ..Default::default() };
        let graph = GraphProto { initializer: vec![t, small], ..Default::default() };
        let bytes = ModelProto { graph: Some(graph), ..Default::default() }.encode_to_vec();
        let cost = decode_cost(&bytes).unwrap();
        // The megabyte of raw data is a slice of the file; the 1000 one-byte varints
        // become 8 bytes each.
        assert!(cost.bytes < 64 << 10, "{cost:?}");
        assert!(cost.bytes >= 8000, "{cost:?}");
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert!(decode_cost(&[0x3a, 0x05, 0x0a]).is_err());
        assert!(decode_cost(&[0xff; 11]).is_err());
    }
}
