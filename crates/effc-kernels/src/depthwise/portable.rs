//! The portable variant: per block of up to 64 channels and pixel, the taps inside the row.

use super::DwParams;
use crate::prefetch::Spread;

/// Channels accumulated together (on the stack: no allocation per call).
const BLOCK: usize = 64;

/// See [`super::DwFn`] for the contract.
///
/// # Safety
/// The pointers satisfy [`super::DwFn`]'s contract.
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
    let mut pf = Spread::new(prefetch, p.prefetch_bytes, p.c.div_ceil(BLOCK));
    for c0 in (0..p.c).step_by(BLOCK) {
        pf.step();
        let n = BLOCK.min(p.c - c0);
        if !sums.is_null() {
            // SAFETY: c0 + n ≤ c values of the sums.
            unsafe { std::ptr::write_bytes(sums.add(c0), 0, n) };
        }
        for ox in 0..p.win.ow {
            let mut acc = [0.0f32; BLOCK];
            // SAFETY: bias holds c values; c0 + n ≤ c.
            acc[..n].copy_from_slice(unsafe { std::slice::from_raw_parts(p.bias.add(c0), n) });
            for (i, &row) in rows.iter().enumerate() {
                if row.is_null() {
                    continue;
                }
                for j in 0..p.win.kw {
                    let Some(iw) = p.win.column(ox, j) else { continue };
                    // SAFETY: iw < w and c0 + n ≤ c, so the pixel's channels are inside
                    // the row; the tap's weights are inside kh·kw·c.
                    let (x, w) = unsafe {
                        (
                            std::slice::from_raw_parts(row.add(iw * p.ld + c0), n),
                            std::slice::from_raw_parts(p.weights.add((i * p.win.kw + j) * p.ld + c0), n),
                        )
                    };
                    for ((a, &x), &w) in acc.iter_mut().zip(x).zip(w) {
                        *a += x * w;
                    }
                }
            }
            for (k, &a) in acc[..n].iter().enumerate() {
                let y = p.act.apply(a);
                // SAFETY: ox < ow and c0 + k < c: inside the output row and the sums.
                unsafe {
                    *out.add(ox * p.ld + c0 + k) = y;
                    if !sums.is_null() {
                        *sums.add(c0 + k) += y;
                    }
                }
            }
        }
    }
}
