//! Software prefetch of weights a later kernel reads, issued by an earlier compute-bound
//! kernel a few lines at a time, so that the later one finds them in L2 instead of waiting
//! on memory: the squeeze-excite gate's FC weights, read by a serial matrix-vector
//! product that otherwise stalls on every line. Also a kernel's own next block of
//! scattered weights ([`block`]). The instruction itself is the SIMD layer's
//! ([`Simd::prefetch`]): an architecture without one loses only the hints.

use crate::simd::{Cache, Simd};

/// Bytes per cache line.
const LINE: usize = 64;

/// A range requested a few lines at a time between the steps of a kernel, so the
/// requests overlap its compute instead of stalling it in one burst (a burst of hundreds
/// of misses fills the miss buffers and holds up the kernel's own loads). Prefetches never
/// fault, so any range is safe.
pub struct Spread {
    next: usize,
    end: usize,
    per_step: usize,
}

impl Spread {
    /// `bytes` from `start` over `steps` calls of [`step`](Self::step).
    pub fn new(start: *const u8, bytes: usize, steps: usize) -> Self {
        let next = start as usize;
        let per_step = bytes.div_ceil(LINE).div_ceil(steps.max(1));
        Spread { next, end: next.saturating_add(bytes), per_step }
    }

    /// The address of the next line to request (at or past the range's end once all are).
    pub fn next_line(&self) -> usize {
        self.next
    }

    /// Requests the next share of lines into L2.
    #[inline]
    pub fn step<S: Simd>(&mut self, s: S) {
        for _ in 0..self.per_step {
            if self.next >= self.end {
                return;
            }
            s.prefetch(self.next as *const u8, Cache::L2);
            self.next += LINE;
        }
    }
}

/// Requests the lines of `bytes` from `start` into L1, for a kernel's own next loads.
#[inline]
pub fn block<S: Simd>(s: S, start: *const u8, bytes: usize) {
    let first = start as usize & !(LINE - 1);
    for at in (first..start as usize + bytes).step_by(LINE) {
        s.prefetch(at as *const u8, Cache::L1);
    }
}
