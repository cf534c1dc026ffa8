//! The squeeze-excite gate's multiplies: per-channel scales applied to a per-sample copy of
//! the projection weights or, in place, to the activations. Plain loops the compiler
//! vectorises for each instruction set; the JIT's own code for them is 128-bit.

/// `scale_rows(src, gate, dst, first, rows, width, c)`: for `r` in `first..first + rows`,
/// `dst[r·width + j] = src[r·width + j] · gate[r mod c]`, `j < width`.
///
/// # Safety
/// `src` is readable and `dst` writable at those indices (they may not overlap), `gate`
/// readable at `[0, c)`, `c > 0`; the variant's instruction set is supported.
pub type ScaleRowsFn = unsafe extern "C" fn(
    src: *const f32,
    gate: *const f32,
    dst: *mut f32,
    first: usize,
    rows: usize,
    width: usize,
    c: usize,
);

/// `scale_columns(a, gate, pixels, c)`: `a[p·c + ch] *= gate[ch]` for `p < pixels`,
/// `ch < c`.
///
/// # Safety
/// `a` is writable at those indices, `gate` readable at `[0, c)`; the variant's instruction
/// set is supported.
pub type ScaleColumnsFn = unsafe extern "C" fn(a: *mut f32, gate: *const f32, pixels: usize, c: usize);

/// One variant of both kernels: the same loops, written out in each function so that they
/// are vectorised with that function's target features.
macro_rules! variant {
    ($rows:ident, $columns:ident, $doc:literal $(, $arch:literal, $feature:literal)?) => {
        #[doc = $doc]
        ///
        /// # Safety
        /// See [`ScaleRowsFn`].
        $(#[cfg(target_arch = $arch)] #[target_feature(enable = $feature)])?
        #[unsafe(export_name = concat!("effc_rt_scale_", stringify!($rows)))]
        pub unsafe extern "C" fn $rows(
            src: *const f32,
            gate: *const f32,
            dst: *mut f32,
            first: usize,
            rows: usize,
            width: usize,
            c: usize,
        ) {
            if rows == 0 || width == 0 || c == 0 {
                return;
            }
            // SAFETY: the contract of ScaleRowsFn.
            let (src, dst, gate) = unsafe {
                (
                    std::slice::from_raw_parts(src.add(first * width), rows * width),
                    std::slice::from_raw_parts_mut(dst.add(first * width), rows * width),
                    std::slice::from_raw_parts(gate, c),
                )
            };
            for (r, (s, d)) in src.chunks_exact(width).zip(dst.chunks_exact_mut(width)).enumerate() {
                let g = gate[(first + r) % c];
                for (x, y) in s.iter().zip(d.iter_mut()) {
                    *y = x * g;
                }
            }
        }

        #[doc = $doc]
        ///
        /// # Safety
        /// See [`ScaleColumnsFn`].
        $(#[cfg(target_arch = $arch)] #[target_feature(enable = $feature)])?
        #[unsafe(export_name = concat!("effc_rt_scale_", stringify!($columns)))]
        pub unsafe extern "C" fn $columns(a: *mut f32, gate: *const f32, pixels: usize, c: usize) {
            if pixels == 0 || c == 0 {
                return;
            }
            // SAFETY: the contract of ScaleColumnsFn.
            let (a, gate) =
                unsafe { (std::slice::from_raw_parts_mut(a, pixels * c), std::slice::from_raw_parts(gate, c)) };
            for px in a.chunks_exact_mut(c) {
                for (x, g) in px.iter_mut().zip(gate) {
                    *x *= g;
                }
            }
        }
    };
}

variant!(rows_portable, columns_portable, "Auto-vectorised for the baseline target.");
variant!(rows_avx512, columns_avx512, "Vectorised with AVX-512F.", "x86_64", "avx512f");
variant!(rows_avx2, columns_avx2, "Vectorised with AVX2.", "x86_64", "avx2,fma");
