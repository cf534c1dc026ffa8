//! Gathers one output row's receptive fields into a patch matrix, so a convolution with
//! few input channels (the stem: 3) runs as one GEMM call per row instead of per-tap
//! vector code over 3 channels.

use crate::RowWindow;

/// One convolution's rows: channels-last input with dense pixels.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Im2colParams {
    /// Input channels (the pixel stride of input rows).
    pub c: usize,
    /// The window; the patch has `win.ow` rows.
    pub win: RowWindow,
}

/// `im2col_row(rows, patch, params)`: `patch[ox][(i·kw + j)·c + ch] = rows[i][iw·c + ch]`
/// with `iw = ox·sw − pw + j·dw`, or 0 where the row is null or `iw` is outside `0..w`.
///
/// # Safety
/// `rows` points at `kh` pointers, each null or readable at `[iw·c + ch]` for `iw < w`,
/// `ch < c`; `patch` is writable at `ow·kh·kw·c` elements; `params` is valid.
pub unsafe extern "C" fn im2col_row(rows: *const *const f32, patch: *mut f32, params: *const Im2colParams) {
    // SAFETY: the caller passes valid params, `kh` row pointers and the patch.
    let p = unsafe { &*params };
    let rows = unsafe { std::slice::from_raw_parts(rows, p.win.kh) };
    let k = p.win.kh * p.win.kw * p.c;
    let patch = unsafe { std::slice::from_raw_parts_mut(patch, p.win.ow * k) };
    let (lo, hi) = p.win.interior();
    // Interior pixels without dilation read each kernel row's taps as one run of kw·c
    // consecutive values.
    let run = p.win.kw * p.c;
    for (ox, dst) in patch.chunks_exact_mut(k).enumerate() {
        if p.win.dw == 1 && (lo..hi).contains(&ox) {
            let start = (ox * p.win.sw - p.win.pw) * p.c;
            for (i, &row) in rows.iter().enumerate() {
                let taps = &mut dst[i * run..][..run];
                if row.is_null() {
                    taps.fill(0.0);
                } else {
                    // SAFETY: an interior pixel's taps are all inside the row: columns
                    // start/c .. start/c + kw are < w.
                    copy(taps, unsafe { std::slice::from_raw_parts(row.add(start), run) });
                }
            }
            continue;
        }
        for (i, &row) in rows.iter().enumerate() {
            for j in 0..p.win.kw {
                let tap = &mut dst[(i * p.win.kw + j) * p.c..][..p.c];
                match p.win.column(ox, j) {
                    // SAFETY: iw < w, so the pixel's c channels are inside the row.
                    Some(iw) if !row.is_null() => {
                        copy(tap, unsafe { std::slice::from_raw_parts(row.add(iw * p.c), p.c) })
                    }
                    _ => tap.fill(0.0),
                }
            }
        }
    }
}

/// `dst = src` for a few values: a pixel's channels, or a kernel row's taps. The stem's
/// are 3 and 9 long: fixed-size copies there, since a `memcpy` call per 12 or 36 bytes
/// would cost more than the data.
#[inline]
fn copy(dst: &mut [f32], src: &[f32]) {
    match dst.len() {
        9 => fixed::<9>(dst, src),
        3 => fixed::<3>(dst, src),
        1 => dst[0] = src[0],
        _ => dst.copy_from_slice(src),
    }
}

#[inline]
fn fixed<const N: usize>(dst: &mut [f32], src: &[f32]) {
    let s: &[f32; N] = src.try_into().expect("same length");
    let d: &mut [f32; N] = dst.try_into().expect("same length");
    *d = *s;
}
