//! The AVX2 + FMA variant: 8 channels per vector, masked channel tails, four output
//! pixels per weight load in the interior.

use std::arch::x86_64::*;

use super::DwParams;
use crate::prefetch::Spread;
use crate::vector::avx2::activate;

const LANES: usize = 8;
/// Output pixels computed together in the interior.
const PX: usize = 4;

/// See [`super::DwFn`] for the contract.
///
/// # Safety
/// The pointers satisfy [`super::DwFn`]'s contract and the CPU supports AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe extern "C" fn dw_row(
    rows: *const *const f32,
    out: *mut f32,
    sums: *mut f32,
    params: *const DwParams,
    prefetch: *const u8,
) {
    // SAFETY: the caller passes valid params and `kh` row pointers.
    let p = unsafe { &*params };
    let rows = unsafe { std::slice::from_raw_parts(rows, p.win.kh) };
    let (lo, hi) = p.win.interior();
    let mut c0 = 0;
    let mut pf = Spread::new(prefetch, p.prefetch_bytes, p.c.div_ceil(LANES));
    while c0 < p.c {
        pf.step();
        let left = (p.c - c0).min(LANES) as i32;
        let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(left), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        // SAFETY (whole block): every access is at channel c0 + lane with the lane in
        // `mask`, so ch < c; pixels are < w (input, checked or interior) and < ow.
        unsafe {
            let bias = _mm256_maskload_ps(p.bias.add(c0), mask);
            let mut sum = _mm256_setzero_ps();
            let mut ox = 0;
            while ox < p.win.ow {
                if ox >= lo && ox + PX <= hi {
                    let acc = interior(rows, p, ox, c0, mask, bias);
                    for (q, &a) in acc.iter().enumerate() {
                        let y = activate(a, &p.act);
                        _mm256_maskstore_ps(out.add((ox + q) * p.ld + c0), mask, y);
                        sum = _mm256_add_ps(sum, y);
                    }
                    ox += PX;
                } else {
                    // Border (or a lone interior) pixel: only the taps inside the row.
                    let (j_lo, j_hi) = p.win.taps(ox);
                    // One accumulator per kernel row: independent FMA chains.
                    let mut acc = bias;
                    for (i, &row) in rows.iter().enumerate() {
                        if row.is_null() {
                            continue;
                        }
                        let mut row_acc = _mm256_setzero_ps();
                        for j in j_lo..j_hi {
                            let iw = ox * p.win.sw + j * p.win.dw - p.win.pw;
                            let x = _mm256_maskload_ps(row.add(iw * p.ld + c0), mask);
                            let w = _mm256_maskload_ps(p.weights.add((i * p.win.kw + j) * p.ld + c0), mask);
                            row_acc = _mm256_fmadd_ps(x, w, row_acc);
                        }
                        acc = _mm256_add_ps(acc, row_acc);
                    }
                    let y = activate(acc, &p.act);
                    _mm256_maskstore_ps(out.add(ox * p.ld + c0), mask, y);
                    sum = _mm256_add_ps(sum, y);
                    ox += 1;
                }
            }
            if !sums.is_null() {
                _mm256_maskstore_ps(sums.add(c0), mask, sum);
            }
        }
        c0 += LANES;
    }
}

/// Sums of PX interior output pixels from `ox` on, channels `c0 + mask`.
///
/// # Safety
/// `ox..ox+PX` lies in `p.win.interior()`; the row pointers and channels are as in [`dw_row`].
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn interior(
    rows: &[*const f32],
    p: &DwParams,
    ox: usize,
    c0: usize,
    mask: __m256i,
    bias: __m256,
) -> [__m256; PX] {
    let mut acc = [bias; PX];
    let base = ox * p.win.sw - p.win.pw;
    for (i, &row) in rows.iter().enumerate() {
        if row.is_null() {
            continue;
        }
        for j in 0..p.win.kw {
            // SAFETY: see the function's contract.
            unsafe {
                let w = _mm256_maskload_ps(p.weights.add((i * p.win.kw + j) * p.ld + c0), mask);
                let px = row.add((base + j * p.win.dw) * p.ld + c0);
                for (q, a) in acc.iter_mut().enumerate() {
                    let x = _mm256_maskload_ps(px.add(q * p.win.sw * p.ld), mask);
                    *a = _mm256_fmadd_ps(x, w, *a);
                }
            }
        }
    }
    acc
}
