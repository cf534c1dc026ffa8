//! The AVX-512F variant: a 12 × 32 tile (24 zmm accumulators of the 32), masked column
//! tails, and the epilogue's exp through `vscalefps`.

use std::arch::x86_64::*;

use super::GemmParams;
use crate::vector::avx512::activate;

/// Rows of the register tile.
pub const MR: usize = 12;
const LANES: usize = 16;
const FULL: __mmask16 = 0xffff;

#[derive(Clone, Copy)]
struct Ptrs {
    a: *const f32,
    b: *const f32,
    out: *mut f32,
    res: *const f32,
}

/// See [`super::GemmFn`] for the contract.
///
/// # Safety
/// The pointers satisfy [`super::GemmFn`]'s contract and the CPU supports AVX-512F.
#[target_feature(enable = "avx512f")]
pub unsafe extern "C" fn gemm(
    a: *const f32,
    b: *const f32,
    out: *mut f32,
    res: *const f32,
    rows: usize,
    params: *const GemmParams,
) {
    // SAFETY: the caller passes a valid params pointer.
    let p = unsafe { &*params };
    let x = Ptrs { a, b, out, res };
    let mut r0 = 0;
    while r0 + MR <= rows {
        // SAFETY: rows r0..r0+MR are inside the product.
        unsafe { row_block::<MR>(x, r0, p) };
        r0 += MR;
    }
    // SAFETY: the remaining rows r0..rows are inside the product.
    unsafe {
        match rows - r0 {
            0 => {}
            1 => row_block::<1>(x, r0, p),
            2 => row_block::<2>(x, r0, p),
            3 => row_block::<3>(x, r0, p),
            4 => row_block::<4>(x, r0, p),
            5 => row_block::<5>(x, r0, p),
            6 => row_block::<6>(x, r0, p),
            7 => row_block::<7>(x, r0, p),
            8 => row_block::<8>(x, r0, p),
            9 => row_block::<9>(x, r0, p),
            10 => row_block::<10>(x, r0, p),
            _ => row_block::<11>(x, r0, p),
        }
    }
}

/// Lanes `0..n` of a vector, for `1 ≤ n ≤ 16`.
fn tail_mask(n: usize) -> __mmask16 {
    ((1u32 << n) - 1) as __mmask16
}

/// All columns of rows `r0..r0+M`.
///
/// # Safety
/// Rows `r0..r0+M` are inside the product; AVX-512F is available.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn row_block<const M: usize>(x: Ptrs, r0: usize, p: &GemmParams) {
    let mut j0 = 0;
    // SAFETY (all tiles): columns j0.. covered by the masks are < n.
    while j0 + 2 * LANES <= p.n {
        unsafe { tile::<M, 2>(x, r0, j0, [FULL, FULL], p) };
        j0 += 2 * LANES;
    }
    let left = p.n - j0;
    if left > LANES {
        unsafe { tile::<M, 2>(x, r0, j0, [FULL, tail_mask(left - LANES)], p) };
    } else if left > 0 {
        unsafe { tile::<M, 1>(x, r0, j0, [tail_mask(left)], p) };
    }
}

/// An M × (V·16) tile at (r0, j0); lanes outside `masks` are neither read nor written.
///
/// # Safety
/// Rows `r0..r0+M` are inside the product and every lane set in `masks[v]` is a column
/// `j0 + 16·v + lane < n`; AVX-512F is available.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn tile<const M: usize, const V: usize>(x: Ptrs, r0: usize, j0: usize, masks: [__mmask16; V], p: &GemmParams) {
    let mut acc = [[_mm512_setzero_ps(); V]; M];
    let a0 = x.a.wrapping_add(r0 * p.lda);
    let b0 = x.b.wrapping_add(j0);
    for k in 0..p.k {
        let brow = b0.wrapping_add(k * p.ldb);
        let mut bv = [_mm512_setzero_ps(); V];
        for v in 0..V {
            // SAFETY: masked lanes are columns < n of row k of B.
            bv[v] = unsafe { _mm512_maskz_loadu_ps(masks[v], brow.wrapping_add(LANES * v)) };
        }
        for (r, acc_r) in acc.iter_mut().enumerate() {
            // SAFETY: row r0 + r < rows, k < K.
            let av = _mm512_set1_ps(unsafe { *a0.wrapping_add(r * p.lda + k) });
            for v in 0..V {
                acc_r[v] = _mm512_fmadd_ps(av, bv[v], acc_r[v]);
            }
        }
    }
    let mut bias = [_mm512_setzero_ps(); V];
    if !p.bias.is_null() {
        for v in 0..V {
            // SAFETY: masked lanes are columns < n; bias holds n values.
            bias[v] = unsafe { _mm512_maskz_loadu_ps(masks[v], p.bias.wrapping_add(j0 + LANES * v)) };
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        for v in 0..V {
            let col = j0 + LANES * v;
            let mut y = _mm512_add_ps(acc_r[v], bias[v]);
            if !x.res.is_null() {
                // SAFETY: (r0 + r, masked columns) is inside the residual.
                let rv = unsafe { _mm512_maskz_loadu_ps(masks[v], x.res.wrapping_add((r0 + r) * p.ldr + col)) };
                y = _mm512_add_ps(y, rv);
            }
            y = activate(y, &p.act);
            // SAFETY: (r0 + r, masked columns) is inside the output.
            unsafe { _mm512_mask_storeu_ps(x.out.wrapping_add((r0 + r) * p.ldo + col), masks[v], y) };
        }
    }
}
