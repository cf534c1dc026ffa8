//! Buffers that end exactly at an inaccessible page, so a kernel reading or writing one
//! element past the end crashes the test instead of passing silently. The bytes before
//! the start hold NaNs, so a read before it shows in the result.

pub struct Guarded {
    base: *mut libc::c_void,
    map_len: usize,
    data: *mut f32,
    len: usize,
}

impl Guarded {
    pub fn new(values: &[f32]) -> Self {
        let page = 4096;
        let bytes = values.len() * 4;
        let data_pages = bytes.div_ceil(page).max(1);
        let map_len = (data_pages + 1) * page;
        // SAFETY: an anonymous private mapping; the result is checked.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED);
        let guard = base as usize + data_pages * page;
        // SAFETY: the last page of our own mapping becomes inaccessible.
        assert_eq!(unsafe { libc::mprotect(guard as *mut libc::c_void, page, libc::PROT_NONE) }, 0);
        let data = (guard - bytes) as *mut f32;
        let before = (data as usize - base as usize) / 4;
        // SAFETY: `base..guard` is the writable part of the mapping; `data` is 4-aligned
        // (the page is, and `bytes` is a multiple of 4).
        unsafe {
            std::slice::from_raw_parts_mut(base as *mut f32, before).fill(f32::NAN);
            std::ptr::copy_nonoverlapping(values.as_ptr(), data, values.len());
        }
        Guarded { base, map_len, data, len: values.len() }
    }

    pub fn ptr(&self) -> *const f32 {
        self.data
    }

    pub fn mut_ptr(&mut self) -> *mut f32 {
        self.data
    }

    pub fn to_vec(&self) -> Vec<f32> {
        // SAFETY: `len` initialised f32s live at `data`.
        unsafe { std::slice::from_raw_parts(self.data, self.len) }.to_vec()
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        // SAFETY: unmapping the mapping created in `new`.
        unsafe { libc::munmap(self.base, self.map_len) };
    }
}

/// The kernel variants this CPU runs, best first. Each variant it cannot run is named
/// once per test binary, with the missing feature, on stderr (written directly, so the
/// test harness's capture does not hide it): a run on an AVX2-only host says that it
/// did not test AVX-512.
pub fn variants() -> Vec<effc_kernels::Isa> {
    use std::io::Write;
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        for isa in effc_kernels::Isa::ALL {
            if let Some(feature) = isa.missing_feature() {
                let line = format!("not tested: the {} kernels (this CPU has no {feature})\n", isa.name());
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
        }
    });
    effc_kernels::Isa::ALL.into_iter().filter(|i| i.is_supported()).collect()
}
