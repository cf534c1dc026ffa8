//! The horizontal geometry of a sliding window over one input row, shared by the row
//! kernels (depthwise, im2col): which input column each tap of each output pixel reads.

/// A k_h × k_w window sliding along rows: input width, output width, kernel size, and the
/// horizontal stride, dilation and leading padding.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowWindow {
    /// Input row width in pixels.
    pub w: usize,
    /// Output row width in pixels.
    pub ow: usize,
    pub kh: usize,
    pub kw: usize,
    pub sw: usize,
    pub dw: usize,
    pub pw: usize,
}

impl RowWindow {
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
