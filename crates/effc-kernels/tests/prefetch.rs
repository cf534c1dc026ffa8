//! Spreading a prefetch over a kernel's steps.

use effc_kernels::prefetch::Spread;
use effc_kernels::simd::portable::Portable;

/// Bytes per cache line.
const LINE: usize = 64;

/// `steps` steps request every line of the range, none past it, and no step more than its
/// even share (rounded up).
#[test]
fn steps_cover_the_range_exactly() {
    for (bytes, steps) in [(0, 3), (64, 1), (1000, 7), (442_368, 18), (100, 200), (640, 10), (5, 0)] {
        let portable = Portable::new();
        let start = 4096;
        let mut s = Spread::new(std::ptr::null::<u8>().wrapping_add(start), bytes, steps);
        let end = start + bytes;
        let share = bytes.div_ceil(LINE).div_ceil(steps.max(1));
        for i in 1..=steps.max(1) {
            s.step(portable);
            assert!(s.next_line() - start <= i * share * LINE, "{bytes} bytes, step {i} of {steps}");
        }
        let at = s.next_line();
        assert!(at >= end && at < end + LINE, "{bytes} bytes in {steps} steps: stopped at {at}");
    }
}
