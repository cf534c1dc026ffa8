//! 64-byte aligned, zero-initialised byte buffers for arenas and packed weights, and the
//! pool that packs a model's constants into a few large ones.
//!
//! Buffers of 64 KiB and more are mapped directly (so they return to the system when
//! dropped); from 2 MiB on, 2 MiB-aligned and advised as huge-page candidates: a model's weights then cost a few dozen page faults to pack instead of
//! thousands, and a few TLB entries to stream through at run time.

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

pub const ALIGN: usize = 64;

/// Size from which a buffer is its own mapping, so dropping it returns the memory to the
/// system at once (no heap fragmentation across compile/drop cycles).
const MAPPED: usize = 64 << 10;

/// Size from which a mapping is 2 MiB-aligned and advised for huge pages.
const HUGE: usize = 2 << 20;

pub struct AlignedBuf {
    ptr: *mut u8,
    len: usize,
    /// Set when the buffer is a mapping: (mapping start, mapping length).
    map: Option<(*mut u8, usize)>,
}

// SAFETY: AlignedBuf owns its allocation exclusively, like a Box<[u8]>.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared references only allow reads (`as_ptr`); writes need `&mut self`.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    pub fn zeroed(len: usize) -> Self {
        if len == 0 {
            return AlignedBuf { ptr: std::ptr::null_mut(), len: 0, map: None };
        }
        if len >= MAPPED
            && let Some(b) = Self::mapped(len)
        {
            return b;
        }
        let layout = Layout::from_size_align(len, ALIGN).expect("buffer size fits a Layout");
        // SAFETY: layout has non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        if ptr.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        AlignedBuf { ptr, len, map: None }
    }

    /// An anonymous mapping (zeroed by the kernel); from 2 MiB on, 2 MiB-aligned inside
    /// and advised for huge pages before anything touches it. `None` if the system refuses.
    #[cfg(target_os = "linux")]
    fn mapped(len: usize) -> Option<Self> {
        let huge = len >= HUGE;
        let map_len = if huge { len.checked_add(HUGE)? } else { len };
        // SAFETY: a fresh private anonymous mapping; the result is checked.
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
        if base == libc::MAP_FAILED {
            return None;
        }
        let base = base as *mut u8;
        if !huge {
            // Page-aligned, so 64-byte aligned.
            return Some(AlignedBuf { ptr: base, len, map: Some((base, map_len)) });
        }
        let ptr = base.wrapping_add(base.align_offset(HUGE));
        // SAFETY: `ptr..ptr+len` lies inside the mapping (at most HUGE bytes are skipped).
        // The advice is only a hint; failure leaves ordinary pages.
        unsafe { libc::madvise(ptr as *mut libc::c_void, len, libc::MADV_HUGEPAGE) };
        Some(AlignedBuf { ptr, len, map: Some((base, map_len)) })
    }

    #[cfg(not(target_os = "linux"))]
    fn mapped(_len: usize) -> Option<Self> {
        None
    }

    pub fn as_ptr(&self) -> *const u8 {
        self.ptr
    }

    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr
    }

    /// The first `len` bytes (at most the buffer's length).
    fn bytes(&self, len: usize) -> &[u8] {
        let len = len.min(self.len);
        if len == 0 {
            return &[];
        }
        // SAFETY: ptr is a live allocation of self.len >= len bytes owned by self, only
        // written through `&mut self`.
        unsafe { std::slice::from_raw_parts(self.ptr, len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        if self.len == 0 {
            return &mut [];
        }
        // SAFETY: ptr is a live allocation of len bytes owned by self.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        match self.map {
            #[cfg(target_os = "linux")]
            // SAFETY: unmapping exactly the mapping made in `mapped`.
            Some((base, map_len)) => unsafe {
                libc::munmap(base as *mut libc::c_void, map_len);
            },
            #[cfg(not(target_os = "linux"))]
            Some(_) => {}
            None if self.len > 0 => {
                // SAFETY: allocated in `zeroed` with exactly this layout.
                unsafe { dealloc(self.ptr, Layout::from_size_align_unchecked(self.len, ALIGN)) }
            }
            None => {}
        }
    }
}

/// Packed weights shared by every model compiled with the same store: the specialisations
/// of one ONNX model to different input shapes pack the same weights the same way, and each
/// packed tensor is then held once. Entries are found by content (a hash, then a full
/// comparison), so no packing rule has to be described as a key; they are weak, so a packed
/// tensor lives as long as some model that uses it.
#[derive(Debug, Default)]
pub struct WeightStore {
    entries: Mutex<HashMap<ContentKey, Vec<Weak<AlignedBuf>>>>,
}

/// A packed tensor's content hash and length.
type ContentKey = (u64, usize);

impl WeightStore {
    /// `buf` (`len` meaningful bytes) if no equal packed tensor is held, else that one.
    fn intern(&self, buf: AlignedBuf, len: usize) -> Arc<AlignedBuf> {
        let key = (content_hash(buf.bytes(len)), len);
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let same = entries.entry(key).or_default();
        same.retain(|w| w.strong_count() > 0);
        if let Some(held) = same.iter().filter_map(Weak::upgrade).find(|h| h.bytes(len) == buf.bytes(len)) {
            return held;
        }
        let held = Arc::new(buf);
        same.push(Arc::downgrade(&held));
        held
    }

    /// Bytes of packed tensors held, each counted once however many models use it.
    pub fn bytes(&self) -> usize {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.iter().map(|(&(_, len), held)| len * held.iter().filter(|w| w.strong_count() > 0).count()).sum()
    }
}

/// A fast 64-bit hash of packed bytes (8 at a time): equal hashes are confirmed by a full
/// comparison, so collisions only cost time.
fn content_hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut words = bytes.chunks_exact(8);
    let mut h = bytes.len() as u64;
    for w in &mut words {
        let w = u64::from_le_bytes(w.try_into().expect("chunks of 8"));
        h = (h.rotate_left(5) ^ w).wrapping_mul(K);
    }
    for &b in words.remainder() {
        h = (h.rotate_left(5) ^ b as u64).wrapping_mul(K);
    }
    h
}

/// A model's immutable data (packed weights, kernel parameters), bump-allocated in chunks
/// that double from 64 KiB up to 4 MiB: a small model stays small, and a large one lands in
/// a few huge-page mappings rather than hundreds of small blocks. With a [`WeightStore`],
/// large constants (packed weights) are held there instead, shared with other models.
#[derive(Default)]
pub struct ConstPool {
    buffers: Vec<AlignedBuf>,
    /// The chunk being filled (an index into `buffers`) and the bytes used in it.
    current: Option<(usize, usize)>,
    /// Bytes handed out (what the model's constants occupy).
    bytes: usize,
    store: Option<Arc<WeightStore>>,
    /// Constants held in the store that this model uses, and their bytes.
    shared: Vec<Arc<AlignedBuf>>,
    shared_bytes: usize,
}

impl ConstPool {
    const CHUNK: usize = 4 << 20;
    const FIRST_CHUNK: usize = 64 << 10;
    /// Constants from this size on go to the store: weights, not kernel parameters.
    const SHARED_FROM: usize = 4 << 10;

    pub fn with_store(store: Option<Arc<WeightStore>>) -> Self {
        ConstPool { store, ..Default::default() }
    }

    /// `len` bytes written by `fill` (given them zeroed and 64-byte aligned), at an
    /// address fixed for the pool's lifetime; large ones shared through the store.
    pub fn put(&mut self, len: usize, fill: impl FnOnce(&mut [u8])) -> *const u8 {
        match &self.store {
            Some(store) if len >= Self::SHARED_FROM => {
                let mut buf = AlignedBuf::zeroed(len);
                fill(buf.as_mut_slice());
                let held = store.intern(buf, len);
                let ptr = held.as_ptr();
                self.shared_bytes += len;
                self.shared.push(held);
                ptr
            }
            _ => {
                let buf = self.alloc(len);
                fill(buf);
                buf.as_ptr()
            }
        }
    }

    /// Bytes of constants used from the store (also counted by [`bytes`](Self::bytes)).
    pub fn shared_bytes(&self) -> usize {
        self.shared_bytes
    }

    /// `len` zeroed bytes, 64-byte aligned, at an address fixed for the pool's lifetime.
    pub fn alloc(&mut self, len: usize) -> &mut [u8] {
        self.bytes += len;
        if len > Self::CHUNK / 2 {
            // Large: a buffer of its own.
            self.buffers.push(AlignedBuf::zeroed(len));
            return self.buffers.last_mut().expect("just pushed").as_mut_slice();
        }
        let fits = |chunk: usize, used: usize| used.next_multiple_of(ALIGN) + len <= self.buffers[chunk].len;
        let (chunk, start) = match self.current {
            Some((chunk, used)) if fits(chunk, used) => (chunk, used.next_multiple_of(ALIGN)),
            _ => {
                let size = self.bytes.next_power_of_two().clamp(Self::FIRST_CHUNK, Self::CHUNK).max(len);
                self.buffers.push(AlignedBuf::zeroed(size));
                (self.buffers.len() - 1, 0)
            }
        };
        self.current = Some((chunk, start + len));
        &mut self.buffers[chunk].as_mut_slice()[start..start + len]
    }

    /// Bytes of constants this model uses, its own and shared ones.
    pub fn bytes(&self) -> usize {
        self.bytes + self.shared_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Allocations are aligned, zeroed, disjoint and keep their addresses, whatever the
    /// mix of small and large ones.
    #[test]
    fn pool_allocations_are_aligned_disjoint_and_stable() {
        let mut pool = ConstPool::default();
        let mut spans = Vec::new();
        for (i, len) in [3 << 20, 100, 64, 1, 5 << 20, 2 << 20, 4000, 0, 1 << 20, 1 << 20].into_iter().enumerate() {
            let buf = pool.alloc(len);
            assert!(buf.iter().all(|&b| b == 0));
            assert_eq!(buf.as_ptr() as usize % ALIGN, 0);
            buf.fill(i as u8 + 1);
            spans.push((buf.as_ptr() as usize, len, i as u8 + 1));
        }
        for (k, &(a, len, v)) in spans.iter().enumerate() {
            // SAFETY: the pool is alive and owns every span.
            let bytes = unsafe { std::slice::from_raw_parts(a as *const u8, len) };
            assert!(bytes.iter().all(|&b| b == v), "allocation {k} was overwritten");
        }
        assert_eq!(pool.bytes(), spans.iter().map(|s| s.1).sum::<usize>());
    }

    /// Two pools with one store hold equal large constants once, distinct ones apart, and
    /// the store lets a constant go with the last pool that uses it.
    #[test]
    fn a_store_shares_equal_large_constants_between_pools() {
        let store = Arc::new(WeightStore::default());
        let big = ConstPool::SHARED_FROM;
        let fill = |v: u8| move |b: &mut [u8]| b.fill(v);
        let mut a = ConstPool::with_store(Some(store.clone()));
        let mut b = ConstPool::with_store(Some(store.clone()));
        let (a1, a2) = (a.put(big, fill(1)), a.put(big, fill(2)));
        let (b1, b2, b_small) = (b.put(big, fill(1)), b.put(big + 8, fill(2)), b.put(64, fill(1)));
        assert_eq!(a1, b1, "equal contents share one buffer");
        assert_ne!(a2, b2, "different lengths are different constants");
        assert_ne!(a1, a2);
        assert_ne!(b_small, b1, "small constants stay in their pool");
        assert_eq!(store.bytes(), 3 * big + 8);
        assert_eq!((a.bytes(), b.bytes()), (2 * big, 2 * big + 8 + 64));
        drop(a);
        assert_eq!(store.bytes(), 2 * big + 8, "b still uses the shared one");
        // SAFETY: b is alive and its constant holds `big` bytes.
        assert!(unsafe { std::slice::from_raw_parts(b1, big) }.iter().all(|&x| x == 1));
        drop(b);
        assert_eq!(store.bytes(), 0);
    }
}
