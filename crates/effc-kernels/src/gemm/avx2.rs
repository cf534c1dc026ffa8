//! The AVX2 + FMA variant: a 6 × 16 tile (12 ymm accumulators of the 16) and masked
//! column tails.

use std::arch::x86_64::*;

use super::GemmParams;
use crate::vector::avx2::activate;

/// Rows of the register tile.
pub const MR: usize = 6;
const LANES: usize = 8;

#[derive(Clone, Copy)]
struct Ptrs {
    a: *const f32,
    b: *const f32,
    out: *mut f32,
    res: *const f32,
    /// Per-K scale of B's rows, or null.
    kscale: *const f32,
}

/// See [`super::GemmFn`] for the contract.
///
/// Column panels run outermost, so one K × 16 panel of B stays in L1/L2 while every row
/// tile of the call passes over it.
///
/// # Safety
/// The pointers satisfy [`super::GemmFn`]'s contract and the CPU supports AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe extern "C" fn gemm(
    a: *const f32,
    b: *const f32,
    out: *mut f32,
    res: *const f32,
    rows: usize,
    params: *const GemmParams,
    kscale: *const f32,
) {
    // SAFETY: the caller passes a valid params pointer.
    let p = unsafe { &*params };
    let x = Ptrs { a, b, out, res, kscale };
    let mut j0 = 0;
    // SAFETY (all panels): the columns covered by the masks are < n.
    while j0 + 2 * LANES <= p.n {
        unsafe { column_panel::<false>(x, j0, [lanes_below(LANES), lanes_below(LANES)], rows, p) };
        j0 += 2 * LANES;
    }
    let left = p.n - j0;
    if left > 0 {
        let masks = [lanes_below(left), lanes_below(left.saturating_sub(LANES))];
        unsafe { column_panel::<true>(x, j0, masks, rows, p) };
    }
}

/// A mask selecting lanes `0..n` (all lanes for n ≥ 8).
#[target_feature(enable = "avx2")]
#[inline]
fn lanes_below(n: usize) -> __m256i {
    _mm256_cmpgt_epi32(_mm256_set1_epi32(n.min(LANES) as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
}

/// Every row of the 16 columns from `j0` on (only the lanes in `masks` when `MASKED`).
///
/// # Safety
/// Every column the masks (or, unmasked, all 16) select is `< n`; AVX2 and FMA are available.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn column_panel<const MASKED: bool>(x: Ptrs, j0: usize, masks: [__m256i; 2], rows: usize, p: &GemmParams) {
    let mut r0 = 0;
    // SAFETY (all tiles): rows r0..r0+M are < rows.
    while r0 + MR <= rows {
        unsafe { tile::<MR, MASKED>(x, r0, j0, masks, p) };
        r0 += MR;
    }
    unsafe {
        match rows - r0 {
            0 => {}
            1 => tile::<1, MASKED>(x, r0, j0, masks, p),
            2 => tile::<2, MASKED>(x, r0, j0, masks, p),
            3 => tile::<3, MASKED>(x, r0, j0, masks, p),
            4 => tile::<4, MASKED>(x, r0, j0, masks, p),
            _ => tile::<5, MASKED>(x, r0, j0, masks, p),
        }
    }
}

/// An M × 16 tile at (r0, j0). With `MASKED`, only the lanes set in `masks` are read or
/// written; without, all 16 columns are inside the product.
///
/// # Safety
/// Rows `r0..r0+M` are inside the product, and every column the masks (or, unmasked, all
/// 16) select is `< n`; AVX2 and FMA are available.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tile<const M: usize, const MASKED: bool>(x: Ptrs, r0: usize, j0: usize, masks: [__m256i; 2], p: &GemmParams) {
    // SAFETY (all loads and stores below): the selected lanes are inside their matrices.
    let load = |ptr: *const f32, v: usize| unsafe {
        if MASKED { _mm256_maskload_ps(ptr, masks[v]) } else { _mm256_loadu_ps(ptr) }
    };
    let mut acc = [[_mm256_setzero_ps(); 2]; M];
    let a0 = x.a.wrapping_add(r0 * p.lda);
    let b0 = x.b.wrapping_add(p.b_col(j0));
    for k in 0..p.k {
        let brow = b0.wrapping_add(k * p.ldb);
        let mut bv = [load(brow, 0), load(brow.wrapping_add(LANES), 1)];
        if !x.kscale.is_null() {
            // SAFETY: k < K values of the scale (a branch LLVM hoists out of the loop).
            let s = _mm256_set1_ps(unsafe { *x.kscale.wrapping_add(k) });
            bv = [_mm256_mul_ps(bv[0], s), _mm256_mul_ps(bv[1], s)];
        }
        for (r, acc_r) in acc.iter_mut().enumerate() {
            // SAFETY: row r0 + r < rows, k < K.
            let av = _mm256_set1_ps(unsafe { *a0.wrapping_add(r * p.lda + k) });
            for v in 0..2 {
                acc_r[v] = _mm256_fmadd_ps(av, bv[v], acc_r[v]);
            }
        }
    }
    let mut bias = [_mm256_setzero_ps(); 2];
    if !p.bias.is_null() {
        for (v, b) in bias.iter_mut().enumerate() {
            *b = load(p.bias.wrapping_add(j0 + LANES * v), v);
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        for v in 0..2 {
            let col = j0 + LANES * v;
            let mut y = _mm256_add_ps(acc_r[v], bias[v]);
            if !x.res.is_null() {
                y = _mm256_add_ps(y, load(x.res.wrapping_add((r0 + r) * p.ldr + col), v));
            }
            y = activate(y, &p.act);
            let dst = x.out.wrapping_add((r0 + r) * p.ldo + col);
            // SAFETY: the selected lanes of this output row are inside the output.
            unsafe { if MASKED { _mm256_maskstore_ps(dst, masks[v], y) } else { _mm256_storeu_ps(dst, y) } }
        }
    }
}
