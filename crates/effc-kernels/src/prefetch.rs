//! Software prefetch of weights a later kernel reads, issued by an earlier compute-bound
//! kernel a few lines at a time, so that the later one finds them in L2 instead of waiting
//! on memory: the squeeze-excite gate's FC weights, read by a serial matrix-vector
//! product that otherwise stalls on every line. Also a kernel's own next block of
//! scattered weights ([`block`]).

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

    /// Requests the next share of lines.
    #[inline]
    pub fn step(&mut self) {
        for _ in 0..self.per_step {
            if self.next >= self.end {
                return;
            }
            into_l2(self.next as *const u8);
            self.next += LINE;
        }
    }
}

/// Requests the lines of `bytes` from `start` into L1, for a kernel's own next loads.
#[inline]
pub fn block(start: *const u8, bytes: usize) {
    let first = start as usize & !(LINE - 1);
    for at in (first..start as usize + bytes).step_by(LINE) {
        into_l1(at as *const u8);
    }
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn into_l1(p: *const u8) {
    use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
    // SAFETY: a prefetch is a hint: it neither faults nor changes memory, whatever the
    // address (SSE, which every x86-64 CPU has).
    unsafe { _mm_prefetch::<_MM_HINT_T0>(p as *const i8) }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn into_l1(_: *const u8) {}

#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) fn into_l2(p: *const u8) {
    use std::arch::x86_64::{_MM_HINT_T1, _mm_prefetch};
    // SAFETY: a prefetch is a hint: it neither faults nor changes memory, whatever the
    // address (SSE, which every x86-64 CPU has).
    unsafe { _mm_prefetch::<_MM_HINT_T1>(p as *const i8) }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
pub(crate) fn into_l2(_: *const u8) {}

#[cfg(test)]
mod tests {
    use super::*;

    /// `steps` steps request every line of the range, none past it, and no step more
    /// than its even share (rounded up).
    #[test]
    fn steps_cover_the_range_exactly() {
        for (bytes, steps) in [(0, 3), (64, 1), (1000, 7), (442_368, 18), (100, 200), (640, 10), (5, 0)] {
            let mut s = Spread::new(std::ptr::null::<u8>().wrapping_add(4096), bytes, steps);
            let (start, end) = (s.next, s.end);
            let share = bytes.div_ceil(LINE).div_ceil(steps.max(1));
            for i in 1..=steps.max(1) {
                s.step();
                assert!(s.next - start <= i * share * LINE, "{bytes} bytes, step {i} of {steps}");
            }
            assert!(s.next >= end && s.next < end + LINE, "{bytes} bytes in {steps} steps: stopped at {}", s.next);
        }
    }
}
