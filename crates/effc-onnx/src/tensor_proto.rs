//! TensorProto → [`Tensor`], from raw bytes, typed fields or external data.

use effc_ir::{DType, Error, Result, Tensor, TensorData};

use crate::external::ExternalData;
use crate::proto::TensorProto;
use crate::proto::tensor_proto::{DataLocation, DataType};

/// The IR dtype an ONNX element type is held in. f16 and bf16 are widened to f32; the
/// wider unsigned and 16-bit integer types to i64.
pub fn dtype_from_onnx(data_type: i32) -> Result<DType> {
    let dt = DataType::try_from(data_type)
        .map_err(|_| Error::unsupported(format!("unknown tensor element type {data_type}")))?;
    Ok(match dt {
        DataType::Float | DataType::Float16 | DataType::Bfloat16 => DType::F32,
        DataType::Double => DType::F64,
        DataType::Int64 | DataType::Int16 | DataType::Uint16 | DataType::Uint32 | DataType::Uint64 => DType::I64,
        DataType::Int32 => DType::I32,
        DataType::Int8 => DType::I8,
        DataType::Uint8 => DType::U8,
        DataType::Bool => DType::Bool,
        other => {
            return Err(Error::unsupported(format!("tensor element type {}", other.as_str_name())));
        }
    })
}

/// Bytes per element as stored on disk.
fn stored_size(dt: DataType) -> usize {
    match dt {
        DataType::Double | DataType::Int64 | DataType::Uint64 => 8,
        DataType::Float | DataType::Int32 | DataType::Uint32 => 4,
        DataType::Float16 | DataType::Bfloat16 | DataType::Int16 | DataType::Uint16 => 2,
        _ => 1,
    }
}

fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let mant = (h & 0x3ff) as u32;
    let bits = match (exp, mant) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal: normalise the mantissa.
            let shift = m.leading_zeros() - 21;
            sign | ((113 - shift) << 23) | ((m << (shift + 1)) & 0x3ff) << 13
        }
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 112) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

/// Decodes little-endian stored elements.
fn from_le_bytes(dt: DataType, bytes: &[u8]) -> Result<TensorData> {
    let size = stored_size(dt);
    if !bytes.len().is_multiple_of(size) {
        return Err(Error::invalid(format!("{} raw bytes is not a whole number of {size}-byte elements", bytes.len())));
    }
    macro_rules! le {
        ($t:ty, $n:literal) => {
            bytes.chunks_exact($n).map(|c| <$t>::from_le_bytes(c.try_into().unwrap()))
        };
    }
    Ok(match dt {
        DataType::Float => TensorData::F32(le!(f32, 4).collect()),
        DataType::Float16 => TensorData::F32(le!(u16, 2).map(f16_to_f32).collect()),
        DataType::Bfloat16 => TensorData::F32(le!(u16, 2).map(|b| f32::from_bits((b as u32) << 16)).collect()),
        DataType::Double => TensorData::F64(le!(f64, 8).collect()),
        DataType::Int64 => TensorData::I64(le!(i64, 8).collect()),
        DataType::Uint64 => TensorData::I64(le!(u64, 8).map(|v| v as i64).collect()),
        DataType::Int32 => TensorData::I32(le!(i32, 4).collect()),
        DataType::Uint32 => TensorData::I64(le!(u32, 4).map(|v| v as i64).collect()),
        DataType::Int16 => TensorData::I64(le!(i16, 2).map(|v| v as i64).collect()),
        DataType::Uint16 => TensorData::I64(le!(u16, 2).map(|v| v as i64).collect()),
        DataType::Int8 => TensorData::I8(bytes.iter().map(|&b| b as i8).collect()),
        DataType::Uint8 => TensorData::U8(bytes.into()),
        DataType::Bool => TensorData::Bool(bytes.iter().map(|&b| b != 0).collect()),
        other => {
            return Err(Error::unsupported(format!("tensor element type {}", other.as_str_name())));
        }
    })
}

/// Decodes the typed repeated fields (`float_data`, `int32_data`, ...).
fn from_typed_fields(dt: DataType, t: &TensorProto) -> Result<TensorData> {
    let i32s = || t.int32_data.iter();
    Ok(match dt {
        DataType::Float => TensorData::F32(t.float_data.as_slice().into()),
        DataType::Double => TensorData::F64(t.double_data.as_slice().into()),
        DataType::Int64 => TensorData::I64(t.int64_data.as_slice().into()),
        DataType::Uint64 | DataType::Uint32 => TensorData::I64(t.uint64_data.iter().map(|&v| v as i64).collect()),
        DataType::Int32 => TensorData::I32(t.int32_data.as_slice().into()),
        DataType::Int16 | DataType::Uint16 => TensorData::I64(i32s().map(|&v| v as i64).collect()),
        DataType::Int8 => TensorData::I8(i32s().map(|&v| v as i8).collect()),
        DataType::Uint8 => TensorData::U8(i32s().map(|&v| v as u8).collect()),
        DataType::Bool => TensorData::Bool(i32s().map(|&v| v != 0).collect()),
        DataType::Float16 => TensorData::F32(i32s().map(|&v| f16_to_f32(v as u16)).collect()),
        DataType::Bfloat16 => TensorData::F32(i32s().map(|&v| f32::from_bits((v as u32 & 0xffff) << 16)).collect()),
        other => {
            return Err(Error::unsupported(format!("tensor element type {}", other.as_str_name())));
        }
    })
}

fn external_data(t: &TensorProto, ext: &ExternalData, dt: DataType) -> Result<TensorData> {
    let mut location = None;
    let (mut offset, mut length) = (0u64, None);
    for kv in &t.external_data {
        let parse = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| Error::invalid(format!("external_data {} '{v}' is not a non-negative integer", kv.key)))
        };
        match kv.key.as_str() {
            "location" => location = Some(kv.value.as_str()),
            "offset" => offset = parse(&kv.value)?,
            "length" => length = Some(parse(&kv.value)?),
            _ => {}
        }
    }
    let location = location.ok_or_else(|| Error::invalid("external tensor has no 'location'"))?;
    ext.with_bytes(location, offset, length, |bytes| from_le_bytes(dt, bytes))
}

/// The bytes the tensor will take once converted, from its dims and type alone (nothing
/// is read), or `None` if they are not valid (conversion then says why).
pub(crate) fn declared_bytes(t: &TensorProto) -> Option<usize> {
    let dtype = dtype_from_onnx(t.data_type).ok()?;
    let dims: Vec<usize> = t.dims.iter().map(|&d| usize::try_from(d).ok()).collect::<Option<_>>()?;
    effc_ir::checked_numel(&dims).ok()?.checked_mul(dtype.size_bytes())
}

/// Converts a TensorProto, checking that the element count agrees with its dims.
pub(crate) fn convert(t: &TensorProto, ext: &ExternalData) -> Result<Tensor> {
    let name = if t.name.is_empty() { "<unnamed>" } else { &t.name };
    convert_inner(t, ext).map_err(|e| e.for_tensor(name))
}

fn convert_inner(t: &TensorProto, ext: &ExternalData) -> Result<Tensor> {
    let dt = DataType::try_from(t.data_type)
        .map_err(|_| Error::unsupported(format!("unknown tensor element type {}", t.data_type)))?;
    let dtype = dtype_from_onnx(t.data_type)?;
    let shape = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| Error::invalid(format!("negative dim {d} in {:?}", t.dims))))
        .collect::<Result<Vec<_>>>()?;
    let numel = effc_ir::checked_numel(&shape)?;
    let data = if t.data_location == DataLocation::External as i32 {
        external_data(t, ext, dt)?
    } else if !t.raw_data.is_empty() {
        let data = from_le_bytes(dt, &t.raw_data)?;
        if ext.model_mapped {
            // SAFETY: with `model_mapped`, raw_data borrows from the model's read-only
            // private file mapping, which the decoded model keeps mapped.
            unsafe { crate::pages::release(&t.raw_data) };
        }
        data
    } else {
        from_typed_fields(dt, t)?
    };
    if data.len() != numel {
        return Err(Error::invalid(format!("{} elements stored but dims {shape:?} need {numel}", data.len())));
    }
    debug_assert_eq!(data.dtype(), dtype);
    Tensor::new(shape, data)
}

/// Converts a TensorProto that has no external data (attributes, in-memory models).
pub fn tensor_from_proto(t: &TensorProto) -> Result<Tensor> {
    convert(t, &ExternalData::new(None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_conversion_matches_known_values() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x0200), 2f32.powi(-15));
        assert!(f16_to_f32(0x7c00).is_infinite());
        assert!(f16_to_f32(0x7e00).is_nan());
    }
}
