//! The portable variant: fixed-size tiles in plain Rust, which LLVM vectorises for the
//! baseline target. The reference the other variants are tested against.

use super::GemmParams;

/// Rows of the register tile.
pub const MR: usize = 4;
/// Columns of the register tile.
const NR: usize = 16;

/// See [`super::GemmFn`] for the contract.
///
/// # Safety
/// The pointers satisfy [`super::GemmFn`]'s contract.
pub unsafe extern "C" fn gemm(
    a: *const f32,
    b: *const f32,
    out: *mut f32,
    res: *const f32,
    rows: usize,
    params: *const GemmParams,
    kscale: *const f32,
) {
    // SAFETY: the caller passes a valid params pointer.
    let p = unsafe { &*params };
    let mut r0 = 0;
    while r0 < rows {
        let mr = MR.min(rows - r0);
        let mut j0 = 0;
        while j0 < p.n {
            let nr = NR.min(p.n - j0);
            // SAFETY: the tile covers rows r0..r0+mr < rows and columns j0..j0+nr ≤ n.
            unsafe { tile([a, b, kscale], out, res, p, (r0, mr), (j0, nr)) };
            j0 += NR;
        }
        r0 += MR;
    }
}

/// One tile of `mr` ≤ MR rows and `nr` ≤ NR columns.
///
/// # Safety
/// `r0 + mr ≤ rows` and `j0 + nr ≤ n` of a call satisfying [`super::GemmFn`]'s contract.
unsafe fn tile(
    [a, b, kscale]: [*const f32; 3],
    out: *mut f32,
    res: *const f32,
    p: &GemmParams,
    (r0, mr): (usize, usize),
    (j0, nr): (usize, usize),
) {
    let mut acc = [[0.0f32; NR]; MR];
    let mut brow = [0.0f32; NR];
    // The tile's columns are contiguous: j0 is a multiple of NR, which divides a panel.
    let b0 = p.b_col(j0);
    for k in 0..p.k {
        for (j, bj) in brow.iter_mut().enumerate().take(nr) {
            // SAFETY: k < K and j0 + j < n.
            *bj = unsafe { *b.add(k * p.ldb + b0 + j) };
        }
        if !kscale.is_null() {
            // SAFETY: k < K values of the scale.
            let s = unsafe { *kscale.add(k) };
            for bj in brow.iter_mut().take(nr) {
                *bj *= s;
            }
        }
        for (r, acc_r) in acc.iter_mut().enumerate().take(mr) {
            // SAFETY: r0 + r < rows and k < K.
            let av = unsafe { *a.add((r0 + r) * p.lda + k) };
            for j in 0..NR {
                acc_r[j] += av * brow[j];
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate().take(mr) {
        for (j, &v) in acc_r.iter().enumerate().take(nr) {
            let col = j0 + j;
            let mut v = v;
            if !p.bias.is_null() {
                // SAFETY: col < n and bias holds n values.
                v += unsafe { *p.bias.add(col) };
            }
            if !res.is_null() {
                // SAFETY: (r0 + r, col) is inside the residual.
                v += unsafe { *res.add((r0 + r) * p.ldr + col) };
            }
            // SAFETY: (r0 + r, col) is inside the output.
            unsafe { *out.add((r0 + r) * p.ldo + col) = p.act.apply(v) };
        }
    }
}
