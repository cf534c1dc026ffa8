//! One output row of a depthwise convolution on channels-last data, with bias, activation
//! and (optionally) the squeeze-excite pool's running sum fused in.
//!
//! `out[ox][c] = act(bias[c] + Σ_{i,j} rows[i][iw][c] · w[i][j][c])` with
//! `iw = ox·sw − pw + j·dw`, over kernel rows whose input row exists (`rows[i]` non-null:
//! the caller resolves vertical padding, strides and ring buffers) and columns
//! `0 ≤ iw < w`. With `sums`, `sums[c] = Σ_ox out[ox][c]` (the row's part of the SE pool; written, not
//! accumulated, so the buffer needs no clearing). Vectors run across channels;
//! the interior columns, whose taps are all inside the row, take a branch-free path that
//! shares each weight load between four output pixels.

use crate::Activation;

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
pub mod portable;

/// What does not change between the rows of one depthwise convolution.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct DwParams {
    /// Channels computed.
    pub c: usize,
    /// Pixel stride (in f32s) of the input rows, the output row and the weight taps,
    /// at least `c`: a call can compute a channel range of a wider tensor (threads split
    /// small feature maps by channels).
    pub ld: usize,
    /// Input row width in pixels.
    pub w: usize,
    /// Output row width in pixels.
    pub ow: usize,
    pub kh: usize,
    pub kw: usize,
    /// Horizontal stride, dilation and leading padding.
    pub sw: usize,
    pub dw: usize,
    pub pw: usize,
    /// Weights as [kh][kw][c].
    pub weights: *const f32,
    /// `c` values.
    pub bias: *const f32,
    pub act: Activation,
}

// SAFETY: the pointers refer to immutable weights owned by the same compiled model.
unsafe impl Send for DwParams {}
// SAFETY: as above, read-only.
unsafe impl Sync for DwParams {}

impl DwParams {
    /// The output columns whose every tap lies inside the input row: `lo..hi`.
    pub fn interior(&self) -> (usize, usize) {
        let span = (self.kw - 1) * self.dw;
        let lo = self.pw.div_ceil(self.sw).min(self.ow);
        // ox·sw − pw + span < w  ⇔  ox < (w + pw − span) / sw, rounded up.
        let hi = (self.w + self.pw).checked_sub(span).map_or(0, |v| v.div_ceil(self.sw)).min(self.ow);
        (lo, hi.max(lo))
    }

    /// The taps `j_lo..j_hi` of output column `ox` whose input column is inside the row.
    pub fn taps(&self, ox: usize) -> (usize, usize) {
        let start = ox * self.sw;
        // iw = start + j·dw − pw ≥ 0  ⇔  j ≥ ⌈(pw − start) / dw⌉.
        let lo = self.pw.saturating_sub(start).div_ceil(self.dw).min(self.kw);
        // iw < w  ⇔  j·dw < w + pw − start.
        let hi = (self.w + self.pw).saturating_sub(start).div_ceil(self.dw).min(self.kw);
        (lo, hi.max(lo))
    }

    /// Input column of tap `j` for output column `ox`, if inside the row.
    pub fn column(&self, ox: usize, j: usize) -> Option<usize> {
        (ox * self.sw + j * self.dw).checked_sub(self.pw).filter(|&iw| iw < self.w)
    }
}

/// `dw_row(rows, out, sums, params)`.
///
/// # Safety
/// With `p = *params` (valid):
/// - `rows` points at `p.kh` pointers; each is null or readable at `[iw·ld + ch]` for
///   `iw < p.w`, `ch < p.c`;
/// - `out` is writable at `[ox·ld + ch]` for `ox < p.ow`, `ch < p.c`, and does not overlap
///   the input rows;
/// - `sums` is null or writable at `[ch]`, `ch < p.c`;
/// - `p.weights` is readable at `[(i·kw + j)·ld + ch]` and `p.bias` at `[ch]`;
/// - the variant's instruction set is supported by the CPU.
pub type DwFn = unsafe extern "C" fn(rows: *const *const f32, out: *mut f32, sums: *mut f32, params: *const DwParams);

/// The definition in f64 accumulation, the oracle the variants are tested against.
/// `rows[i]` is `None` for a kernel row outside the input. The result is dense, `[ow][c]`.
pub fn reference(rows: &[Option<&[f32]>], p: &DwParams, weights: &[f32], bias: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; p.ow * p.c];
    for ox in 0..p.ow {
        for ch in 0..p.c {
            let mut acc = bias[ch] as f64;
            for (i, row) in rows.iter().enumerate() {
                let Some(row) = row else { continue };
                for j in 0..p.kw {
                    if let Some(iw) = p.column(ox, j) {
                        acc += row[iw * p.ld + ch] as f64 * weights[(i * p.kw + j) * p.ld + ch] as f64;
                    }
                }
            }
            out[ox * p.c + ch] = p.act.apply(acc as f32);
        }
    }
    out
}
