//! The single-core FMA peak of an instruction set, measured with a tiny loop of
//! independent accumulators, so benchmarks can report throughput as a share of what this
//! core can do at that vector width. The loop is written once over [`Simd`] and compiled
//! per row of the kernel table, like the kernels.

use std::time::Instant;

use crate::Isa;
use crate::simd::Simd;

/// Independent accumulator chains: enough to cover FMA latency × throughput.
const CHAINS: usize = 12;

/// `PeakFn(iters)`: `iters` rounds of [`CHAINS`] independent multiply-adds at the row's
/// vector width; returns a sum of the results, which the caller sinks.
///
/// # Safety
/// The CPU supports the row's instruction set.
pub type PeakFn = unsafe fn(iters: u64) -> f32;

/// GFLOP/s of back-to-back fused multiply-adds at the widest vectors of `isa` on one core
/// (the best of a few ~5 ms runs), or `None` if the CPU does not support it.
pub fn peak_gflops(isa: Isa) -> Option<f64> {
    let row = isa.kernels()?;
    let iters = 200_000u64;
    let mut best = 0.0f64;
    for _ in 0..5 {
        let t = Instant::now();
        // SAFETY: `kernels` gives only rows this CPU supports.
        let sink = unsafe { (row.peak)(iters) };
        let secs = t.elapsed().as_secs_f64();
        std::hint::black_box(sink);
        best = best.max((iters * CHAINS as u64 * row.lanes as u64 * 2) as f64 / secs / 1e9);
    }
    Some(best)
}

/// The measured loop: each chain `v = v·m + a`, with `m` and `a` opaque to the compiler.
#[inline(always)]
fn fma_chains<S: Simd>(s: S, iters: u64) -> f32 {
    let m = s.splat(std::hint::black_box(0.999_999f32));
    let a = s.splat(std::hint::black_box(1e-7f32));
    let mut acc = [s.splat(1.0); CHAINS];
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = s.fma(*v, m, a);
        }
    }
    let mut lanes = [0.0f32; 64];
    let mut sum = 0.0;
    for v in acc {
        // SAFETY: `lanes` holds more than any instruction set's LANES values.
        unsafe { s.store(lanes.as_mut_ptr(), v) };
        sum += lanes[..S::LANES].iter().sum::<f32>();
    }
    sum
}

/// The peak loop of one instruction set, compiled with its target features.
macro_rules! entry {
    ($name:ident, $simd:ty $(, $arch:literal, $feature:literal)?) => {
        /// # Safety
        /// The CPU supports the instruction set.
        $(#[cfg(target_arch = $arch)] #[target_feature(enable = $feature)])?
        pub(crate) unsafe fn $name(iters: u64) -> f32 {
            // SAFETY: the CPU supports the instruction set (this function's contract).
            fma_chains(unsafe { <$simd>::assume() }, iters)
        }
    };
}

entry!(peak_avx512, crate::simd::avx512::Avx512, "x86_64", "avx512f");
entry!(peak_avx2, crate::simd::avx2::Avx2, "x86_64", "avx2,fma");
entry!(peak_portable, crate::simd::portable::Portable);
