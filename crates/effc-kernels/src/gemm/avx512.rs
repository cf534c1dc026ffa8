//! The AVX-512F variant: a 12 × 32 tile (24 zmm accumulators of the 32), masked column
//! tails (an 8-column one in ymm halves), and the epilogue's exp through `vscalefps`.

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

/// The share of the next B panel one tile requests into L2 while it computes: from
/// `start`, `step` bytes further at each K step (0: none).
#[derive(Clone, Copy)]
struct Ahead {
    start: *const u8,
    step: usize,
}

impl Ahead {
    /// Requests this K step's part (prefetches never fault, so any address is safe).
    #[inline]
    fn request(self, k: usize) {
        if self.step > 0 {
            let at = self.start.wrapping_add(k * self.step);
            crate::prefetch::into_l2(at);
            if self.step > 64 {
                crate::prefetch::into_l2(at.wrapping_add(64));
            }
        }
    }
}

/// The next panel split into one [`Ahead`] per row tile.
struct Tiles {
    next: *const u8,
    share: usize,
    step: usize,
}

impl Tiles {
    /// Shares of the panel after the one at column `j0`, one for each of the `tiles` row
    /// tiles of a call over `rows` rows, so that the next panel's first tile
    /// finds B in L2: a cold weight panel otherwise streams in from memory at the pace of
    /// that tile's K loop (B0 at one thread: expand −0.13 ms, project −0.04). Only for
    /// packed B, whose next panel is the next contiguous run (for the last panel of a
    /// call, the next call's first one when work items are column blocks), and not for
    /// one-row products, which are bandwidth-bound streams the hardware prefetcher
    /// already keeps up with.
    fn of_next_panel(b: *const f32, j0: usize, rows: usize, tiles: usize, p: &GemmParams) -> Tiles {
        let share = (p.k * p.ldb * 4).div_ceil(tiles);
        let packed = p.panel_stride >= p.k * p.ldb;
        let step = if packed && rows > 1 { share.div_ceil(p.k.max(1)) } else { 0 };
        let next = (b as *const u8).wrapping_add((p.b_col(j0) + p.panel_stride) * 4);
        Tiles { next, share, step }
    }

    fn share(&self, tile: usize) -> Ahead {
        Ahead { start: self.next.wrapping_add(tile * self.share), step: self.step }
    }
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
        unsafe { column_panel::<2, false>(x, j0, [FULL, FULL], rows, p) };
        j0 += 2 * LANES;
    }
    // An 8-column tail (B0's 24- and 40-channel projections) runs on ymm halves: a
    // 256-bit FMA takes half the issue slots of a masked 512-bit one on cores that split
    // 512-bit operations (Zen 4), and no more on the others.
    let left = p.n - j0;
    unsafe {
        match left {
            0 => {}
            8 => column_panel::<1, true>(x, j0, [FULL], rows, p),
            24 => column_panel::<2, true>(x, j0, [FULL; 2], rows, p),
            17.. => column_panel::<2, false>(x, j0, [FULL, tail_mask(left - LANES)], rows, p),
            _ => column_panel::<1, false>(x, j0, [tail_mask(left)], rows, p),
        }
    }
}

/// Lanes `0..n` of a vector, for `1 ≤ n ≤ 16`.
fn tail_mask(n: usize) -> __mmask16 {
    ((1u32 << n) - 1) as __mmask16
}

/// Every row of the columns that `masks` select from `j0` on; with `HALF`, vector V−1 is
/// exactly 8 columns, computed in ymm (its mask is ignored).
///
/// # Safety
/// Every lane set in `masks[v]` is a column `j0 + 16·v + lane < n` (with `HALF`, all 8
/// lanes of vector V−1 are); AVX-512F is available.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn column_panel<const V: usize, const HALF: bool>(
    x: Ptrs,
    j0: usize,
    masks: [__mmask16; V],
    rows: usize,
    p: &GemmParams,
) {
    // Full tiles while at least MR + 3 rows are left: a remainder of 13 or 14 rows is one
    // taller tile (28 accumulators still fit the 32 registers), not 12 + a 1- or 2-row
    // tile that would reload the whole B panel for one or two rows.
    let full = if rows >= MR + 3 { (rows - 3) / MR } else { 0 };
    let ahead = Tiles::of_next_panel(x.b, j0, rows, full + 1, p);
    // SAFETY (all tiles): rows r0..r0+M are < rows.
    for t in 0..full {
        unsafe { tile::<MR, V, HALF>(x, t * MR, j0, masks, p, ahead.share(t)) };
    }
    let (r0, a) = (full * MR, ahead.share(full));
    unsafe {
        match rows - r0 {
            14 => tile::<14, V, HALF>(x, r0, j0, masks, p, a),
            13 => tile::<13, V, HALF>(x, r0, j0, masks, p, a),
            12 => tile::<12, V, HALF>(x, r0, j0, masks, p, a),
            0 => {}
            1 => tile::<1, V, HALF>(x, r0, j0, masks, p, a),
            2 => tile::<2, V, HALF>(x, r0, j0, masks, p, a),
            3 => tile::<3, V, HALF>(x, r0, j0, masks, p, a),
            4 => tile::<4, V, HALF>(x, r0, j0, masks, p, a),
            5 => tile::<5, V, HALF>(x, r0, j0, masks, p, a),
            6 => tile::<6, V, HALF>(x, r0, j0, masks, p, a),
            7 => tile::<7, V, HALF>(x, r0, j0, masks, p, a),
            8 => tile::<8, V, HALF>(x, r0, j0, masks, p, a),
            9 => tile::<9, V, HALF>(x, r0, j0, masks, p, a),
            10 => tile::<10, V, HALF>(x, r0, j0, masks, p, a),
            _ => tile::<11, V, HALF>(x, r0, j0, masks, p, a),
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
unsafe fn accumulate<const M: usize, const V: usize, const HALF: bool, const SCALED: bool>(
    x: Ptrs,
    r0: usize,
    j0: usize,
    masks: [__mmask16; V],
    p: &GemmParams,
    init: [__m512; V],
    ahead: Ahead,
) -> [[__m512; V]; M] {
    let mut acc = [init; M];
    let a0 = x.a.wrapping_add(r0 * p.lda);
    let b0 = x.b.wrapping_add(p.b_col(j0));
    for k in 0..p.k {
        ahead.request(k);
        let brow = b0.wrapping_add(k * p.ldb);
        let mut bv = [_mm512_setzero_ps(); V];
        for v in 0..V {
            // SAFETY: masked lanes (or a half's 8) are columns < n of row k of B.
            bv[v] = unsafe { load::<HALF>(v + 1 == V, masks[v], brow.wrapping_add(LANES * v)) };
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
                acc_r[v] = if HALF && v + 1 == V {
                    let lo = |z: __m512| _mm512_castps512_ps256(z);
                    _mm512_castps256_ps512(_mm256_fmadd_ps(lo(av), lo(bv[v]), lo(acc_r[v])))
                } else {
                    _mm512_fmadd_ps(av, bv[v], acc_r[v])
                };
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
unsafe fn tile<const M: usize, const V: usize, const HALF: bool>(
    x: Ptrs,
    r0: usize,
    j0: usize,
    masks: [__mmask16; V],
    p: &GemmParams,
    ahead: Ahead,
) {
    // The accumulators start at the bias: one add fewer per output vector in the epilogue,
    // which dominates small-K products.
    let mut bias = [_mm512_setzero_ps(); V];
    if !p.bias.is_null() {
        for v in 0..V {
            // SAFETY: masked lanes (or a half's 8) are columns < n; bias holds n values.
            bias[v] = unsafe { load::<HALF>(v + 1 == V, masks[v], p.bias.wrapping_add(j0 + LANES * v)) };
        }
    }
    let acc = if x.kscale.is_null() {
        // SAFETY: as for this function.
        unsafe { accumulate::<M, V, HALF, false>(x, r0, j0, masks, p, bias, ahead) }
    } else {
        // SAFETY: as for this function; kscale holds K values.
        unsafe { accumulate::<M, V, HALF, true>(x, r0, j0, masks, p, bias, ahead) }
    };
    for (r, acc_r) in acc.iter().enumerate() {
        for v in 0..V {
            let col = j0 + LANES * v;
            let mut y = acc_r[v];
            if !x.res.is_null() {
                // SAFETY: (r0 + r, masked columns or a half's 8) is inside the residual.
                let rv = unsafe { load::<HALF>(v + 1 == V, masks[v], x.res.wrapping_add((r0 + r) * p.ldr + col)) };
                y = _mm512_add_ps(y, rv);
            }
            y = activate(y, &p.act);
            let dst = x.out.wrapping_add((r0 + r) * p.ldo + col);
            // SAFETY: (r0 + r, masked columns or a half's 8) is inside the output.
            unsafe {
                if HALF && v + 1 == V {
                    _mm256_storeu_ps(dst, _mm512_castps512_ps256(y))
                } else {
                    _mm512_mask_storeu_ps(dst, masks[v], y)
                }
            }
        }
    }
}

/// The masked lanes at `src`, or with `HALF` and `last` its 8 lanes in the low half. The
/// high half is then undefined: the FMAs and the store of such a vector are ymm ones, and
/// the epilogue's activation may compute on the high half but nothing stores it.
///
/// # Safety
/// The selected lanes are readable; AVX-512F is available.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn load<const HALF: bool>(last: bool, mask: __mmask16, src: *const f32) -> __m512 {
    // SAFETY: as for this function.
    unsafe {
        if HALF && last { _mm512_castps256_ps512(_mm256_loadu_ps(src)) } else { _mm512_maskz_loadu_ps(mask, src) }
    }
}
