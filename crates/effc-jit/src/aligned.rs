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

    /// Copies `bytes` to `offset` through a shared reference.
    ///
    /// # Safety
    /// `offset..offset + bytes.len()` lies in the buffer, and nothing reads or writes that
    /// range meanwhile.
    unsafe fn write_at(&self, offset: usize, bytes: &[u8]) {
        debug_assert!(offset + bytes.len() <= self.len);
        // SAFETY: in bounds and unshared, as the caller promises.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.add(offset), bytes.len()) };
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
/// comparison), so no packing rule has to be described as a key. They are bump-allocated in
/// 4 MiB huge-page chunks as a `ConstPool`'s are (one mapping per tensor ran B0 3% slower,
/// from TLB misses), and a chunk lives as long as some model uses a tensor in it.
#[derive(Debug, Default)]
pub struct WeightStore {
    inner: Mutex<StoreInner>,
}

#[derive(Debug, Default)]
struct StoreInner {
    entries: HashMap<ContentKey, Vec<Held>>,
    /// Every chunk handed out, with the bytes used in it.
    chunks: Vec<(Weak<AlignedBuf>, usize)>,
}

/// Where a packed tensor lies: its chunk and its offset in it.
#[derive(Debug)]
struct Held {
    chunk: Weak<AlignedBuf>,
    offset: usize,
}

/// A packed tensor's content hash and length.
type ContentKey = (u64, usize);

impl WeightStore {
    const CHUNK: usize = 4 << 20;

    /// The chunk holding bytes equal to `packed`, and their address: one already held, or a
    /// new copy.
    fn intern(&self, packed: &[u8]) -> (Arc<AlignedBuf>, *const u8) {
        let len = packed.len();
        let key = (content_hash(packed), len);
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let same = inner.entries.entry(key).or_default();
        same.retain(|h| h.chunk.strong_count() > 0);
        for held in same.iter() {
            if let Some(chunk) = held.chunk.upgrade()
                && chunk.bytes(held.offset + len).get(held.offset..) == Some(packed)
            {
                let at = chunk.as_ptr().wrapping_add(held.offset);
                return (chunk, at);
            }
        }
        inner.chunks.retain(|(c, _)| c.strong_count() > 0);
        let (chunk, offset) = if len > Self::CHUNK / 2 {
            // Large: a buffer of its own, kept before the chunk being filled (the last).
            let mut buf = AlignedBuf::zeroed(len);
            buf.as_mut_slice().copy_from_slice(packed);
            let chunk = Arc::new(buf);
            inner.chunks.insert(0, (Arc::downgrade(&chunk), len));
            (chunk, 0)
        } else {
            let filling = inner.chunks.last_mut().and_then(|(c, used)| {
                let start = used.next_multiple_of(ALIGN);
                let chunk = c.upgrade().filter(|c| c.len >= Self::CHUNK && start + len <= c.len)?;
                *used = start + len;
                Some((chunk, start))
            });
            match filling {
                Some((chunk, start)) => {
                    // SAFETY: `start..start + len` lies in the chunk (checked above) past
                    // every byte handed out before (`used`), so no model reads it yet, and
                    // the lock keeps other writers out.
                    unsafe { chunk.write_at(start, packed) };
                    (chunk, start)
                }
                None => {
                    let mut buf = AlignedBuf::zeroed(Self::CHUNK);
                    buf.as_mut_slice()[..len].copy_from_slice(packed);
                    let chunk = Arc::new(buf);
                    inner.chunks.push((Arc::downgrade(&chunk), len));
                    (chunk, 0)
                }
            }
        };
        let inner = &mut *inner;
        inner.entries.entry(key).or_default().push(Held { chunk: Arc::downgrade(&chunk), offset });
        let at = chunk.as_ptr().wrapping_add(offset);
        (chunk, at)
    }

    /// Bytes of packed tensors held, each counted once however many models use it.
    pub fn bytes(&self) -> usize {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.chunks.iter().filter(|(c, _)| c.strong_count() > 0).map(|(_, used)| used).sum()
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
    /// Per buffer, the bytes handed out from its start (an object file holds those only).
    used: Vec<usize>,
    /// Addresses of the 8-byte slots of constants that hold the address of another
    /// constant (kernel parameters and tables of them): an object file relocates them.
    pointer_slots: Vec<usize>,
    /// The chunk being filled (an index into `buffers`; its bytes used are in `used`).
    current: Option<usize>,
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
                let mut packed = AlignedBuf::zeroed(len);
                fill(packed.as_mut_slice());
                let (chunk, at) = store.intern(packed.bytes(len));
                self.shared_bytes += len;
                if !self.shared.last().is_some_and(|c| Arc::ptr_eq(c, &chunk)) {
                    self.shared.push(chunk);
                }
                at
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
            self.used.push(len);
            return self.buffers.last_mut().expect("just pushed").as_mut_slice();
        }
        let start_in = |chunk: usize| self.used[chunk].next_multiple_of(ALIGN);
        let (chunk, start) = match self.current {
            Some(chunk) if start_in(chunk) + len <= self.buffers[chunk].len => (chunk, start_in(chunk)),
            _ => {
                let size = self.bytes.next_power_of_two().clamp(Self::FIRST_CHUNK, Self::CHUNK).max(len);
                self.buffers.push(AlignedBuf::zeroed(size));
                self.used.push(0);
                (self.buffers.len() - 1, 0)
            }
        };
        self.current = Some(chunk);
        self.used[chunk] = start + len;
        &mut self.buffers[chunk].as_mut_slice()[start..start + len]
    }

    /// Bytes of constants this model uses, its own and shared ones.
    pub fn bytes(&self) -> usize {
        self.bytes + self.shared_bytes
    }

    /// Notes that the 8 bytes at `slot` (in a constant) hold the address of a constant.
    pub fn mark_pointer(&mut self, slot: usize) {
        self.pointer_slots.push(slot);
    }

    /// The pointer slots in buffer `chunk`: (offset in it, the address it holds).
    pub fn pointers_in(&self, chunk: usize) -> Vec<(usize, usize)> {
        let start = self.buffers[chunk].as_ptr() as usize;
        let bytes = self.chunk(chunk);
        let mut slots: Vec<(usize, usize)> = self
            .pointer_slots
            .iter()
            .filter(|&&a| a >= start && a + 8 <= start + bytes.len())
            .map(|&a| {
                let at = a - start;
                (at, usize::from_ne_bytes(bytes[at..at + 8].try_into().expect("8 bytes")))
            })
            .collect();
        slots.sort_unstable();
        slots.dedup();
        slots
    }

    /// The pool's own buffer holding `addr`, and `addr`'s offset in it.
    pub fn locate(&self, addr: usize) -> Option<(usize, usize)> {
        self.buffers.iter().zip(&self.used).enumerate().find_map(|(i, (b, &used))| {
            let start = b.as_ptr() as usize;
            (addr >= start && addr < start + used.max(1)).then(|| (i, addr - start))
        })
    }

    /// The bytes handed out of each of the pool's own buffers (index as in [`locate`](Self::locate)).
    pub fn chunk(&self, i: usize) -> &[u8] {
        self.buffers[i].bytes(self.used[i])
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
        assert_eq!(store.bytes(), 3 * big + 8, "one chunk holds the three");
        assert_eq!((a.bytes(), b.bytes()), (2 * big, 2 * big + 8 + 64));
        drop(a);
        assert_eq!(store.bytes(), 3 * big + 8, "b still uses the chunk");
        // SAFETY: b is alive and its constant holds `big` bytes.
        assert!(unsafe { std::slice::from_raw_parts(b1, big) }.iter().all(|&x| x == 1));
        // A tensor over half a chunk gets a buffer of its own, and the chunk goes on filling.
        let mut c = ConstPool::with_store(Some(store.clone()));
        let (large, after) = (c.put(3 << 20, fill(3)), c.put(big, fill(4)));
        assert_eq!(after as usize, b1 as usize + 3 * big + 64, "the next aligned offset in b's chunk");
        assert_ne!(large, after);
        assert_eq!(store.bytes(), 4 * big + 64 + (3 << 20));
        drop((b, c));
        assert_eq!(store.bytes(), 0);
    }
}
