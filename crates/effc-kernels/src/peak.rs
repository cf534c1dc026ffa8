//! The single-core FMA peak of an instruction set, measured with a tiny loop of
//! independent accumulators, so benchmarks can report throughput as a share of what this
//! core can do at that vector width.

use std::time::Instant;

use crate::Isa;

/// Independent accumulator chains: enough to cover FMA latency × throughput.
const CHAINS: usize = 12;

/// GFLOP/s of back-to-back fused multiply-adds at the widest vectors of `isa` on one core
/// (the best of a few ~5 ms runs), or `None` if the CPU does not support it.
pub fn peak_gflops(isa: Isa) -> Option<f64> {
    let lanes = isa.kernels()?.lanes as u64;
    let iters = 200_000u64;
    let mut best = 0.0f64;
    for _ in 0..5 {
        let t = Instant::now();
        let sink = run(isa, iters);
        let secs = t.elapsed().as_secs_f64();
        std::hint::black_box(sink);
        best = best.max((iters * CHAINS as u64 * lanes * 2) as f64 / secs / 1e9);
    }
    Some(best)
}

fn run(isa: Isa, iters: u64) -> f32 {
    match isa {
        // SAFETY: support was checked by the caller.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { x86::fma512(iters) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { x86::fma256(iters) },
        _ => portable(iters),
    }
}

/// The portable variant's own 4-lane multiply-adds (its `Simd::fma`), so that its share
/// of peak compares like with like (a loop over plain arrays ran at 7 GFLOP/s on Zen 3,
/// below the 19 of the portable B0 itself).
fn portable(iters: u64) -> f32 {
    use crate::simd::Simd;
    use crate::simd::portable::Portable;
    // SAFETY: the portable variant runs on every CPU.
    let s = unsafe { Portable::assume() };
    let m = s.splat(std::hint::black_box(0.999_999f32));
    let a = s.splat(std::hint::black_box(1e-7f32));
    let mut acc = [s.splat(1.0); CHAINS];
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = s.fma(*v, m, a);
        }
    }
    let mut lanes = [0.0f32; 4];
    let mut sum = 0.0;
    for v in acc {
        // SAFETY: 4 writable lanes.
        unsafe { s.store(lanes.as_mut_ptr(), v) };
        sum += lanes.iter().sum::<f32>();
    }
    sum
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::CHAINS;

    #[target_feature(enable = "avx512f")]
    pub fn fma512(iters: u64) -> f32 {
        let m = _mm512_set1_ps(std::hint::black_box(0.999_999));
        let a = _mm512_set1_ps(std::hint::black_box(1e-7));
        let mut acc = [_mm512_set1_ps(1.0); CHAINS];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm512_fmadd_ps(*v, m, a);
            }
        }
        acc.iter().map(|&v| _mm512_reduce_add_ps(v)).sum()
    }

    #[target_feature(enable = "avx2,fma")]
    pub fn fma256(iters: u64) -> f32 {
        let m = _mm256_set1_ps(std::hint::black_box(0.999_999));
        let a = _mm256_set1_ps(std::hint::black_box(1e-7));
        let mut acc = [_mm256_set1_ps(1.0); CHAINS];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm256_fmadd_ps(*v, m, a);
            }
        }
        let mut lanes = [0.0f32; 8];
        let sum = acc.iter().fold(_mm256_setzero_ps(), |s, &v| _mm256_add_ps(s, v));
        // SAFETY: `lanes` holds 8 f32s.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), sum) };
        lanes.iter().sum()
    }
}
