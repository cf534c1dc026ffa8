//! Giving back the pages of a memory-mapped model once its tensors are copied out. The
//! mapping stays (the decoded protobuf still points into it), but pages it no longer needs
//! leave this process's resident memory, so importing does not hold the file and the
//! imported weights at once.

/// Drops the whole pages inside `bytes` from this process's resident memory.
///
/// # Safety
/// `bytes` lies inside a read-only, private mapping of a file that stays mapped. For such
/// pages `MADV_DONTNEED` changes no contents: the next read maps them in again from the
/// file.
pub(crate) unsafe fn release(bytes: &[u8]) {
    // SAFETY: sysconf has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096).max(1);
    let start = bytes.as_ptr() as usize;
    let lo = start.next_multiple_of(page);
    let hi = (start + bytes.len()) / page * page;
    if hi > lo {
        // SAFETY: lo..hi is page-aligned and inside `bytes`, so inside the file mapping
        // the caller vouches for. A failure only leaves the pages resident.
        unsafe { libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_DONTNEED) };
    }
}
