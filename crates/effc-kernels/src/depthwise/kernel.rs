//! The depthwise row, written once over [`Simd`]: channel vectors in groups of up to
//! [`GROUP`]; rows of 7 and 14 pixels in groups of seven, others in groups of eight (4 + 4
//! or 4 + 3 at stride 2), through [`sliding`] windows specialised per kernel width and
//! stride, whose row-edge padding is skipped at compile time; other windows through
//! interior pixel groups and bounds-checked border pixels. Several independent
//! multiply-add chains are in flight in each, to hide the FMA latency that one k×k chain
//! per pixel would expose. A group of eight 5-tap pixels holds 8 accumulators, 5 weights
//! and one input: 14 registers, inside AVX2's 16.
//!
//! Only a group's last channel vector can be partial; it alone runs with `TAIL` (masked
//! loads and stores), full vectors never touch a mask.

use super::DwParams;
use crate::prefetch::{self, Spread};
use crate::simd::{self, Simd, activate_all};

/// Channel vectors a group computes (border pixels all at once).
const GROUP: usize = 4;

/// See [`super::DwFn`] for the contract.
///
/// # Safety
/// The pointers satisfy [`super::DwFn`]'s contract; `s` is a token of a supported
/// instruction set.
#[inline(always)]
pub unsafe fn dw_row<S: WindowFn>(
    s: S,
    rows: *const *const f32,
    out: *mut f32,
    sums: *mut f32,
    params: *const DwParams,
    prefetch: *const u8,
) {
    // SAFETY: the caller passes valid params and `kh` row pointers.
    let p = unsafe { &*params };
    let rows = unsafe { std::slice::from_raw_parts(rows, p.win.kh) };
    let lanes = S::LANES;
    let mut c0 = 0;
    let mut pf = Spread::new(prefetch, p.prefetch_bytes, p.c.div_ceil(GROUP * lanes));
    while c0 < p.c {
        pf.step(s);
        // The next group's weights: kh·kw runs a pixel stride apart, too many streams for
        // the hardware prefetcher, and on the first row of a call they come from L3.
        let next = c0 + GROUP * lanes;
        if next < p.c {
            let bytes = (p.c - next).min(GROUP * lanes) * 4;
            for tap in 0..p.win.kh * p.win.kw {
                prefetch::block(s, p.weights.wrapping_add(tap * p.ld + next) as *const u8, bytes);
            }
        }
        let vectors = (p.c - c0).div_ceil(lanes).min(GROUP);
        // Channels in the group's last vector: the ones left, but at most a vector's (a
        // group of GROUP full vectors may have more channels after it).
        let last = (p.c - (c0 + (vectors - 1) * lanes)).min(lanes);
        let g = Group { rows, p, c0, vectors, tail: last < lanes, mask: s.first(last) };
        // SAFETY: the group's channels are < c (its last vector's lanes in `mask`).
        let sum = unsafe { group(s, g, out) };
        if !sums.is_null() {
            for (v, &sv) in sum.iter().enumerate().take(vectors) {
                // SAFETY: `sums` holds c values.
                unsafe { g.store(s, v, sums.wrapping_add(c0 + v * lanes), sv) };
            }
        }
        c0 += GROUP * lanes;
    }
}

/// One channel group of the row: its first channel, vectors, and the last vector's lanes.
#[derive(Clone, Copy)]
pub(super) struct Group<'a, S: Simd> {
    rows: &'a [*const f32],
    p: &'a DwParams,
    c0: usize,
    vectors: usize,
    /// Whether the last vector is partial (then only `mask`'s lanes are real).
    tail: bool,
    mask: S::Mask,
}

impl<S: Simd> Group<'_, S> {
    /// Whether vector `v` is the partial one.
    #[inline(always)]
    fn partial(self, v: usize) -> bool {
        self.tail && v + 1 == self.vectors
    }

    /// Vector `v`'s channels at `at` (the partial one's through its mask).
    ///
    /// # Safety
    /// The vector's channels are readable at `at`.
    #[inline(always)]
    unsafe fn load(self, s: S, v: usize, at: *const f32) -> S::V {
        // SAFETY: as for this function.
        unsafe { if self.partial(v) { s.load_part(at, self.mask) } else { s.load(at) } }
    }

    /// Stores vector `v`'s channels at `at` (the partial one's through its mask).
    ///
    /// # Safety
    /// The vector's channels are writable at `at`.
    #[inline(always)]
    unsafe fn store(self, s: S, v: usize, at: *mut f32, y: S::V) {
        // SAFETY: as for this function.
        unsafe { if self.partial(v) { s.store_part(at, y, self.mask) } else { s.store(at, y) } }
    }

    /// Vector `v`'s bias.
    #[inline(always)]
    fn bias(self, s: S, v: usize) -> S::V {
        // SAFETY: the bias holds c values, and the vector's channels are < c.
        unsafe { self.load(s, v, self.p.bias.wrapping_add(self.c0 + v * S::LANES)) }
    }

    /// Activates and stores the pixels of `acc` from `ox` that are inside the row (vector
    /// `v`); their sum, which joins the row's once per group (a sum indexed at run time
    /// lives in memory, and adding into it per pixel chained store-to-load latency).
    ///
    /// # Safety
    /// `out` is the output row; as in [`group`].
    #[inline(always)]
    unsafe fn store_pixels<const P: usize>(self, s: S, v: usize, ox: usize, acc: [S::V; P], out: *mut f32) -> S::V {
        let p = self.p;
        let valid = p.win.ow.saturating_sub(ox).min(P);
        let mut part = s.zero();
        // All P pixels activated at once (past the row's end too: cheaper than choosing
        // the activation per pixel).
        let mut acc = acc;
        activate_all(s, std::array::from_mut(&mut acc), &p.act);
        // Every q a constant (the array stays in registers; a slice or a loop bounded by
        // `valid` would keep it in memory).
        for (q, &y) in acc.iter().enumerate() {
            if q >= valid {
                break;
            }
            let at = out.wrapping_add((ox + q) * p.ld + self.c0 + v * S::LANES);
            // SAFETY: pixel ox + q < ow, channels of vector v.
            unsafe { self.store(s, v, at, y) };
            part = s.add(part, y);
        }
        part
    }
}

/// Computes and stores the group's pixels; returns each vector's sum over the row.
///
/// # Safety
/// As in [`dw_row`], for the group's channels.
#[inline(always)]
unsafe fn group<S: WindowFn>(s: S, g: Group<S>, out: *mut f32) -> [S::V; GROUP] {
    let p = g.p;
    let mut sum = [s.zero(); GROUP];
    // SAFETY (whole body): every access is at a channel of the group's vectors, the
    // partial one only through TAIL's masked loads and stores; pixels are < w (taps
    // checked, interior, or padding skipped at compile time) and stored only if < ow.
    unsafe {
        let (lo, hi) = p.win.interior();
        let mut ox = 0;
        if specialised(p) {
            // Seven-pixel groups for rows of 7 and 14 (B0's last stages), where eight
            // would compute one or two pixels that are thrown away.
            let seven = !p.win.ow.is_multiple_of(8) && p.win.ow.is_multiple_of(7);
            while seven && ox < p.win.ow {
                for (v, sv) in sum.iter_mut().enumerate().take(g.vectors) {
                    *sv = s.add(*sv, S::run_vector::<7, 3, true>(s, g, v, ox, out));
                }
                ox += 7;
            }
            // Eight pixels at a time, border groups included: their taps outside the row
            // read as zeros, and pixels past the row's end are not stored.
            while ox < p.win.ow {
                for (v, sv) in sum.iter_mut().enumerate().take(g.vectors) {
                    *sv = s.add(*sv, S::run_vector::<8, 4, true>(s, g, v, ox, out));
                }
                ox += 8;
            }
            return sum;
        }
        while ox < p.win.ow {
            if ox >= lo && ox + 8 <= hi {
                for (v, sv) in sum.iter_mut().enumerate().take(g.vectors) {
                    *sv = s.add(*sv, S::run_vector::<8, 4, false>(s, g, v, ox, out));
                }
                ox += 8;
            } else if ox >= lo && ox + 4 <= hi {
                for (v, sv) in sum.iter_mut().enumerate().take(g.vectors) {
                    *sv = s.add(*sv, S::run_vector::<4, 4, false>(s, g, v, ox, out));
                }
                ox += 4;
            } else {
                let acc = border(s, g, ox);
                for (v, sv) in sum.iter_mut().enumerate().take(g.vectors) {
                    *sv = s.add(*sv, g.store_pixels(s, v, ox, [acc[v]], out));
                }
                ox += 1;
            }
        }
    }
    sum
}

/// Vector `v`'s P pixels from `ox`, through the specialised [`window`] (`SLIDING`, as
/// 4 + H at stride 2) or [`interior`], stored; their sum. (A const parameter rather than a
/// function argument: everything must inline into the entry function to get its target
/// features.)
///
/// # Safety
/// As in [`group`], with the window [`specialised`] for `SLIDING`, or the pixels interior.
#[inline(always)]
pub(super) unsafe fn run_vector<S: Simd, const P: usize, const H: usize, const SLIDING: bool>(
    s: S,
    g: Group<S>,
    v: usize,
    ox: usize,
    out: *mut f32,
) -> S::V {
    let d = Dest { g, v, c0: g.c0 + v * S::LANES, bias: g.bias(s, v), out };
    // SAFETY: forwarded; the partial vector runs with TAIL.
    unsafe {
        match (SLIDING, g.partial(v)) {
            (true, false) => window::<S, P, H, false>(s, d, ox),
            (true, true) => window::<S, P, H, true>(s, d, ox),
            (false, false) => interior::<S, P, false>(s, d, ox),
            (false, true) => interior::<S, P, true>(s, d, ox),
        }
    }
}

/// One channel vector of the row being computed: its group, index, first channel and
/// bias, and the output row. The functions that compute its pixels store them too and
/// return only their sum: returning the accumulator arrays through a `match` merges them
/// in memory.
#[derive(Clone, Copy)]
struct Dest<'a, S: Simd> {
    g: Group<'a, S>,
    v: usize,
    c0: usize,
    bias: S::V,
    out: *mut f32,
}

impl<S: Simd> Dest<'_, S> {
    /// Stores the pixels of `acc` from `ox` that are inside the row; their sum.
    ///
    /// # Safety
    /// As in [`group`].
    #[inline(always)]
    unsafe fn store<const P: usize>(self, s: S, ox: usize, acc: [S::V; P]) -> S::V {
        // SAFETY: as for this function.
        unsafe { self.g.store_pixels(s, self.v, ox, acc, self.out) }
    }
}

/// One pixel's sums over the taps inside the row for the group's vectors.
///
/// # Safety
/// As in [`group`]; `ox < ow`.
#[inline(always)]
unsafe fn border<S: WindowFn>(s: S, g: Group<S>, ox: usize) -> [S::V; GROUP] {
    let p = g.p;
    let (j_lo, j_hi) = p.win.taps(ox);
    let mut acc = [s.zero(); GROUP];
    for (v, a) in acc.iter_mut().enumerate().take(g.vectors) {
        *a = g.bias(s, v);
    }
    for (i, &row) in g.rows.iter().enumerate() {
        if row.is_null() {
            continue;
        }
        for j in j_lo..j_hi {
            let iw = ox * p.win.sw + j * p.win.dw - p.win.pw;
            let x = row.wrapping_add(iw * p.ld + g.c0);
            let w = p.weights.wrapping_add((i * p.win.kw + j) * p.ld + g.c0);
            for (v, a) in acc.iter_mut().enumerate().take(g.vectors) {
                // SAFETY: j is a tap inside the row, so iw < w; the channels are the
                // vector's.
                let (xv, wv) =
                    unsafe { (g.load(s, v, x.wrapping_add(v * S::LANES)), g.load(s, v, w.wrapping_add(v * S::LANES))) };
                *a = s.fma(xv, wv, *a);
            }
        }
    }
    acc
}

/// One instruction set's [`run_vector`]s (a channel vector's pixel group: computed,
/// activated, stored) as functions of their own, compiled with its target features and
/// never inlined: in one function with every other window shape LLVM allocates their
/// registers badly, and a function that returned the accumulators would keep them in its
/// return slot in memory (both halve the speed).
///
/// # Safety
/// `run_vector` runs [`run_vector`] for `Self`, under the instruction set's target features.
pub(super) unsafe trait WindowFn: Simd {
    /// [`run_vector`] for `Self`.
    ///
    /// # Safety
    /// As for [`run_vector`]; `s` is a token of a supported instruction set.
    unsafe fn run_vector<const P: usize, const H: usize, const SLIDING: bool>(
        s: Self,
        g: Group<Self>,
        v: usize,
        ox: usize,
        out: *mut f32,
    ) -> Self::V;
}

/// Whether the window is one of B0's (3×3 or 5×5, stride 1 or 2, no dilation), which
/// [`window`] runs with code specialised per window.
fn specialised(p: &DwParams) -> bool {
    matches!((p.win.kw, p.win.sw, p.win.dw), (3 | 5, 1 | 2, 1))
}

/// P pixels from `ox` through [`sliding`] for a [`specialised`] window. With stride 2,
/// eight pixels at once unroll past what LLVM keeps in registers, so the group runs as
/// 4 + H pixels (H = P − 4).
///
/// # Safety
/// As in [`dw_row`], with `ox·SW` fitting an isize; with `TAIL`, `v.mask` selects the
/// vector's real channels.
#[inline(always)]
unsafe fn window<S: Simd, const P: usize, const H: usize, const TAIL: bool>(s: S, v: Dest<S>, ox: usize) -> S::V {
    // SAFETY: the same contract, passed on.
    unsafe {
        match (v.g.p.win.kw, v.g.p.win.sw) {
            (3, 1) => edged::<S, P, 3, 1, TAIL>(s, v, ox),
            (5, 1) => edged::<S, P, 5, 1, TAIL>(s, v, ox),
            (3, 2) => s.add(edged::<S, 4, 3, 2, TAIL>(s, v, ox), edged::<S, H, 3, 2, TAIL>(s, v, ox + 4)),
            _ => s.add(edged::<S, 4, 5, 2, TAIL>(s, v, ox), edged::<S, H, 5, 2, TAIL>(s, v, ox + 4)),
        }
    }
}

/// Where a window's input columns may leave the row, as [`sliding`]'s EDGE parameter.
/// With "same" padding (pw = (KW − 1)/2) and w = ow·SW, as in every EfficientNet, a
/// window at the start or end of the row has padding columns known at compile time, so
/// the code for those windows (all of them on 7- and 14-pixel rows) skips their loads and
/// multiply-adds instead of testing each column at run time.
mod edge {
    /// Every column inside the row.
    pub const INTERIOR: u8 = 0;
    /// The window starts the row: its first pw columns are padding, the rest inside.
    pub const LEFT: u8 = 1;
    /// The window ends the row: columns from P·SW + pw on are padding, the rest inside.
    pub const RIGHT: u8 = 2;
    /// Both: the window is the whole row.
    pub const BOTH: u8 = 3;
    /// Anything else: each column is tested at run time.
    pub const CHECKED: u8 = 4;
}

/// [`sliding`] with the EDGE that fits the P pixels from `ox`.
///
/// # Safety
/// As in [`window`], with `p.win.kw == KW`, `p.win.sw == SW` and `p.win.dw == 1`.
#[inline(always)]
unsafe fn edged<S: Simd, const P: usize, const KW: usize, const SW: usize, const TAIL: bool>(
    s: S,
    v: Dest<S>,
    ox: usize,
) -> S::V {
    let p = v.g.p;
    let w = p.win.w as isize;
    let base = (ox * SW) as isize - p.win.pw as isize;
    let span = ((P - 1) * SW + KW) as isize;
    let (starts_inside, ends_inside) = (base >= 0, base + span <= w);
    let same = p.win.pw == (KW - 1) / 2 && p.win.w == p.win.ow * SW;
    let (first, last) = (ox == 0, ox + P == p.win.ow);
    // SAFETY: each EDGE's condition, as `sliding` documents it, is the one tested here.
    unsafe {
        match (starts_inside, ends_inside) {
            (true, true) => sliding::<S, P, KW, SW, { edge::INTERIOR }, TAIL>(s, v, ox),
            (false, true) if same && first => sliding::<S, P, KW, SW, { edge::LEFT }, TAIL>(s, v, ox),
            (true, false) if same && last => sliding::<S, P, KW, SW, { edge::RIGHT }, TAIL>(s, v, ox),
            (false, false) if same && first && last => sliding::<S, P, KW, SW, { edge::BOTH }, TAIL>(s, v, ox),
            _ => sliding::<S, P, KW, SW, { edge::CHECKED }, TAIL>(s, v, ox),
        }
    }
}

/// P pixels from `ox` for a window known at compile time (KW taps, stride SW, no
/// dilation): each input pixel of the span is loaded once per kernel row and feeds every
/// tap that reads it, with the row's KW weight vectors held in registers. That is
/// (P−1)·SW + KW loads per kernel row instead of P·KW, which matters because the rows of
/// wide layers live in L2, not L1. Columns outside the row count as zeros: with
/// [`edge::CHECKED`] each is tested (so border pixels, and pixels past the row's end,
/// whose results the caller drops, take the same path); with the other EDGEs they are
/// known at compile time and skipped.
///
/// # Safety
/// As in [`window`], with `p.win.kw == KW`, `p.win.sw == SW`, `p.win.dw == 1`, and for the
/// EDGE:
/// - INTERIOR: `ox..ox+P` lies in `p.win.interior()`;
/// - LEFT: `ox == 0`, `pw == (KW − 1)/2`, and the window's last column is inside the row;
/// - RIGHT: `ox + P == ow`, `pw == (KW − 1)/2`, `w == ow·SW`, and its first column is ≥ 0;
/// - BOTH: `ox == 0`, `P == ow`, `pw == (KW − 1)/2` and `w == ow·SW`.
#[inline(always)]
unsafe fn sliding<S: Simd, const P: usize, const KW: usize, const SW: usize, const EDGE: u8, const TAIL: bool>(
    s: S,
    d: Dest<S>,
    ox: usize,
) -> S::V {
    let Dest { g: Group { rows, p, mask, .. }, c0, bias, .. } = d;
    let mut acc = [bias; P];
    let base = (ox * SW) as isize - p.win.pw as isize;
    for (i, &row) in rows.iter().enumerate() {
        if row.is_null() {
            continue;
        }
        // SAFETY: see the function's contract; input column base + t for t < (P−1)·SW + KW
        // is the tap (t − j) / SW of pixel ox + q: inside the row when ox..ox+P is
        // interior; for LEFT, RIGHT and BOTH, exactly the columns skipped as padding lie
        // outside it (base = −pw at the start; base + P·SW + pw = w at the end); with
        // CHECKED, loaded only if inside it.
        unsafe {
            let mut w = [s.zero(); KW];
            for (j, wj) in w.iter_mut().enumerate() {
                *wj = simd::load::<S, TAIL>(s, p.weights.add((i * KW + j) * p.ld + c0), mask);
            }
            let px = row.wrapping_offset(base * p.ld as isize).wrapping_add(c0);
            for t in 0..(P - 1) * SW + KW {
                let (left_pad, right_pad) = (t < (KW - 1) / 2, t >= P * SW + (KW - 1) / 2);
                let padding = match EDGE {
                    edge::LEFT => left_pad,
                    edge::RIGHT => right_pad,
                    edge::BOTH => left_pad || right_pad,
                    _ => false,
                };
                if padding {
                    continue;
                }
                let col = base + t as isize;
                let x = if EDGE == edge::CHECKED && !(0..p.win.w as isize).contains(&col) {
                    s.zero()
                } else {
                    simd::load::<S, TAIL>(s, px.wrapping_add(t * p.ld), mask)
                };
                for (j, &wj) in w.iter().enumerate() {
                    if t >= j && (t - j) % SW == 0 && (t - j) / SW < P {
                        let q = (t - j) / SW;
                        acc[q] = s.fma(x, wj, acc[q]);
                    }
                }
            }
        }
    }
    // SAFETY: as for this function.
    unsafe { d.store(s, ox, acc) }
}

/// Sums of P interior output pixels from `ox` on.
///
/// # Safety
/// `ox..ox+P` lies in `p.win.interior()`, so every tap's column is inside the row; the row
/// pointers and channels are as in [`window`].
#[inline(always)]
unsafe fn interior<S: Simd, const P: usize, const TAIL: bool>(s: S, d: Dest<S>, ox: usize) -> S::V {
    let Dest { g: Group { rows, p, mask, .. }, c0, bias, .. } = d;
    let mut acc = [bias; P];
    let base = ox * p.win.sw - p.win.pw;
    for (i, &row) in rows.iter().enumerate() {
        if row.is_null() {
            continue;
        }
        for j in 0..p.win.kw {
            // SAFETY: see the function's contract.
            unsafe {
                let w = simd::load::<S, TAIL>(s, p.weights.add((i * p.win.kw + j) * p.ld + c0), mask);
                let px = row.add((base + j * p.win.dw) * p.ld + c0);
                for (q, a) in acc.iter_mut().enumerate() {
                    let x = simd::load::<S, TAIL>(s, px.add(q * p.win.sw * p.ld), mask);
                    *a = s.fma(x, w, *a);
                }
            }
        }
    }
    // SAFETY: as for this function.
    unsafe { d.store(s, ox, acc) }
}
