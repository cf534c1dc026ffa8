//! The matrix product, written once over [`Simd`]: a register tile of M rows × V vectors
//! (V = [`NV`] but at a narrow column tail), whose shape is the instruction set's
//! parameter (`MR`, and `TALL`, the tallest remainder tile its registers hold), kept
//! over the whole K loop, broadcasting one element of A per row and loading one row of B
//! per step; then the epilogue on the registers and one store.
//!
//! Column tails: a lone half vector runs at half width (`HALF`: on cores that split wide
//! operations a half-width FMA takes half the issue slots of a masked full one; B0's
//! 40-channel projections on AVX-512); any other partial vector is masked (`TAIL`). A half
//! vector beside a full one (24 columns on AVX-512) is masked too: LLVM compiled that
//! mixed tile 3× slower than the masked one. Full vectors never touch a mask.

use super::GemmParams;
use crate::simd::{Cache, Simd, activate_all};

/// Vectors across a tile: 2·LANES columns, which divides a 32-column panel for every
/// instruction set (32, 16, 8).
pub const NV: usize = 2;

/// Vectors across the tile of a product of at most [`WIDE_ROWS`] rows (the classifier and
/// the squeeze-excite FCs, one row each) where they span a whole 32-column panel (AVX2,
/// portable): such a product streams B once from memory or L3, and tiles of [`NV`]
/// vectors read half of each 128-byte panel row per pass, which the AVX2 classifier paid
/// for with half the bandwidth of the AVX-512 one (whose two vectors are the panel).
const WIDE: usize = 4;

/// The most rows a [`WIDE`] tile takes: 3 × 4 accumulators, 4 of B and one of A fit in
/// 16 registers.
const WIDE_ROWS: usize = 3;

/// The matrices of a call, as [`super::GemmFn`] passes them.
#[derive(Clone, Copy)]
pub(super) struct Ptrs {
    pub a: *const f32,
    pub b: *const f32,
    pub out: *mut f32,
    pub res: *const f32,
    /// Per-K scale of B's rows, or null.
    pub kscale: *const f32,
}

/// The share of the next B panel one tile requests into L2 while it computes: from
/// `start`, `step` bytes further at each K step (0: none).
#[derive(Clone, Copy)]
pub(super) struct Ahead {
    start: *const u8,
    step: usize,
}

impl Ahead {
    /// Requests this K step's part (prefetches never fault, so any address is safe).
    #[inline(always)]
    fn request<S: Simd>(self, s: S, k: usize) {
        if self.step > 0 {
            let at = self.start.wrapping_add(k * self.step);
            s.prefetch(at, Cache::L2);
            if self.step > 64 {
                s.prefetch(at.wrapping_add(64), Cache::L2);
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
    /// tiles of a call over `rows` rows, so that the next panel's first tile finds B in
    /// L2: a cold weight panel otherwise streams in from memory at the pace of that tile's
    /// K loop (B0 at one thread, AVX-512: expand −0.13 ms, project −0.04). Only where the
    /// caller asks (`request_next_panel`: a packed B, whose next panel is the next
    /// contiguous run, too large to stay cached between calls), only for a next panel of
    /// the same call (after the last one may be unmapped memory), and not for one-row
    /// products, which are bandwidth-bound streams the hardware prefetcher already keeps
    /// up with.
    fn of_next_panel(b: *const f32, j0: usize, rows: usize, tiles: usize, p: &GemmParams) -> Tiles {
        let size = if p.b_scale.is_null() { 4 } else { 1 };
        let share = (p.k * p.ldb * size).div_ceil(tiles);
        // Only a panel of this call: past its last one may lie nothing mapped, and on a
        // Zen 1 prefetches there, two on every K step, made a one-panel product (56 × 32
        // × 288, MobileNetV4's first Fused-IB row) 14× slower: 3.1 GFLOP/s, not 44.6.
        let inside = j0 + super::PANEL < p.n;
        let step = if p.request_next_panel && rows > 1 && inside { share.div_ceil(p.k.max(1)) } else { 0 };
        let next = (b as *const u8).wrapping_add((p.b_col(j0) + p.panel_stride) * size);
        Tiles { next, share, step }
    }

    fn share(&self, tile: usize) -> Ahead {
        Ahead { start: self.next.wrapping_add(tile * self.share), step: self.step }
    }
}

/// One instruction set's [`tile`]s as functions of their own, compiled with its target
/// features, never inlined: a call per tile is nothing beside its K loop, and with all of
/// a product's tile shapes in one function LLVM stops inlining the intrinsics inside
/// them and allocates the registers of some tiles badly (3× slower).
///
/// # Safety
/// `tile` runs [`tile`] for `Self`, under the instruction set's target features.
pub(super) unsafe trait TileFn: Simd {
    /// [`tile`] for `Self`.
    ///
    /// # Safety
    /// As for [`tile`]; `s` is a token of a supported instruction set.
    unsafe fn tile<const M: usize, const V: usize, const HALF: bool, const TAIL: bool>(
        s: Self,
        t: TileAt<Self>,
        r0: usize,
        p: &GemmParams,
        ahead: Ahead,
    );
}

/// See [`super::GemmFn`] for the contract. Column panels of the tile's width run
/// outermost, so one panel of B stays in L1/L2 while every row tile passes over it.
///
/// # Safety
/// The pointers and `p` satisfy [`super::GemmFn`]'s contract; `s` is a token of a
/// supported instruction set; `MR ≤ TALL ≤ 14`.
#[inline(always)]
pub(super) unsafe fn gemm<S: TileFn, const MR: usize, const TALL: usize>(s: S, x: Ptrs, rows: usize, p: &GemmParams) {
    let lanes = S::LANES;
    let mut j0 = 0;
    let full = s.first(lanes);
    // SAFETY (all panels): the columns covered are < n.
    if rows <= WIDE_ROWS && WIDE * lanes == super::PANEL {
        while j0 + WIDE * lanes <= p.n {
            unsafe { column_panel::<S, WIDE_ROWS, WIDE_ROWS, WIDE, false, false>(s, x, j0, full, rows, p) };
            j0 += WIDE * lanes;
        }
    }
    while j0 + NV * lanes <= p.n {
        unsafe { column_panel::<S, MR, TALL, NV, false, false>(s, x, j0, full, rows, p) };
        j0 += NV * lanes;
    }
    let left = p.n - j0;
    if left == 0 {
        return;
    }
    let (whole, rest) = (left / lanes, left % lanes);
    let mask = s.first(if rest == 0 { lanes } else { rest });
    // SAFETY: `left` columns from j0: `whole` full vectors, then the rest (half or masked).
    unsafe {
        match (whole, rest) {
            (1, 0) => column_panel::<S, MR, TALL, 1, false, false>(s, x, j0, mask, rows, p),
            (0, r) if 2 * r == lanes => column_panel::<S, MR, TALL, 1, true, false>(s, x, j0, mask, rows, p),
            (0, _) => column_panel::<S, MR, TALL, 1, false, true>(s, x, j0, mask, rows, p),
            _ => column_panel::<S, MR, TALL, 2, false, true>(s, x, j0, mask, rows, p),
        }
    }
}

/// Every row of V vectors of columns from `j0`; the last vector is half wide (`HALF`) or
/// the lanes of `mask` (`TAIL`).
///
/// # Safety
/// The columns are < n; as for [`gemm`].
#[inline(always)]
unsafe fn column_panel<
    S: TileFn,
    const MR: usize,
    const TALL: usize,
    const V: usize,
    const HALF: bool,
    const TAIL: bool,
>(
    s: S,
    x: Ptrs,
    j0: usize,
    mask: S::Mask,
    rows: usize,
    p: &GemmParams,
) {
    // Full tiles while more than TALL rows are left: a remainder of up to TALL rows is
    // one taller tile (AVX-512: 13 or 14 rows still fit its 32 registers), not a full one
    // plus a 1- or 2-row tile that would reload the whole B panel for one or two rows.
    let full = if rows > TALL { (rows - (TALL - MR) - 1) / MR } else { 0 };
    let ahead = Tiles::of_next_panel(x.b, j0, rows, full + 1, p);
    let t = TileAt { x, j0, mask };
    // SAFETY (all tiles): rows r0..r0+M are < rows.
    for i in 0..full {
        unsafe { S::tile::<MR, V, HALF, TAIL>(s, t, i * MR, p, ahead.share(i)) };
    }
    let (r0, a) = (full * MR, ahead.share(full));
    macro_rules! rest {
        ($($m:literal)*) => {
            match rows - r0 {
                0 => {}
                // (The guard keeps the taller shapes, which only AVX-512 has registers
                // for, from being compiled for the others.)
                $($m if $m <= TALL => unsafe { S::tile::<$m, V, HALF, TAIL>(s, t, r0, p, a) },)*
                _ => unreachable!("a remainder tile is at most TALL ≤ 14 rows"),
            }
        };
    }
    rest!(1 2 3 4 5 6 7 8 9 10 11 12 13 14);
}

/// Where a tile's columns are: the matrices, its first column, the last vector's lanes.
#[derive(Clone, Copy)]
pub(super) struct TileAt<S: Simd> {
    x: Ptrs,
    j0: usize,
    mask: S::Mask,
}

/// Vector `v` of V at `src`: half wide or masked if it is the last and `HALF` or `TAIL`.
///
/// # Safety
/// The selected lanes are readable.
#[inline(always)]
unsafe fn load<S: Simd, const V: usize, const HALF: bool, const TAIL: bool>(
    s: S,
    v: usize,
    src: *const f32,
    mask: S::Mask,
) -> S::V {
    let last = v + 1 == V;
    // SAFETY: as for this function.
    unsafe {
        if HALF && last {
            s.load_half(src)
        } else if TAIL && last {
            s.load_part(src, mask)
        } else {
            s.load(src)
        }
    }
}

/// Stores vector `v` of V at `dst`: half wide or masked if it is the last and `HALF` or
/// `TAIL` (a half vector's high half is zeros: only the low half is stored).
///
/// # Safety
/// The selected lanes are writable.
#[inline(always)]
unsafe fn store<S: Simd, const V: usize, const HALF: bool, const TAIL: bool>(
    s: S,
    v: usize,
    dst: *mut f32,
    y: S::V,
    mask: S::Mask,
) {
    let last = v + 1 == V;
    // SAFETY: as for this function.
    unsafe {
        if HALF && last {
            s.store_half(dst, y)
        } else if TAIL && last {
            s.store_part(dst, y, mask)
        } else {
            s.store(dst, y)
        }
    }
}

/// The K loop of a tile: M × V accumulators from `init`; with `SCALED`, B's row k is
/// multiplied by `kscale[k]` as it is loaded; with `I8`, B holds int8 values, loaded
/// whole (each panel is 32 columns wide, zeros past n); with `TAPS`, A's column k is at
/// offset `a_taps[k]` of each row instead of k.
///
/// # Safety
/// As for [`tile`]; with `SCALED`, `x.kscale` holds K values; with `TAPS`, `p.a_taps`
/// holds K offsets.
#[inline(always)]
unsafe fn accumulate<
    S: Simd,
    const M: usize,
    const V: usize,
    const HALF: bool,
    const TAIL: bool,
    const SCALED: bool,
    const I8: bool,
    const TAPS: bool,
>(
    s: S,
    t: TileAt<S>,
    r0: usize,
    p: &GemmParams,
    init: [S::V; V],
    ahead: Ahead,
) -> [[S::V; V]; M] {
    let mut acc = [init; M];
    let a0 = t.x.a.wrapping_add(r0 * p.lda);
    let b0 = t.x.b.wrapping_add(p.b_col(t.j0));
    let b0_i8 = (t.x.b as *const i8).wrapping_add(p.b_col(t.j0));
    for k in 0..p.k {
        ahead.request(s, k);
        let brow = b0.wrapping_add(k * p.ldb);
        let brow_i8 = b0_i8.wrapping_add(k * p.ldb);
        let mut bv = [s.zero(); V];
        for (v, b) in bv.iter_mut().enumerate() {
            *b = if I8 {
                // SAFETY: the vector lies in row k of the tile's 32-column panel.
                unsafe { s.load_i8(brow_i8.wrapping_add(S::LANES * v)) }
            } else {
                // SAFETY: the vector's columns are < n, of row k of B.
                unsafe { load::<S, V, HALF, TAIL>(s, v, brow.wrapping_add(S::LANES * v), t.mask) }
            };
        }
        if SCALED {
            // SAFETY: k < K values of the scale.
            let g = s.splat(unsafe { *t.x.kscale.wrapping_add(k) });
            for b in bv.iter_mut() {
                *b = s.mul(*b, g);
            }
        }
        // SAFETY: k < K offsets.
        let at = if TAPS { unsafe { *p.a_taps.add(k) } } else { k };
        let a_k = a0.wrapping_add(at);
        for (r, acc_r) in acc.iter_mut().enumerate() {
            // SAFETY: row r0 + r < rows, and its column k is readable there.
            let av = s.splat(unsafe { *a_k.wrapping_add(r * p.lda) });
            for v in 0..V {
                acc_r[v] =
                    if HALF && v + 1 == V { s.fma_half(av, bv[v], acc_r[v]) } else { s.fma(av, bv[v], acc_r[v]) };
            }
        }
    }
    acc
}

/// An M × V-vector tile at (r0, t.j0).
///
/// # Safety
/// Rows `r0..r0+M` are inside the product and the tile's columns (the last vector's as
/// `HALF` or `TAIL` select) are < n; as for [`gemm`].
#[inline(always)]
pub(super) unsafe fn tile<S: Simd, const M: usize, const V: usize, const HALF: bool, const TAIL: bool>(
    s: S,
    t: TileAt<S>,
    r0: usize,
    p: &GemmParams,
    ahead: Ahead,
) {
    // The accumulators start at the bias: one add fewer per output vector in the epilogue,
    // which dominates small-K products.
    let mut bias = [s.zero(); V];
    if !p.bias.is_null() {
        for (v, b) in bias.iter_mut().enumerate() {
            // SAFETY: the vector's columns are < n; bias holds n values.
            *b = unsafe { load::<S, V, HALF, TAIL>(s, v, p.bias.wrapping_add(t.j0 + S::LANES * v), t.mask) };
        }
    }
    debug_assert!(
        p.a_taps.is_null() || (t.x.kscale.is_null() && p.b_scale.is_null()),
        "A read through taps takes neither a K scale nor int8 weights"
    );
    // SAFETY (the five K loops): as for this function; kscale holds K values if not null,
    // a_taps K offsets if not null (and then neither kscale nor b_scale is set).
    let mut acc = match (t.x.kscale.is_null(), p.b_scale.is_null()) {
        (true, true) if !p.a_taps.is_null() => unsafe {
            accumulate::<S, M, V, HALF, TAIL, false, false, true>(s, t, r0, p, bias, ahead)
        },
        (true, true) => unsafe { accumulate::<S, M, V, HALF, TAIL, false, false, false>(s, t, r0, p, bias, ahead) },
        (false, true) => unsafe { accumulate::<S, M, V, HALF, TAIL, true, false, false>(s, t, r0, p, bias, ahead) },
        // Int8 weights: the sums scale by column, then the bias joins.
        (unscaled, false) => {
            let zero = [s.zero(); V];
            let mut acc = if unscaled {
                unsafe { accumulate::<S, M, V, HALF, TAIL, false, true, false>(s, t, r0, p, zero, ahead) }
            } else {
                unsafe { accumulate::<S, M, V, HALF, TAIL, true, true, false>(s, t, r0, p, zero, ahead) }
            };
            let mut scale = [s.zero(); V];
            for (v, c) in scale.iter_mut().enumerate() {
                // SAFETY: the vector's columns are < n; b_scale holds n values.
                *c = unsafe { load::<S, V, HALF, TAIL>(s, v, p.b_scale.wrapping_add(t.j0 + S::LANES * v), t.mask) };
            }
            for acc_r in acc.iter_mut() {
                for v in 0..V {
                    acc_r[v] = s.fma(acc_r[v], scale[v], bias[v]);
                }
            }
            acc
        }
    };
    if !t.x.res.is_null() {
        for (r, acc_r) in acc.iter_mut().enumerate() {
            for (v, y) in acc_r.iter_mut().enumerate() {
                let at = t.x.res.wrapping_add((r0 + r) * p.ldr + t.j0 + S::LANES * v);
                // SAFETY: (r0 + r, the vector's columns) is inside the residual.
                *y = s.add(*y, unsafe { load::<S, V, HALF, TAIL>(s, v, at, t.mask) });
            }
        }
    }
    for (r, acc_r) in acc.iter_mut().enumerate() {
        activate_all(s, std::array::from_mut(acc_r), &p.act);
        for (v, &y) in acc_r.iter().enumerate() {
            let dst = t.x.out.wrapping_add((r0 + r) * p.ldo + t.j0 + S::LANES * v);
            // SAFETY: (r0 + r, the vector's columns) is inside the output.
            unsafe { store::<S, V, HALF, TAIL>(s, v, dst, y, t.mask) };
        }
    }
}
