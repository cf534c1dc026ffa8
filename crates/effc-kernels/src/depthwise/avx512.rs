//! The AVX-512F variant: 16 channels per vector, masked channel tails. Interior pixels go
//! eight (then four) at a time, sharing each weight load; border pixels split their taps
//! over one accumulator per kernel row. Either way enough independent FMA chains are in flight to hide
//! the FMA latency, which a single k×k chain per pixel would expose.

use std::arch::x86_64::*;

use super::DwParams;
use crate::vector::avx512::activate;

const LANES: usize = 16;

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
        // in `mask`, so ch < c; pixels are < w (input: taps checked or interior) and < ow.
        unsafe {
            let bias = _mm512_maskz_loadu_ps(mask, p.bias.add(c0));
            let mut sum = _mm512_setzero_ps();
            let mut store = |ox: usize, acc: __m512| {
                let y = activate(acc, &p.act);
                _mm512_mask_storeu_ps(out.add(ox * p.ld + c0), mask, y);
                sum = _mm512_add_ps(sum, y);
            };
            let mut ox = 0;
            while ox < p.ow {
                if ox >= lo && ox + 8 <= hi {
                    let acc = interior::<8>(rows, p, ox, c0, mask, bias);
                    for (q, &a) in acc.iter().enumerate() {
                        store(ox + q, a);
                    }
                    ox += 8;
                } else if ox >= lo && ox + 4 <= hi {
                    let acc = interior::<4>(rows, p, ox, c0, mask, bias);
                    for (q, &a) in acc.iter().enumerate() {
                        store(ox + q, a);
                    }
                    ox += 4;
                } else {
                    store(ox, border(rows, p, ox, c0, mask, bias));
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

/// One pixel's sum over the taps inside the row: each kernel row accumulates into its own
/// register from zero, so the rows' FMA chains are independent.
///
/// # Safety
/// As in [`dw_row`]; `ox < ow`.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn border(rows: &[*const f32], p: &DwParams, ox: usize, c0: usize, mask: __mmask16, bias: __m512) -> __m512 {
    let (j_lo, j_hi) = p.taps(ox);
    let mut acc = bias;
    for (i, &row) in rows.iter().enumerate() {
        if row.is_null() {
            continue;
        }
        let mut row_acc = _mm512_setzero_ps();
        for j in j_lo..j_hi {
            let iw = ox * p.sw + j * p.dw - p.pw;
            // SAFETY: j is a tap inside the row, so iw < w; channels as in `dw_row`.
            unsafe {
                let x = _mm512_maskz_loadu_ps(mask, row.add(iw * p.ld + c0));
                let w = _mm512_maskz_loadu_ps(mask, p.weights.add((i * p.kw + j) * p.ld + c0));
                row_acc = _mm512_fmadd_ps(x, w, row_acc);
            }
        }
        acc = _mm512_add_ps(acc, row_acc);
    }
    acc
}

/// Sums of P interior output pixels from `ox` on, channels `c0 + mask`.
///
/// # Safety
/// `ox..ox+P` lies in `p.interior()`, so every tap's column is inside the row; the row
/// pointers and channels are as in [`dw_row`].
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn interior<const P: usize>(
    rows: &[*const f32],
    p: &DwParams,
    ox: usize,
    c0: usize,
    mask: __mmask16,
    bias: __m512,
) -> [__m512; P] {
    let mut acc = [bias; P];
    let base = ox * p.sw - p.pw;
    for (i, &row) in rows.iter().enumerate() {
        if row.is_null() {
            continue;
        }
        for j in 0..p.kw {
            // SAFETY: see the function's contract.
            unsafe {
                let w = _mm512_maskz_loadu_ps(mask, p.weights.add((i * p.kw + j) * p.ld + c0));
                let px = row.add((base + j * p.dw) * p.ld + c0);
                for (q, a) in acc.iter_mut().enumerate() {
                    let x = _mm512_maskz_loadu_ps(mask, px.add(q * p.sw * p.ld));
                    *a = _mm512_fmadd_ps(x, w, *a);
                }
            }
        }
    }
    acc
}
