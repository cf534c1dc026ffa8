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
    /// Per-K scale of B's rows, or null.
    kscale: *const f32,
}

/// See [`super::GemmFn`] for the contract.
///
/// Column panels run outermost, so one K × 32 panel of B stays in L1/L2 while every row
/// tile of the call passes over it.
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
    kscale: *const f32,
) {
    // SAFETY: the caller passes a valid params pointer.
    let p = unsafe { &*params };
    let x = Ptrs { a, b, out, res, kscale };
    let mut j0 = 0;
    // SAFETY (all panels): the columns covered by the masks are < n.
    while j0 + 2 * LANES <= p.n {
        unsafe { column_panel::<2>(x, j0, [FULL, FULL], rows, p) };
        j0 += 2 * LANES;
    }
    let left = p.n - j0;
    if left > LANES {
        unsafe { column_panel::<2>(x, j0, [FULL, tail_mask(left - LANES)], rows, p) };
    } else if left > 0 {
        unsafe { column_panel::<1>(x, j0, [tail_mask(left)], rows, p) };
    }
}

/// Lanes `0..n` of a vector, for `1 ≤ n ≤ 16`.
fn tail_mask(n: usize) -> __mmask16 {
    ((1u32 << n) - 1) as __mmask16
}

/// Every row of the columns that `masks` select from `j0` on.
///
/// # Safety
/// Every lane set in `masks[v]` is a column `j0 + 16·v + lane < n`; AVX-512F is available.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn column_panel<const V: usize>(x: Ptrs, j0: usize, masks: [__mmask16; V], rows: usize, p: &GemmParams) {
    let mut r0 = 0;
    // SAFETY (all tiles): rows r0..r0+M are < rows. A remainder of 13 or 14 rows is one
    // taller tile (28 accumulators still fit the 32 registers), not 12 + a 1- or 2-row
    // tile that would reload the whole B panel for one or two rows.
    while rows - r0 >= MR + 3 {
        unsafe { tile::<MR, V>(x, r0, j0, masks, p) };
        r0 += MR;
    }
    unsafe {
        match rows - r0 {
            14 => tile::<14, V>(x, r0, j0, masks, p),
            13 => tile::<13, V>(x, r0, j0, masks, p),
            12 => tile::<12, V>(x, r0, j0, masks, p),
            0 => {}
            1 => tile::<1, V>(x, r0, j0, masks, p),
            2 => tile::<2, V>(x, r0, j0, masks, p),
            3 => tile::<3, V>(x, r0, j0, masks, p),
            4 => tile::<4, V>(x, r0, j0, masks, p),
            5 => tile::<5, V>(x, r0, j0, masks, p),
            6 => tile::<6, V>(x, r0, j0, masks, p),
            7 => tile::<7, V>(x, r0, j0, masks, p),
            8 => tile::<8, V>(x, r0, j0, masks, p),
            9 => tile::<9, V>(x, r0, j0, masks, p),
            10 => tile::<10, V>(x, r0, j0, masks, p),
            _ => tile::<11, V>(x, r0, j0, masks, p),
        }
    }
}

/// The K loop of a tile: M × V accumulators; with `SCALED`, B's row k is multiplied by
/// `kscale[k]` as it is loaded.
///
/// # Safety
/// As for [`tile`]; with `SCALED`, `x.kscale` holds K values.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn accumulate<const M: usize, const V: usize, const SCALED: bool>(
    x: Ptrs,
    r0: usize,
    j0: usize,
    masks: [__mmask16; V],
    p: &GemmParams,
    init: [__m512; V],
) -> [[__m512; V]; M] {
    let mut acc = [init; M];
    let a0 = x.a.wrapping_add(r0 * p.lda);
    let b0 = x.b.wrapping_add(p.b_col(j0));
    for k in 0..p.k {
        let brow = b0.wrapping_add(k * p.ldb);
        let mut bv = [_mm512_setzero_ps(); V];
        for v in 0..V {
            // SAFETY: masked lanes are columns < n of row k of B.
            bv[v] = unsafe { _mm512_maskz_loadu_ps(masks[v], brow.wrapping_add(LANES * v)) };
        }
        if SCALED {
            // SAFETY: k < K values of the scale.
            let s = _mm512_set1_ps(unsafe { *x.kscale.wrapping_add(k) });
            for b in bv.iter_mut() {
                *b = _mm512_mul_ps(*b, s);
            }
        }
        for (r, acc_r) in acc.iter_mut().enumerate() {
            // SAFETY: row r0 + r < rows, k < K.
            let av = _mm512_set1_ps(unsafe { *a0.wrapping_add(r * p.lda + k) });
            for v in 0..V {
                acc_r[v] = _mm512_fmadd_ps(av, bv[v], acc_r[v]);
            }
        }
    }
    acc
}

/// An M × (V·16) tile at (r0, j0); lanes outside `masks` are neither read nor written.
///
/// # Safety
/// Rows `r0..r0+M` are inside the product and every lane set in `masks[v]` is a column
/// `j0 + 16·v + lane < n`; AVX-512F is available.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn tile<const M: usize, const V: usize>(x: Ptrs, r0: usize, j0: usize, masks: [__mmask16; V], p: &GemmParams) {
    // The accumulators start at the bias: one add fewer per output vector in the epilogue,
    // which dominates small-K products.
    let mut bias = [_mm512_setzero_ps(); V];
    if !p.bias.is_null() {
        for v in 0..V {
            // SAFETY: masked lanes are columns < n; bias holds n values.
            bias[v] = unsafe { _mm512_maskz_loadu_ps(masks[v], p.bias.wrapping_add(j0 + LANES * v)) };
        }
    }
    let acc = if x.kscale.is_null() {
        // SAFETY: as for this function.
        unsafe { accumulate::<M, V, false>(x, r0, j0, masks, p, bias) }
    } else {
        // SAFETY: as for this function; kscale holds K values.
        unsafe { accumulate::<M, V, true>(x, r0, j0, masks, p, bias) }
    };
    for (r, acc_r) in acc.iter().enumerate() {
        for v in 0..V {
            let col = j0 + LANES * v;
            let mut y = acc_r[v];
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
