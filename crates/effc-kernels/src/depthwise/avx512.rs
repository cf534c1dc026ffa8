//! The AVX-512F variant: 16 channels per vector, masked channel tails. Interior pixels go
//! eight (then four) at a time, sharing each weight load; border pixels compute four
//! channel vectors at once. Either way several independent FMA chains are in flight to
//! hide the FMA latency, which a single k×k chain per pixel would expose.

use std::arch::x86_64::*;

use super::DwParams;
use crate::prefetch::{self, Spread};
use crate::vector::avx512::activate;

const LANES: usize = 16;

/// See [`super::DwFn`] for the contract.
///
/// Channels go in groups of up to four vectors (64 channels): interior pixels one vector
/// at a time (their pixels give independent chains), border pixels all four vectors at
/// once, so the per-tap bounds arithmetic is shared and four chains are in flight.
///
/// # Safety
/// The pointers satisfy [`super::DwFn`]'s contract and the CPU supports AVX-512F.
#[target_feature(enable = "avx512f")]
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
    let mut pf = Spread::new(prefetch, p.prefetch_bytes, p.c.div_ceil(GROUP * LANES));
    while c0 < p.c {
        pf.step();
        // The next group's weights: kh·kw runs a pixel stride apart, too many streams for
        // the hardware prefetcher, and on the first row of a call they come from L3.
        let next = c0 + GROUP * LANES;
        if next < p.c {
            let bytes = (p.c - next).min(GROUP * LANES) * 4;
            for tap in 0..p.win.kh * p.win.kw {
                prefetch::block(p.weights.wrapping_add(tap * p.ld + next) as *const u8, bytes);
            }
        }
        let masks: [__mmask16; GROUP] = std::array::from_fn(|v| {
            let left = p.c.saturating_sub(c0 + v * LANES);
            if left >= LANES { 0xffff } else { ((1u32 << left) - 1) as __mmask16 }
        });
        let vectors = (p.c - c0).div_ceil(LANES).min(GROUP);
        // SAFETY (whole block): every access is at channel c0 + 16·v + lane with the
        // lane in `masks[v]`, so ch < c; pixels are < w (taps checked or interior) and < ow.
        unsafe {
            let bias: [__m512; GROUP] =
                std::array::from_fn(|v| _mm512_maskz_loadu_ps(masks[v], p.bias.wrapping_add(c0 + v * LANES)));
            let mut sum = [_mm512_setzero_ps(); GROUP];
            // Pixels px.. of channel vector v: activated, stored (the first `valid`), and
            // their sum added to the row's (once per group: `sum[v]` with a run-time v
            // lives in memory, and adding into it per pixel chained store-to-load latency).
            let mut store = |px: usize, v: usize, acc: &[__m512], valid: usize| {
                let mut part = _mm512_setzero_ps();
                for (q, &a) in acc.iter().enumerate().take(valid) {
                    let y = activate(a, &p.act);
                    _mm512_mask_storeu_ps(out.add((px + q) * p.ld + c0 + v * LANES), masks[v], y);
                    part = _mm512_add_ps(part, y);
                }
                sum[v] = _mm512_add_ps(sum[v], part);
            };
            let lanes = |v: usize| Lanes { rows, p, c0: c0 + v * LANES, mask: masks[v], bias: bias[v] };
            let mut ox = 0;
            // Seven-pixel groups for rows of 7 and 14 (B0's last stages), where eight
            // would compute one or two pixels that are thrown away.
            let seven = p.win.ow % 8 != 0 && p.win.ow % 7 == 0;
            while ox < p.win.ow && specialised(p) && seven {
                for v in 0..vectors {
                    let acc = window::<7, 3>(lanes(v), ox);
                    store(ox, v, &acc, 7);
                }
                ox += 7;
            }
            while ox < p.win.ow && specialised(p) {
                // Eight pixels at a time, border groups included: their taps outside the
                // row read as zeros, and pixels past the row's end are not stored.
                for v in 0..vectors {
                    let acc = window::<8, 4>(lanes(v), ox);
                    store(ox, v, &acc, p.win.ow - ox);
                }
                ox += 8;
            }
            while ox < p.win.ow {
                if ox >= lo && ox + 8 <= hi {
                    for v in 0..vectors {
                        let acc = interior::<8>(lanes(v), ox);
                        store(ox, v, &acc, 8);
                    }
                    ox += 8;
                } else if ox >= lo && ox + 4 <= hi {
                    for v in 0..vectors {
                        let acc = interior::<4>(lanes(v), ox);
                        store(ox, v, &acc, 4);
                    }
                    ox += 4;
                } else {
                    let acc = border(rows, p, ox, c0, masks, bias);
                    for (v, a) in acc.iter().enumerate().take(vectors) {
                        store(ox, v, std::slice::from_ref(a), 1);
                    }
                    ox += 1;
                }
            }
            if !sums.is_null() {
                for (v, &s) in sum.iter().enumerate().take(vectors) {
                    _mm512_mask_storeu_ps(sums.add(c0 + v * LANES), masks[v], s);
                }
            }
        }
        c0 += GROUP * LANES;
    }
}

/// Channel vectors a border pixel computes together.
const GROUP: usize = 4;

/// One channel vector of the row being computed: the input rows, the parameters, the
/// vector's first channel, its lanes and its bias.
#[derive(Clone, Copy)]
struct Lanes<'a> {
    rows: &'a [*const f32],
    p: &'a DwParams,
    c0: usize,
    mask: __mmask16,
    bias: __m512,
}

/// One pixel's sums over the taps inside the row for GROUP channel vectors from `c0`
/// (lanes outside `masks` are zero and untouched in memory).
///
/// # Safety
/// As in [`dw_row`]; `ox < ow`.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn border(
    rows: &[*const f32],
    p: &DwParams,
    ox: usize,
    c0: usize,
    masks: [__mmask16; GROUP],
    bias: [__m512; GROUP],
) -> [__m512; GROUP] {
    let (j_lo, j_hi) = p.win.taps(ox);
    let mut acc = bias;
    for (i, &row) in rows.iter().enumerate() {
        if row.is_null() {
            continue;
        }
        for j in j_lo..j_hi {
            let iw = ox * p.win.sw + j * p.win.dw - p.win.pw;
            let x = row.wrapping_add(iw * p.ld + c0);
            let w = p.weights.wrapping_add((i * p.win.kw + j) * p.ld + c0);
            for (v, a) in acc.iter_mut().enumerate() {
                // SAFETY: j is a tap inside the row, so iw < w; channels are in `masks[v]`.
                unsafe {
                    let xv = _mm512_maskz_loadu_ps(masks[v], x.wrapping_add(v * LANES));
                    let wv = _mm512_maskz_loadu_ps(masks[v], w.wrapping_add(v * LANES));
                    *a = _mm512_fmadd_ps(xv, wv, *a);
                }
            }
        }
    }
    acc
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
/// As in [`dw_row`], with `ox·SW` fitting an isize.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn window<const P: usize, const H: usize>(v: Lanes, ox: usize) -> [__m512; P] {
    // SAFETY: the same contract, passed on.
    unsafe {
        match (v.p.win.kw, v.p.win.sw) {
            (3, 1) => edged::<P, 3, 1>(v, ox),
            (5, 1) => edged::<P, 5, 1>(v, ox),
            (3, 2) => halves(edged::<4, 3, 2>(v, ox), edged::<H, 3, 2>(v, ox + 4)),
            _ => halves(edged::<4, 5, 2>(v, ox), edged::<H, 5, 2>(v, ox + 4)),
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
/// As in [`dw_row`], with `ox·SW` fitting an isize, `p.win.kw == KW`, `p.win.sw == SW` and
/// `p.win.dw == 1`.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn edged<const P: usize, const KW: usize, const SW: usize>(v: Lanes, ox: usize) -> [__m512; P] {
    let p = v.p;
    let w = p.win.w as isize;
    let base = (ox * SW) as isize - p.win.pw as isize;
    let span = ((P - 1) * SW + KW) as isize;
    let (starts_inside, ends_inside) = (base >= 0, base + span <= w);
    let same = p.win.pw == (KW - 1) / 2 && p.win.w == p.win.ow * SW;
    let (first, last) = (ox == 0, ox + P == p.win.ow);
    // SAFETY: each EDGE's condition, as `sliding` documents it, is the one tested here.
    unsafe {
        match (starts_inside, ends_inside) {
            (true, true) => sliding::<P, KW, SW, { edge::INTERIOR }>(v, ox),
            (false, true) if same && first => sliding::<P, KW, SW, { edge::LEFT }>(v, ox),
            (true, false) if same && last => sliding::<P, KW, SW, { edge::RIGHT }>(v, ox),
            (false, false) if same && first && last => sliding::<P, KW, SW, { edge::BOTH }>(v, ox),
            _ => sliding::<P, KW, SW, { edge::CHECKED }>(v, ox),
        }
    }
}

/// `a` then `b`, as one group of A + B = P pixels.
fn halves<const A: usize, const B: usize, const P: usize>(a: [__m512; A], b: [__m512; B]) -> [__m512; P] {
    std::array::from_fn(|q| if q < A { a[q] } else { b[q - A] })
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
/// As in [`dw_row`], with `ox·SW` fitting an isize, `p.win.kw == KW`, `p.win.sw == SW`,
/// `p.win.dw == 1`, and for the EDGE:
/// - INTERIOR: `ox..ox+P` lies in `p.win.interior()`;
/// - LEFT: `ox == 0`, `pw == (KW − 1)/2`, and the window's last column is inside the row;
/// - RIGHT: `ox + P == ow`, `pw == (KW − 1)/2`, `w == ow·SW`, and its first column is ≥ 0;
/// - BOTH: `ox == 0`, `P == ow`, `pw == (KW − 1)/2` and `w == ow·SW`.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn sliding<const P: usize, const KW: usize, const SW: usize, const EDGE: u8>(
    v: Lanes,
    ox: usize,
) -> [__m512; P] {
    let Lanes { rows, p, c0, mask, bias } = v;
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
            let w: [__m512; KW] =
                std::array::from_fn(|j| _mm512_maskz_loadu_ps(mask, p.weights.add((i * KW + j) * p.ld + c0)));
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
                    _mm512_setzero_ps()
                } else {
                    _mm512_maskz_loadu_ps(mask, px.wrapping_add(t * p.ld))
                };
                for (j, &wj) in w.iter().enumerate() {
                    if t >= j && (t - j) % SW == 0 && (t - j) / SW < P {
                        let q = (t - j) / SW;
                        acc[q] = _mm512_fmadd_ps(x, wj, acc[q]);
                    }
                }
            }
        }
    }
    acc
}

/// Sums of P interior output pixels from `ox` on, channels `c0 + mask`.
///
/// # Safety
/// `ox..ox+P` lies in `p.win.interior()`, so every tap's column is inside the row; the row
/// pointers and channels are as in [`dw_row`].
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn interior<const P: usize>(v: Lanes, ox: usize) -> [__m512; P] {
    let Lanes { rows, p, c0, mask, bias } = v;
    let mut acc = [bias; P];
    let base = ox * p.win.sw - p.win.pw;
    for (i, &row) in rows.iter().enumerate() {
        if row.is_null() {
            continue;
        }
        for j in 0..p.win.kw {
            // SAFETY: see the function's contract.
            unsafe {
                let w = _mm512_maskz_loadu_ps(mask, p.weights.add((i * p.win.kw + j) * p.ld + c0));
                let px = row.add((base + j * p.win.dw) * p.ld + c0);
                for (q, a) in acc.iter_mut().enumerate() {
                    let x = _mm512_maskz_loadu_ps(mask, px.add(q * p.win.sw * p.ld));
                    *a = _mm512_fmadd_ps(x, w, *a);
                }
            }
        }
    }
    acc
}
