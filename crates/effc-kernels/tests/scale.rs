//! The squeeze-excite scaling kernels against their definitions, with buffers that fault
//! one element past their end.

mod guarded;

use guarded::Guarded;

fn values(len: usize, seed: f32) -> Vec<f32> {
    (0..len).map(|i| (i as f32 * 0.37 + seed).sin() * 3.0).collect()
}

#[test]
fn rows_scale_by_their_channel() {
    for isa in guarded::variants() {
        let (rows_fn, _) = isa.scale().expect("supported");
        for (total, width, c) in [(96, 32, 96), (2688, 32, 672), (70, 37, 24), (5, 1, 3), (33, 17, 7)] {
            let src_values = values(total * width, 1.0);
            let gate_values = values(c, 2.0);
            let (src, gate) = (Guarded::new(&src_values), Guarded::new(&gate_values));
            let mut dst = Guarded::new(&vec![f32::NAN; total * width]);
            // Two calls over rows [0, first) and [first, total), as two work items would.
            let first = total / 3;
            for (from, count) in [(0, first), (first, total - first)] {
                // SAFETY: src and dst hold total·width values, gate c.
                unsafe { rows_fn(src.ptr(), gate.ptr(), dst.mut_ptr(), from, count, width, c) };
            }
            let got = dst.to_vec();
            for r in 0..total {
                for j in 0..width {
                    let want = src_values[r * width + j] * gate_values[r % c];
                    assert_eq!(got[r * width + j], want, "{isa:?} rows {total}x{width}, c {c}: ({r}, {j})");
                }
            }
        }
    }
}

#[test]
fn columns_scale_in_place() {
    for isa in guarded::variants() {
        let (_, columns_fn) = isa.scale().expect("supported");
        for (pixels, c) in [(49, 1152), (8, 672), (3, 17), (1, 1), (10, 40)] {
            let a_values = values(pixels * c, 3.0);
            let gate_values = values(c, 4.0);
            let mut a = Guarded::new(&a_values);
            let gate = Guarded::new(&gate_values);
            // SAFETY: a holds pixels·c values, gate c.
            unsafe { columns_fn(a.mut_ptr(), gate.ptr(), pixels, c) };
            let got = a.to_vec();
            for p in 0..pixels {
                for ch in 0..c {
                    let want = a_values[p * c + ch] * gate_values[ch];
                    assert_eq!(got[p * c + ch], want, "{isa:?} {pixels} pixels x {c}: ({p}, {ch})");
                }
            }
        }
    }
}
