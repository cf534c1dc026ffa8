//! Opening the files a user or a model names. Only regular files are read: a FIFO would
//! block the open or the read forever and `/dev/zero` never ends, so the file is opened
//! without blocking and its type checked on the open handle (no window for a swap between
//! a check and the open), and its length is known before anything is allocated from it.

use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use effc_ir::{Error, ErrorKind, Result};

/// Opens `path` for reading if it is a regular file; returns the file and its length.
pub fn open_regular(path: &Path) -> Result<(File, u64)> {
    let io = |source| Error::new(ErrorKind::Io { path: path.to_path_buf(), source });
    // O_NONBLOCK: opening a FIFO returns at once instead of waiting for a writer; for a
    // regular file the flag changes nothing.
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(Error::invalid(format!("{} is not a regular file", path.display())));
    }
    Ok((file, meta.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifos_and_devices_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        for path in [fifo.as_path(), Path::new("/dev/zero"), dir.path()] {
            let e = open_regular(path).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains("is not a regular file") || e.contains("Is a directory"), "{}: {e}", path.display());
        }
        let file = dir.path().join("f");
        std::fs::write(&file, b"abc").unwrap();
        assert_eq!(open_regular(&file).unwrap().1, 3);
    }
}
