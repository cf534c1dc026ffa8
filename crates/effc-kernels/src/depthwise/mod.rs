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

use crate::simd::Simd;
use crate::{Activation, RowWindow};

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
    pub win: RowWindow,
    /// Weights as [kh][kw][c].
    pub weights: *const f32,
    /// `c` values.
    pub bias: *const f32,
    pub act: Activation,
    /// Bytes each call prefetches from its `prefetch` argument (0: none), spread over its
    /// channel groups; see [`crate::prefetch`].
    pub prefetch_bytes: usize,
}

// SAFETY: the pointers refer to immutable weights owned by the same compiled model.
unsafe impl Send for DwParams {}
// SAFETY: as above, read-only.
unsafe impl Sync for DwParams {}

/// `dw_row(rows, out, sums, params, prefetch)`.
///
/// # Safety
/// With `p = *params` (valid):
/// - `rows` points at `p.win.kh` pointers; each is null or readable at `[iw·ld + ch]` for
///   `iw < p.win.w`, `ch < p.c`;
/// - `out` is writable at `[ox·ld + ch]` for `ox < p.win.ow`, `ch < p.c`, and does not overlap
///   the input rows;
/// - `sums` is null or writable at `[ch]`, `ch < p.c`;
/// - `p.weights` is readable at `[(i·kw + j)·ld + ch]` and `p.bias` at `[ch]`;
/// - `prefetch` is any address (only prefetched, never read: it cannot fault);
/// - the variant's instruction set is supported by the CPU.
pub type DwFn = unsafe extern "C" fn(
    rows: *const *const f32,
    out: *mut f32,
    sums: *mut f32,
    params: *const DwParams,
    prefetch: *const u8,
);

/// The definition in f64 accumulation, the oracle the variants are tested against.
/// `rows[i]` is `None` for a kernel row outside the input. The result is dense, `[ow][c]`.
pub fn reference(rows: &[Option<&[f32]>], p: &DwParams, weights: &[f32], bias: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; p.win.ow * p.c];
    for ox in 0..p.win.ow {
        for ch in 0..p.c {
            let mut acc = bias[ch] as f64;
            for (i, row) in rows.iter().enumerate() {
                let Some(row) = row else { continue };
                for j in 0..p.win.kw {
                    if let Some(iw) = p.win.column(ox, j) {
                        acc += row[iw * p.ld + ch] as f64 * weights[(i * p.win.kw + j) * p.ld + ch] as f64;
                    }
                }
            }
            out[ox * p.c + ch] = p.act.apply(acc as f32);
        }
    }
    out
}

mod kernel;

/// The depthwise-row entry point of one instruction set: [`kernel::dw_row`] compiled with
/// its target features.
macro_rules! entry {
    ($name:ident, $simd:ty, $doc:literal $(, $arch:literal, $feature:literal)?) => {
        #[doc = $doc]
        ///
        /// # Safety
        /// The pointers satisfy [`DwFn`]'s contract and the CPU supports the instruction set.
        $(#[cfg(target_arch = $arch)] #[target_feature(enable = $feature)])?
        #[unsafe(export_name = concat!("effc_rt_", stringify!($name)))]
        pub unsafe extern "C" fn $name(
            rows: *const *const f32,
            out: *mut f32,
            sums: *mut f32,
            params: *const DwParams,
            prefetch: *const u8,
        ) {
            // SAFETY: the CPU supports the instruction set (this function's contract), and
            // the pointers are the caller's.
            unsafe { kernel::dw_row(<$simd>::assume(), rows, out, sums, params, prefetch) }
        }

        // SAFETY: `run_vector` runs the generic one for this instruction set under its
        // features.
        $(#[cfg(target_arch = $arch)])?
        unsafe impl kernel::WindowFn for $simd {
            $(#[target_feature(enable = $feature)])?
            #[inline(never)]
            unsafe fn run_vector<const P: usize, const H: usize, const SLIDING: bool>(
                s: Self,
                g: kernel::Group<Self>,
                v: usize,
                ox: usize,
                out: *mut f32,
            ) -> <Self as Simd>::V {
                // SAFETY: forwarded; the token proves the features.
                unsafe { kernel::run_vector::<Self, P, H, SLIDING>(s, g, v, ox, out) }
            }
        }
    };
}

entry!(dw_row_avx512, crate::simd::avx512::Avx512, "AVX-512F: 16 channels per vector.", "x86_64", "avx512f");
entry!(dw_row_avx2, crate::simd::avx2::Avx2, "AVX2 + FMA: 8 channels per vector.", "x86_64", "avx2,fma");
entry!(dw_row_portable, crate::simd::portable::Portable, "Portable: 4 channels per vector.");
