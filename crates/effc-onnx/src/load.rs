use std::path::{Path, PathBuf};

use bytes::Bytes;
use effc_ir::{Error, ErrorKind, Result};
use prost::Message;

use crate::external::ExternalData;
use crate::proto::ModelProto;

/// A decoded ONNX file plus what is needed to resolve its external data.
pub struct OnnxModel {
    pub proto: ModelProto,
    /// The file it came from, for error messages; `None` for in-memory models.
    pub path: Option<PathBuf>,
    pub(crate) external: ExternalData,
}

impl OnnxModel {
    /// The default-domain opset the model imports.
    pub fn opset(&self) -> Result<i64> {
        self.proto
            .opset_import
            .iter()
            .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
            .map(|o| o.version)
            .ok_or_else(|| Error::invalid("the model imports no default-domain (ai.onnx) opset"))
    }

    /// How many nodes of each ONNX op type the file holds.
    pub fn op_histogram(&self) -> std::collections::BTreeMap<String, usize> {
        let mut h = std::collections::BTreeMap::new();
        if let Some(g) = &self.proto.graph {
            for n in &g.node {
                *h.entry(n.op_type.clone()).or_insert(0) += 1;
            }
        }
        h
    }
}

/// The most memory decoding may take unless the caller says otherwise (see
/// [`load_model_within`]).
pub const DEFAULT_DECODE_LIMIT: usize = 4 << 30;

/// Reads and decodes an ONNX file. The file is read once; `raw_data` fields borrow from
/// that buffer instead of being copied.
pub fn load_model(path: impl AsRef<Path>) -> Result<OnnxModel> {
    load_model_within(path, DEFAULT_DECODE_LIMIT)
}

/// [`load_model`], refusing a file whose decoding would take more than `limit` bytes
/// (bounded from its wire format first, see [`crate::wire`]).
pub fn load_model_within(path: impl AsRef<Path>, limit: usize) -> Result<OnnxModel> {
    let path = path.as_ref();
    let io = |source| Error::new(ErrorKind::Io { path: path.to_path_buf(), source });
    let (mut file, len) = crate::files::open_regular(path)?;
    // Large files are mapped rather than copied: decoding slices tensors out of the
    // mapping, and import copies them out before the model (and the mapping) is dropped.
    let mapped = len >= 1 << 20;
    let bytes = if mapped {
        // SAFETY: a read-only private mapping; as for external data, a concurrent
        // truncation of the file by another process is outside what effc defends against.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        Bytes::from_owner(map)
    } else {
        let mut buf = Vec::with_capacity(len as usize);
        std::io::Read::read_to_end(&mut file, &mut buf).map_err(io)?;
        Bytes::from(buf)
    };
    let dir = path.parent().map(|p| if p.as_os_str().is_empty() { Path::new(".") } else { p });
    decode(bytes, dir.map(Path::to_path_buf), limit)
        .map(|mut m| {
            m.path = Some(path.to_path_buf());
            m.external.model_mapped = mapped;
            m
        })
        .map_err(|e| e.in_file(path))
}

/// Decodes an ONNX model held in memory. External data is resolved relative to `dir`, if
/// given; without it, a model that refers to external data is refused.
pub fn load_model_bytes(bytes: impl Into<Bytes>, dir: Option<PathBuf>) -> Result<OnnxModel> {
    load_model_bytes_within(bytes, dir, DEFAULT_DECODE_LIMIT)
}

/// [`load_model_bytes`] with a limit on the memory decoding may take.
pub fn load_model_bytes_within(bytes: impl Into<Bytes>, dir: Option<PathBuf>, limit: usize) -> Result<OnnxModel> {
    decode(bytes.into(), dir, limit)
}

fn decode(bytes: Bytes, dir: Option<PathBuf>, limit: usize) -> Result<OnnxModel> {
    if bytes.is_empty() {
        return Err(Error::new(ErrorKind::Decode("the file is empty".into())));
    }
    let cost = crate::wire::decode_cost(&bytes)?;
    if cost.bytes > limit as u64 {
        return Err(Error::new(ErrorKind::Decode(format!(
            "decoding it would take up to {} MiB ({} nodes), over the memory limit of {} MiB",
            cost.bytes >> 20,
            cost.nodes,
            limit >> 20
        ))));
    }
    let proto = ModelProto::decode(bytes).map_err(|e| Error::new(ErrorKind::Decode(e.to_string())))?;
    if proto.graph.is_none() {
        return Err(Error::new(ErrorKind::Decode("the model has no graph".into())));
    }
    Ok(OnnxModel { proto, path: None, external: ExternalData::new(dir) })
}
