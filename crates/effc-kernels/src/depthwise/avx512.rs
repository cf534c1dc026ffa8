//! The AVX-512F variant: 16 channels per vector, masked channel tails, four output
//! pixels per weight load in the interior.

use std::arch::x86_64::*;

use super::DwParams;
use crate::vector::avx512::activate;

const LANES: usize = 16;
/// Output pixels computed together in the interior.
const PX: usize = 4;

/// See [`super::DwFn`] for the contract.
///
/// # Safety
/// The pointers satisfy [`super::DwFn`]'s contract and the CPU supports AVX-512F.
#[target_feature(enable = "avx512f")]
pub unsafe extern "C" fn dw_row(rows: *const *const f32, out: *mut f32, sums: *mut f32, params: *const DwParams) {
    // SAFETY: the caller passes valid params and `kh` row pointers.
    let p = unsafe { &*params };
    let rows = unsafe { std::slice::from_raw_parts(rows, p.kh) };
    let (lo, hi) = p.interior();
    let mut c0 = 0;
    while c0 < p.c {
        let left = p.c - c0;
        let mask: __mmask16 = if left >= LANES { 0xffff } else { ((1u32 << left) - 1) as __mmask16 };
        // SAFETY (whole block): every access below is at channel c0 + lane with the lane
        // in `mask`, so ch < c; pixels are < w (input, checked or interior) and < ow.
        unsafe {
            let bias = _mm512_maskz_loadu_ps(mask, p.bias.add(c0));
            let mut sum = _mm512_setzero_ps();
            let mut ox = 0;
            while ox < p.ow {
                if ox >= lo && ox + PX <= hi {
                    let acc = interior(rows, p, ox, c0, mask, bias);
                    for (q, &a) in acc.iter().enumerate() {
                        let y = activate(a, &p.act);
                        _mm512_mask_storeu_ps(out.add((ox + q) * p.c + c0), mask, y);
                        sum = _mm512_add_ps(sum, y);
                    }
                    ox += PX;
                } else {
                    let mut acc = bias;
                    for (i, &row) in rows.iter().enumerate() {
                        if row.is_null() {
                            continue;
                        }
                        for j in 0..p.kw {
                            if let Some(iw) = p.column(ox, j) {
                                let x = _mm512_maskz_loadu_ps(mask, row.add(iw * p.c + c0));
                                let w = _mm512_maskz_loadu_ps(mask, p.weights.add((i * p.kw + j) * p.c + c0));
                                acc = _mm512_fmadd_ps(x, w, acc);
                            }
                        }
                    }
                    let y = activate(acc, &p.act);
                    _mm512_mask_storeu_ps(out.add(ox * p.c + c0), mask, y);
                    sum = _mm512_add_ps(sum, y);
                    ox += 1;
                }
            }
            if !sums.is_null() {
                let s = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, sums.add(c0)), sum);
                _mm512_mask_storeu_ps(sums.add(c0), mask, s);
            }
        }
        c0 += LANES;
    }
}

/// Sums of PX interior output pixels from `ox` on, channels `c0 + mask`.
///
/// # Safety
/// `ox..ox+PX` lies in `p.interior()`, so every tap's column is inside the row; the row
/// pointers and channels are as in [`dw_row`].
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn interior(
    rows: &[*const f32],
    p: &DwParams,
    ox: usize,
    c0: usize,
    mask: __mmask16,
    bias: __m512,
) -> [__m512; PX] {
    let mut acc = [bias; PX];
    let base = ox * p.sw - p.pw;
    for (i, &row) in rows.iter().enumerate() {
        if row.is_null() {
            continue;
        }
        for j in 0..p.kw {
            // SAFETY: see the function's contract.
            unsafe {
                let w = _mm512_maskz_loadu_ps(mask, p.weights.add((i * p.kw + j) * p.c + c0));
                let px = row.add((base + j * p.dw) * p.c + c0);
                for (q, a) in acc.iter_mut().enumerate() {
                    let x = _mm512_maskz_loadu_ps(mask, px.add(q * p.sw * p.c));
                    *a = _mm512_fmadd_ps(x, w, *a);
                }
            }
        }
    }
    acc
}
