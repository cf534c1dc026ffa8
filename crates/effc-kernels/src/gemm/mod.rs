//! Matrix products with a fused epilogue: the 1×1 convolutions, the stem (as im2col rows)
//! and the classifier head.
//!
//! `out[r][j] = act(Σ_k a[r][k] · (b[k][j] · s[k]) + bias[j] + res[r][j])` for `r < rows`,
//! `j < n`, where `s` is an optional per-K scale (a squeeze-excite gate folded into the
//! projection: scaling B's rows as they are loaded costs one multiply per B vector).
//! One body ([`kernel`]) for every instruction set keeps an MR × (2 vectors) tile of
//! `out` in registers over the whole K loop, broadcasting one element of A per row and
//! loading one row of B per step, then applies the epilogue to the registers and stores
//! once. Column tails are half-width or masked.

use crate::Activation;
use crate::simd::Simd;

mod kernel;

/// Columns per panel of a panel-major B: the AVX-512 tile's width. The narrower variants'
/// 16- and 8-column tiles start at multiples of their width, so none straddles a panel.
pub const PANEL: usize = 32;

/// What does not change between calls of one product: sizes, strides (in f32s), bias and
/// activation. The compiled model owns it; the machine code passes its address.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct GemmParams {
    pub k: usize,
    pub n: usize,
    pub lda: usize,
    /// Stride of B's rows (within a panel).
    pub ldb: usize,
    /// Stride of B's 32-column panels: [`PANEL`] for a row-major B, or (for weights packed
    /// panel-major, [n/32][k][32]) at least K·ldb, so that each panel is one contiguous run
    /// that hardware prefetchers stream, instead of K rows a page apart.
    pub panel_stride: usize,
    pub ldo: usize,
    /// Row stride of the residual (ignored when no residual is passed).
    pub ldr: usize,
    /// `n` per-column values added to every row, or null.
    pub bias: *const f32,
    /// Null for an f32 B. Otherwise B holds int8 values (its pointer is an `*const i8`,
    /// packed panel-major, every panel 32 columns wide, zeros past n) and column j of the
    /// product is multiplied by `b_scale[j]` (n values) before the bias: weights quantized
    /// per output channel stay int8 in memory.
    pub b_scale: *const f32,
    /// Null for rows of A holding K consecutive values. Otherwise K offsets: element
    /// (r, k) of A is `a[r·lda + a_taps[k]]`, a convolution's taps read from its input
    /// image itself (an implicit im2col: the stem reads the model's NCHW input this way,
    /// gathering no patch). Only with an f32 B (`b_scale` null) and no `kscale`.
    pub a_taps: *const usize,
    pub act: Activation,
    /// Whether each row tile requests its share of the panel after its own into L2 (see
    /// `kernel::Tiles`): for a packed B too large to stay cached from one call to the
    /// next. The caller decides, because it sees the whole product, where a call that
    /// computes one block of columns sees only that block.
    pub request_next_panel: bool,
}

impl GemmParams {
    /// Where column `j` of B's row 0 is: `(j / 32)·panel_stride + j % 32`.
    #[inline]
    pub fn b_col(&self, j: usize) -> usize {
        (j / PANEL) * self.panel_stride + j % PANEL
    }
}

/// Packs `b(k, j)` for `k < k_len`, `j < n` panel-major into `out`: [n/32][k_len][32],
/// the last panel zero-padded (`out` holds n/32 (rounded up) · k_len · 32 values). Use
/// with `ldb = 32` and `panel_stride = 32·k_len`. f32 weights, or int8 ones (with
/// [`GemmParams::b_scale`]).
pub fn pack_panels<T: Copy + Default>(out: &mut [T], k_len: usize, n: usize, b: impl Fn(usize, usize) -> T) {
    assert_eq!(out.len(), n.div_ceil(PANEL) * k_len * PANEL, "panel-major size");
    for (p, panel) in out.chunks_exact_mut(k_len * PANEL).enumerate() {
        for (k, row) in panel.chunks_exact_mut(PANEL).enumerate() {
            for (jj, v) in row.iter_mut().enumerate() {
                let j = p * PANEL + jj;
                *v = if j < n { b(k, j) } else { T::default() };
            }
        }
    }
}

// SAFETY: the bias pointer refers to immutable weights owned by the same compiled model as
// the params; sharing them between threads only ever reads through it.
unsafe impl Send for GemmParams {}
// SAFETY: as above, read-only.
unsafe impl Sync for GemmParams {}

/// `gemm(a, b, out, res, rows, params, kscale)`.
///
/// # Safety
/// With `p = *params` (a valid `GemmParams`):
/// - `a` is readable at `a[r·p.lda + k]` for `r < rows`, `k < p.k` (with `p.a_taps` set,
///   at `a[r·p.lda + a_taps[k]]`, and then `b_scale` and `kscale` are null);
/// - `b` is readable at `b[k·p.ldb + p.b_col(j)]` for `k < p.k`, `j < p.n`; with
///   `p.b_scale` set, as int8 values, through the end of each 32-column panel, and
///   `b_scale` is readable at `b_scale[j]`, `j < p.n`;
/// - `out` is writable at `out[r·p.ldo + j]`, and `res` (unless null) readable at
///   `res[r·p.ldr + j]`, for `r < rows`, `j < p.n`;
/// - `p.bias` is null or readable at `bias[j]`, `j < p.n`;
/// - `kscale` is null or readable at `kscale[k]`, `k < p.k`;
/// - `out` may alias `res` exactly (same element for the same (r, j)), nothing else;
/// - the variant's instruction set is supported by the CPU (see [`crate::Isa::gemm`]).
///
/// No element outside these ranges is read or written: tails use half-width or masked
/// loads and stores.
pub type GemmFn = unsafe extern "C" fn(
    a: *const f32,
    b: *const f32,
    out: *mut f32,
    res: *const f32,
    rows: usize,
    params: *const GemmParams,
    kscale: *const f32,
);

/// A plain triple loop in f64, the oracle the kernels are tested against.
pub fn reference(
    a: &[f32],
    b: &[f32],
    res: Option<&[f32]>,
    rows: usize,
    p: &GemmParams,
    bias: Option<&[f32]>,
    kscale: Option<&[f32]>,
) -> Vec<f32> {
    let mut out = vec![0.0; rows * p.ldo];
    for r in 0..rows {
        for j in 0..p.n {
            let mut acc = 0.0f64;
            for k in 0..p.k {
                let bk = b[k * p.ldb + p.b_col(j)] * kscale.map_or(1.0, |s| s[k]);
                let at = if p.a_taps.is_null() {
                    k
                } else {
                    // SAFETY: the caller's params hold K offsets there.
                    unsafe { *p.a_taps.add(k) }
                };
                acc += a[r * p.lda + at] as f64 * bk as f64;
            }
            if !p.b_scale.is_null() {
                // SAFETY: the caller's params hold n scales there.
                acc *= unsafe { *p.b_scale.add(j) } as f64;
            }
            let mut v = acc as f32;
            if let Some(bias) = bias {
                v += bias[j];
            }
            if let Some(res) = res {
                v += res[r * p.ldr + j];
            }
            out[r * p.ldo + j] = p.act.apply(v);
        }
    }
    out
}

/// The GEMM entry point of one instruction set: [`kernel::gemm`] with its tile shape,
/// compiled with its target features.
macro_rules! entry {
    ($name:ident, $simd:ty, $mr:expr, $tall:expr, $doc:literal $(, $arch:literal, $feature:literal)?) => {
        #[doc = $doc]
        ///
        /// # Safety
        /// The pointers satisfy [`GemmFn`]'s contract and the CPU supports the instruction set.
        $(#[cfg(target_arch = $arch)] #[target_feature(enable = $feature)])?
        #[unsafe(export_name = concat!("effc_rt_", stringify!($name)))]
        pub unsafe extern "C" fn $name(
            a: *const f32,
            b: *const f32,
            out: *mut f32,
            res: *const f32,
            rows: usize,
            params: *const GemmParams,
            kscale: *const f32,
        ) {
            let x = kernel::Ptrs { a, b, out, res, kscale };
            // SAFETY: the CPU supports the instruction set (this function's contract); the
            // pointers and a valid params pointer are the caller's.
            unsafe { kernel::gemm::<_, { $mr }, { $tall }>(<$simd>::assume(), x, rows, &*params) }
        }

        // SAFETY: `tile` runs the generic tile for this instruction set under its features.
        $(#[cfg(target_arch = $arch)])?
        unsafe impl kernel::TileFn for $simd {
            $(#[target_feature(enable = $feature)])?
            #[inline(never)]
            unsafe fn tile<const M: usize, const V: usize, const HALF: bool, const TAIL: bool>(
                s: Self,
                t: kernel::TileAt<Self>,
                r0: usize,
                p: &GemmParams,
                ahead: kernel::Ahead,
            ) {
                // SAFETY: forwarded; the token proves the features.
                unsafe { kernel::tile::<Self, M, V, HALF, TAIL>(s, t, r0, p, ahead) }
            }
        }
    };
}

/// Tile rows: AVX-512's 12 × 2 zmm tile (24 accumulators; remainders up to 14 rows: 28 of
/// its 32 registers), AVX2's 6 × 2 ymm one (12 of 16), and the portable 6 × 2 xmm one.
pub const MR_AVX512: usize = 12;
pub const MR_AVX2: usize = 6;
pub const MR_PORTABLE: usize = 6;

entry!(gemm_avx512, crate::simd::avx512::Avx512, MR_AVX512, 14, "AVX-512F: a 12 × 32 tile.", "x86_64", "avx512f");
entry!(gemm_avx2, crate::simd::avx2::Avx2, MR_AVX2, MR_AVX2, "AVX2 + FMA: a 6 × 16 tile.", "x86_64", "avx2,fma");
entry!(gemm_portable, crate::simd::portable::Portable, MR_PORTABLE, MR_PORTABLE, "Portable: a 6 × 8 tile.");
