//! External tensor data: files next to the model, referenced by `location`, `offset` and
//! `length`. Paths are confined to the model's folder, and each file is memory-mapped once.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use effc_ir::{Error, ErrorKind, Result};
use memmap2::Mmap;

fn ext_err(msg: String) -> Error {
    Error::new(ErrorKind::ExternalData(msg))
}

pub(crate) struct ExternalData {
    dir: Option<PathBuf>,
    files: RefCell<HashMap<PathBuf, Arc<Mmap>>>,
    /// The model's own bytes are a read-only file mapping (large files), so `raw_data`
    /// pages can be given back once copied (see [`crate::pages`]).
    pub(crate) model_mapped: bool,
}

impl ExternalData {
    pub(crate) fn new(dir: Option<PathBuf>) -> Self {
        ExternalData { dir, files: RefCell::new(HashMap::new()), model_mapped: false }
    }

    /// Resolves `location` inside the model folder, refusing anything that could leave it.
    fn resolve(&self, location: &str) -> Result<PathBuf> {
        let dir = self
            .dir
            .as_ref()
            .ok_or_else(|| ext_err(format!("'{location}' cannot be resolved for a model loaded from memory")))?;
        let rel = Path::new(location);
        if location.is_empty() || rel.is_absolute() {
            return Err(ext_err(format!("location '{location}' must be a relative path")));
        }
        if rel.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir)) {
            return Err(ext_err(format!("location '{location}' leaves the model's folder")));
        }
        let path = dir.join(rel);
        let real = path.canonicalize().map_err(|e| ext_err(format!("cannot open '{}': {e}", path.display())))?;
        let real_dir = dir.canonicalize().map_err(|e| ext_err(format!("cannot open '{}': {e}", dir.display())))?;
        if !real.starts_with(&real_dir) {
            return Err(ext_err(format!("location '{location}' resolves (through a link) outside the model's folder")));
        }
        Ok(real)
    }

    fn map(&self, location: &str) -> Result<Arc<Mmap>> {
        let path = self.resolve(location)?;
        if let Some(m) = self.files.borrow().get(&path) {
            return Ok(m.clone());
        }
        let (file, _) = crate::files::open_regular(&path)?;
        // SAFETY: the mapping is read-only and private to this process. Its contents are only
        // copied out (never referenced after import), and a concurrent truncation of the
        // weight file by another process is outside what effc defends against.
        let mmap =
            unsafe { Mmap::map(&file) }.map_err(|source| Error::new(ErrorKind::Io { path: path.clone(), source }))?;
        let mmap = Arc::new(mmap);
        self.files.borrow_mut().insert(path, mmap.clone());
        Ok(mmap)
    }

    /// Calls `f` with the bytes of `location[offset .. offset+length]`.
    pub(crate) fn with_bytes<T>(
        &self,
        location: &str,
        offset: u64,
        length: Option<u64>,
        f: impl FnOnce(&[u8]) -> Result<T>,
    ) -> Result<T> {
        let mmap = self.map(location)?;
        let size = mmap.len() as u64;
        if offset > size {
            return Err(ext_err(format!("offset {offset} is past the end of '{location}' ({size} bytes)")));
        }
        let length = length.unwrap_or(size - offset);
        let end = offset.checked_add(length).filter(|&e| e <= size).ok_or_else(|| {
            ext_err(format!("offset {offset} + length {length} is past the end of '{location}' ({size} bytes)"))
        })?;
        let bytes = &mmap[offset as usize..end as usize];
        let out = f(bytes);
        // SAFETY: `bytes` lies in `mmap`, a read-only private file mapping that this
        // struct keeps mapped.
        unsafe { crate::pages::release(bytes) };
        out
    }
}
