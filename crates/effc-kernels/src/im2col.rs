//! Gathers one output row's receptive fields into a patch matrix, so a convolution with
//! few input channels (the stem: 3) runs as one GEMM call per row instead of per-tap
//! vector code over 3 channels.

use crate::RowWindow;

/// One convolution's rows: input with dense pixels, channels last or in planes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Im2colParams {
    /// Input channels.
    pub c: usize,
    /// 0 for channels-last rows (pixels `c` apart); otherwise the distance between
    /// channel planes of a channels-first input (pixels adjacent): the model's own NCHW
    /// input, read where the caller put it instead of copied into channels-last first.
    pub plane: usize,
    /// The window; the patch has `win.ow` rows.
    pub win: RowWindow,
    /// Whether the pixels of `win.interior()` are left unwritten: the product reads them
    /// from the input itself (`GemmParams::a_taps`), so only the border is gathered.
    pub border_only: bool,
}

/// `im2col_row(rows, patch, params)`, with `iw = ox·sw − pw + j·dw`, and 0 where the row
/// is null or `iw` is outside `0..w` (for every output pixel, or with `border_only` for
/// those outside `win.interior()`):
/// - channels last (`plane` 0): `patch[ox][(i·kw + j)·c + ch] = rows[i][iw·c + ch]`;
/// - channel planes: `patch[ox][(i·c + ch)·kw + j] = rows[i][ch·plane + iw]` (so a
///   kernel row's taps in one plane are still one run; the weights are packed to match).
///
/// # Safety
/// `rows` points at `kh` pointers, each null or readable at `[iw·c + ch]` (channels
/// last) or `[ch·plane + iw]` (planes) for `iw < w`, `ch < c`; `patch` is writable at
/// `ow·kh·kw·c` elements; `params` is valid.
#[unsafe(export_name = "effc_rt_im2col_row")]
pub unsafe extern "C" fn im2col_row(rows: *const *const f32, patch: *mut f32, params: *const Im2colParams) {
    // SAFETY: the caller passes valid params, `kh` row pointers and the patch.
    let p = unsafe { &*params };
    let rows = unsafe { std::slice::from_raw_parts(rows, p.win.kh) };
    let k = p.win.kh * p.win.kw * p.c;
    let patch = unsafe { std::slice::from_raw_parts_mut(patch, p.win.ow * k) };
    if p.plane != 0 {
        // SAFETY: forwarded from the caller's contract for channel planes.
        unsafe { planes(rows, patch, p) };
        return;
    }
    let (lo, hi) = p.win.interior();
    // Interior pixels without dilation read each kernel row's taps as one run of kw·c
    // consecutive values: copied kernel row by kernel row, so each pass streams one input
    // row, through raw pointers (the stem's runs are 9 values: fixed-size moves, no
    // per-pixel bounds checks).
    let run = p.win.kw * p.c;
    let as_runs = p.win.dw == 1 && lo < hi && !p.border_only;
    if as_runs {
        let step = p.win.sw * p.c;
        for (i, &row) in rows.iter().enumerate() {
            let dst = patch[lo * k + i * run..].as_mut_ptr();
            if row.is_null() {
                for ox in lo..hi {
                    patch[ox * k + i * run..][..run].fill(0.0);
                }
                continue;
            }
            // SAFETY: an interior pixel's taps are all inside the row (columns
            // (ox·sw − pw).. + kw are < w), and its patch row holds k ≥ (i + 1)·run values
            // from i·run; the source row and the patch do not overlap.
            unsafe {
                let src = row.add((lo * p.win.sw - p.win.pw) * p.c);
                copy_runs(src, step, dst, k, run, hi - lo);
            }
        }
    }
    for (ox, dst) in patch.chunks_exact_mut(k).enumerate() {
        if (as_runs || p.border_only) && (lo..hi).contains(&ox) {
            continue;
        }
        for (i, &row) in rows.iter().enumerate() {
            for j in 0..p.win.kw {
                let tap = &mut dst[(i * p.win.kw + j) * p.c..][..p.c];
                match p.win.column(ox, j) {
                    // SAFETY: iw < w, so the pixel's c channels are inside the row, and
                    // the tap holds c values of the patch.
                    Some(iw) if !row.is_null() => unsafe {
                        copy_runs(row.add(iw * p.c), 0, tap.as_mut_ptr(), 0, p.c, 1)
                    },
                    _ => tap.fill(0.0),
                }
            }
        }
    }
}

/// `im2col_row` for channel planes: per kernel row and channel, the `kw` taps of each
/// output pixel are one run of the plane's row (interior pixels without dilation).
///
/// # Safety
/// As `im2col_row`'s, for `p.plane != 0`; `patch` holds `ow·kh·kw·c` values.
unsafe fn planes(rows: &[*const f32], patch: &mut [f32], p: &Im2colParams) {
    let win = &p.win;
    let (k, run) = (win.kh * win.kw * p.c, win.kw);
    let (lo, hi) = win.interior();
    let runs = win.dw == 1 && lo < hi && !p.border_only;
    let interior = |ox: &usize| (lo..hi).contains(ox);
    // Interior pixels are copied as runs or, border only, left alone; the rest tap by tap.
    let left_out = |ox: &usize| p.border_only && interior(ox);
    let tap_by_tap = |ox: &usize| !(left_out(ox) || runs && interior(ox));
    for (i, &row) in rows.iter().enumerate() {
        for ch in 0..p.c {
            let col = (i * p.c + ch) * run;
            if row.is_null() {
                for ox in (0..win.ow).filter(|ox| !left_out(ox)) {
                    patch[ox * k + col..][..run].fill(0.0);
                }
                continue;
            }
            // SAFETY: channel `ch`'s plane row starts `ch·plane` values into the row.
            let plane = unsafe { row.add(ch * p.plane) };
            if runs {
                // SAFETY: an interior pixel's taps (columns (ox·sw − pw).. + kw) are inside
                // the plane's row, and its patch row holds `run` values from `col`; the
                // input and the patch do not overlap.
                unsafe {
                    let src = plane.add(lo * win.sw - win.pw);
                    copy_runs(src, win.sw, patch[lo * k + col..].as_mut_ptr(), k, run, hi - lo);
                }
            }
            for ox in (0..win.ow).filter(tap_by_tap) {
                for j in 0..run {
                    // SAFETY: `column` gives only iw < w, inside the plane's row.
                    patch[ox * k + col + j] = win.column(ox, j).map_or(0.0, |iw| unsafe { *plane.add(iw) });
                }
            }
        }
    }
}

/// `count` runs of `run` values, the n-th from `src + n·src_step` to `dst + n·dst_step`;
/// the stem's lengths (a kernel row's 9 taps, a pixel's 3 channels) as constants, which
/// the compiler turns into a few moves where a `memcpy` call would cost more than the data.
///
/// # Safety
/// Every run is readable at its source and writable at its destination, and they do not
/// overlap.
#[inline]
unsafe fn copy_runs(src: *const f32, src_step: usize, dst: *mut f32, dst_step: usize, run: usize, count: usize) {
    #[inline(always)]
    unsafe fn each<const N: usize>(src: *const f32, src_step: usize, dst: *mut f32, dst_step: usize, count: usize) {
        for n in 0..count {
            // SAFETY: the caller's contract, run by run.
            unsafe { std::ptr::copy_nonoverlapping(src.add(n * src_step), dst.add(n * dst_step), N) };
        }
    }
    // SAFETY (all): forwarded from the caller.
    unsafe {
        match run {
            9 => each::<9>(src, src_step, dst, dst_step, count),
            3 => each::<3>(src, src_step, dst, dst_step, count),
            _ => {
                for n in 0..count {
                    std::ptr::copy_nonoverlapping(src.add(n * src_step), dst.add(n * dst_step), run);
                }
            }
        }
    }
}
