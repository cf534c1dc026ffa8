//! Typed access to a node's attributes, with errors that name the attribute.

use std::collections::HashMap;

use effc_ir::{Error, Result, Tensor};

use crate::proto::attribute_proto::AttributeType;
use crate::proto::{AttributeProto, NodeProto};

pub(crate) struct Attrs<'a> {
    map: HashMap<&'a str, &'a AttributeProto>,
}

/// The attribute's declared type, or the one implied by which field is set (old exporters
/// leave `type` unset).
fn kind(a: &AttributeProto) -> AttributeType {
    match AttributeType::try_from(a.r#type) {
        Ok(t) if t != AttributeType::Undefined => t,
        _ if !a.ints.is_empty() => AttributeType::Ints,
        _ if !a.floats.is_empty() => AttributeType::Floats,
        _ if !a.strings.is_empty() => AttributeType::Strings,
        _ if a.t.is_some() => AttributeType::Tensor,
        _ if !a.s.is_empty() => AttributeType::String,
        _ if a.f != 0.0 => AttributeType::Float,
        _ => AttributeType::Int,
    }
}

impl<'a> Attrs<'a> {
    pub(crate) fn new(node: &'a NodeProto) -> Self {
        Attrs { map: node.attribute.iter().map(|a| (a.name.as_str(), a)).collect() }
    }

    fn get(&self, name: &str, want: &[AttributeType]) -> Result<Option<&'a AttributeProto>> {
        match self.map.get(name) {
            None => Ok(None),
            Some(a) if want.contains(&kind(a)) => Ok(Some(a)),
            Some(a) => Err(Error::invalid(format!(
                "attribute '{name}' has type {}, expected {}",
                kind(a).as_str_name(),
                want[0].as_str_name()
            ))),
        }
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    pub(crate) fn int(&self, name: &str) -> Result<Option<i64>> {
        Ok(self.get(name, &[AttributeType::Int])?.map(|a| a.i))
    }

    pub(crate) fn int_or(&self, name: &str, default: i64) -> Result<i64> {
        Ok(self.int(name)?.unwrap_or(default))
    }

    pub(crate) fn float(&self, name: &str) -> Result<Option<f32>> {
        // Some exporters write integral float attributes as ints.
        Ok(self
            .get(name, &[AttributeType::Float, AttributeType::Int])?
            .map(|a| if kind(a) == AttributeType::Int { a.i as f32 } else { a.f }))
    }

    pub(crate) fn float_or(&self, name: &str, default: f32) -> Result<f32> {
        Ok(self.float(name)?.unwrap_or(default))
    }

    pub(crate) fn ints(&self, name: &str) -> Result<Option<Vec<i64>>> {
        Ok(self
            .get(name, &[AttributeType::Ints, AttributeType::Int])?
            .map(|a| if kind(a) == AttributeType::Int { vec![a.i] } else { a.ints.clone() }))
    }

    pub(crate) fn floats(&self, name: &str) -> Result<Option<Vec<f32>>> {
        Ok(self
            .get(name, &[AttributeType::Floats, AttributeType::Float])?
            .map(|a| if kind(a) == AttributeType::Float { vec![a.f] } else { a.floats.clone() }))
    }

    pub(crate) fn string(&self, name: &str) -> Result<Option<String>> {
        Ok(self.get(name, &[AttributeType::String])?.map(|a| String::from_utf8_lossy(&a.s).into_owned()))
    }

    pub(crate) fn tensor(&self, name: &str) -> Result<Option<Tensor>> {
        self.get(name, &[AttributeType::Tensor])?.and_then(|a| a.t.as_ref()).map(crate::tensor_from_proto).transpose()
    }
}

/// Converts non-negative i64 values (strides, kernel sizes, pads) to usize.
pub(crate) fn to_usizes(v: &[i64], what: &str) -> Result<Vec<usize>> {
    v.iter()
        .map(|&x| usize::try_from(x).map_err(|_| Error::invalid(format!("{what} must be non-negative, got {v:?}"))))
        .collect()
}

/// Resolves a possibly negative axis against `rank`.
pub(crate) fn axis(a: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    let v = if a < 0 { a + r } else { a };
    if v < 0 || v >= r {
        return Err(Error::invalid(format!("axis {a} is out of range for rank {rank}")));
    }
    Ok(v as usize)
}
