//! Every depthwise-row variant against the f64 reference and the portable variant, on
//! random geometries (kernel, stride, dilation, padding, missing rows, channel tails),
//! with rows, output and sums in buffers that fault one element past their end.

mod guarded;

use effc_kernels::depthwise::{DwParams, reference};
use effc_kernels::{ActKind, Activation, Isa, RowWindow};
use guarded::Guarded;
use proptest::prelude::*;

#[derive(Clone, Debug)]
struct Case {
    c: usize,
    /// Extra pixel stride beyond `c` (a channel range of a wider tensor).
    ld_pad: usize,
    w: usize,
    kh: usize,
    kw: usize,
    sw: usize,
    dw: usize,
    pw: usize,
    /// Which kernel rows exist (the others are vertical padding).
    present: Vec<bool>,
    sums: bool,
    act: Activation,
    seed: u64,
}

impl Case {
    /// Output width for padding `pw` on both sides.
    fn ow(&self) -> usize {
        (self.w + 2 * self.pw - (self.kw - 1) * self.dw - 1) / self.sw + 1
    }
}

fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed ^ 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Runs `isa` on `c`: (output as dense [ow][c], sums, reference output).
fn run(isa: Isa, c: &Case) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let ld = c.c + c.ld_pad;
    // Every buffer ends right after its last element used: (n − 1)·ld + c.
    let span = |n: usize| (n - 1) * ld + c.c;
    let row_data: Vec<Vec<f32>> = (0..c.kh).map(|i| values(span(c.w), c.seed + i as u64)).collect();
    let weights = values(span(c.kh * c.kw), c.seed + 100);
    let bias = values(c.c, c.seed + 101);
    let start_sums = values(c.c, c.seed + 102);
    let rows: Vec<Option<Guarded>> =
        row_data.iter().zip(&c.present).map(|(r, &on)| on.then(|| Guarded::new(r))).collect();
    let (gw, gb) = (Guarded::new(&weights), Guarded::new(&bias));
    let ow = c.ow();
    let mut out = Guarded::new(&vec![0.0; span(ow)]);
    let mut sums = Guarded::new(&start_sums);
    let p = DwParams {
        c: c.c,
        ld,
        win: RowWindow { w: c.w, ow, kh: c.kh, kw: c.kw, sw: c.sw, dw: c.dw, pw: c.pw },
        weights: gw.ptr(),
        bias: gb.ptr(),
        act: c.act,
        prefetch_bytes: c.c * 8,
    };
    let ptrs: Vec<*const f32> = rows.iter().map(|r| r.as_ref().map_or(std::ptr::null(), |g| g.ptr())).collect();
    let sums_ptr = if c.sums { sums.mut_ptr() } else { std::ptr::null_mut() };
    // SAFETY: the buffers have the sizes the params describe; the ISA is supported.
    // The prefetched range is any memory (here the weights): prefetches never fault, and
    // nothing is read from it.
    let pf = gw.ptr() as *const u8;
    unsafe { isa.depthwise().expect("supported")(ptrs.as_ptr(), out.mut_ptr(), sums_ptr, &p, pf) };
    let refs: Vec<Option<&[f32]>> = row_data.iter().zip(&c.present).map(|(r, &on)| on.then_some(&r[..])).collect();
    let want = reference(&refs, &p, &weights, &bias);
    let strided = out.to_vec();
    let dense = (0..ow).flat_map(|ox| strided[ox * ld..][..c.c].to_vec()).collect();
    (dense, sums.to_vec(), want)
}

fn close(got: f32, want: f32, taps: usize) -> bool {
    (got.is_nan() && want.is_nan()) || (got - want).abs() <= 2e-6 * (taps as f32).sqrt().max(1.0) * want.abs().max(1.0)
}

/// The quantization snap is left out: the sums here are accumulated in another order than
/// the reference's, and at a rounding tie the snap turns a last-bit difference into a
/// whole level (the sweep tests it bit for bit).
fn activation() -> impl Strategy<Value = Activation> {
    prop_oneof![
        Just(Activation::IDENTITY),
        Just(Activation::with(ActKind::Clip, 0.0, 6.0)),
        Just(Activation::new(ActKind::HardSwish)),
        Just(Activation::new(ActKind::Swish)),
        Just(Activation::new(ActKind::Erf)),
        Just(Activation::new(ActKind::Gelu)),
        Just(Activation::new(ActKind::GeluTanh)),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        1usize..40,
        1usize..30,
        1usize..6,
        1usize..6,
        1usize..3,
        1usize..3,
        0usize..3,
        any::<bool>(),
        activation(),
        (any::<u64>(), 0usize..5),
    )
        .prop_flat_map(|(c, w, kh, kw, sw, dw, pw, sums, act, (seed, ld_pad))| {
            // Keep the output at least one pixel wide.
            let w = w.max((kw - 1) * dw + 1);
            proptest::collection::vec(any::<bool>(), kh).prop_map(move |present| Case {
                c,
                ld_pad,
                w,
                kh,
                kw,
                sw,
                dw,
                pw,
                present,
                sums,
                act,
                seed,
            })
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn every_variant_matches_the_reference(c in case()) {
        let taps = c.kh * c.kw;
        for isa in guarded::variants() {
            let (out, sums, want) = run(isa, &c);
            for (i, (&g, &w)) in out.iter().zip(&want).enumerate() {
                prop_assert!(close(g, w, taps), "{isa:?} {c:?}: element {i} = {g}, reference {w}");
            }
            // Sums: the row's outputs per channel, overwriting what was there (or untouched).
            let start = values(c.c, c.seed + 102);
            for ch in 0..c.c {
                let expect = if c.sums { (0..c.ow()).map(|ox| want[ox * c.c + ch]).sum::<f32>() } else { start[ch] };
                prop_assert!(close(sums[ch], expect, taps * c.ow()), "{isa:?} {c:?}: sum {ch} = {}, expected {expect}", sums[ch]);
            }
        }
    }

    #[test]
    fn every_variant_matches_the_portable_one(c in case()) {
        let (portable, psums, _) = run(Isa::Portable, &c);
        for isa in guarded::variants().into_iter().filter(|i| *i != Isa::Portable) {
            let (out, sums, _) = run(isa, &c);
            for (i, (&g, &p)) in out.iter().zip(&portable).enumerate() {
                prop_assert!(close(g, p, c.kh * c.kw), "{isa:?} element {i}: {g} vs portable {p}");
            }
            for (ch, (&g, &p)) in sums.iter().zip(&psums).enumerate() {
                prop_assert!(close(g, p, c.kh * c.kw * c.ow()), "{isa:?} sum {ch}: {g} vs portable {p}");
            }
        }
    }
}

/// B0's windows (3×3 and 5×5, stride 1 and 2), which the AVX-512 variant runs through
/// code specialised per window, eight pixels at a time: on rows wide enough for several
/// interior groups and on rows narrower than one group (B0's 7×7 and 14×14 maps), with a
/// channel tail, a pixel stride wider than the channels and a missing row.
#[test]
fn specialised_windows_match_the_reference() {
    for (kw, sw) in [(3, 1), (3, 2), (5, 1), (5, 2)] {
        let widths =
            [(16, 0, 56), (37, 3, 61), (96, 0, 112), (40, 0, 7), (24, 1, 14), (24, 0, 28), (33, 2, 21), (20, 0, 42)];
        for (c, ld_pad, w) in widths {
            let mut present = vec![true; kw];
            present[0] = w % 2 == 0;
            let case = Case {
                c,
                ld_pad,
                w,
                kh: kw,
                kw,
                sw,
                dw: 1,
                pw: kw / 2,
                present,
                sums: true,
                act: Activation::new(ActKind::Swish),
                seed: (kw * 10 + sw) as u64,
            };
            for isa in guarded::variants() {
                let (out, sums, want) = run(isa, &case);
                for (i, (&g, &r)) in out.iter().zip(&want).enumerate() {
                    assert!(close(g, r, kw * kw), "{isa:?} {case:?}: element {i} = {g}, reference {r}");
                }
                for ch in 0..c {
                    let expect = (0..case.ow()).map(|ox| want[ox * c + ch]).sum::<f32>();
                    assert!(close(sums[ch], expect, kw * kw * case.ow()), "{isa:?} {case:?}: sum {ch}");
                }
            }
        }
    }
}

/// The interior (columns whose taps are all inside the row) is exactly the set of columns
/// for which every tap's input column exists, and `taps` is exactly the taps inside.
#[test]
fn interior_is_the_columns_with_every_tap_inside() {
    for w in 1..20 {
        for kw in 1..6 {
            for sw in 1..3 {
                for dw in 1..3 {
                    for pw in 0..4 {
                        if w + 2 * pw < (kw - 1) * dw + 1 {
                            continue;
                        }
                        let ow = (w + 2 * pw - (kw - 1) * dw - 1) / sw + 1;
                        let p = RowWindow { w, ow, kh: 1, kw, sw, dw, pw };
                        let (lo, hi) = p.interior();
                        for ox in 0..ow {
                            let (j_lo, j_hi) = p.taps(ox);
                            for j in 0..kw {
                                let inside = p.column(ox, j).is_some();
                                assert_eq!(
                                    inside,
                                    (j_lo..j_hi).contains(&j),
                                    "taps: w {w} kw {kw} sw {sw} dw {dw} pw {pw} ox {ox} j {j}"
                                );
                            }
                            let all_inside = (0..kw).all(|j| p.column(ox, j).is_some());
                            assert_eq!(
                                all_inside,
                                (lo..hi).contains(&ox),
                                "w {w} kw {kw} sw {sw} dw {dw} pw {pw} ox {ox}"
                            );
                        }
                    }
                }
            }
        }
    }
}

/// im2col of a row copies exactly the taps `RowWindow::column` says exist, zeros elsewhere,
/// from channels-last rows and from channel planes (the model's NCHW input); with
/// `border_only`, the interior pixels are left as they were.
#[test]
fn im2col_gathers_exactly_the_taps_inside() {
    use effc_kernels::{Im2colParams, im2col_row};
    // The stem's geometry, a run length with no fixed-size copy (4 × 3), dilation (no
    // runs), and a 1×1 window.
    let cases = [(3, 224, 3, 3, 2, 1, 1), (4, 12, 3, 3, 1, 1, 1), (2, 7, 2, 5, 1, 2, 3), (1, 4, 1, 1, 1, 1, 0)];
    for (c, w, kh, kw, sw, dw, pw) in cases {
        for (planar, border_only) in [(false, false), (true, false), (false, true), (true, true)] {
            let ow = (w + 2 * pw - (kw - 1) * dw - 1) / sw + 1;
            // Channel planes: each row holds c planes of w values, `w + 5` apart.
            let plane = if planar { w + 5 } else { 0 };
            let len = if planar { c * plane } else { w * c };
            let rows: Vec<Vec<f32>> = (0..kh).map(|i| values(len, i as u64)).collect();
            let guarded: Vec<Guarded> = rows.iter().map(|r| Guarded::new(r)).collect();
            // The last kernel row is missing (vertical padding).
            let mut ptrs: Vec<*const f32> = guarded.iter().map(Guarded::ptr).collect();
            ptrs[kh - 1] = std::ptr::null();
            let k = kh * kw * c;
            let mut patch = Guarded::new(&vec![f32::NAN; ow * k]);
            let win = RowWindow { w, ow, kh, kw, sw, dw, pw };
            let p = Im2colParams { c, plane, win, border_only };
            let (lo, hi) = win.interior();
            // SAFETY: kh row pointers of `len` values (or null) and a patch of ow·k values.
            unsafe { im2col_row(ptrs.as_ptr(), patch.mut_ptr(), &p) };
            let patch = patch.to_vec();
            for ox in 0..ow {
                for (i, row) in rows.iter().enumerate() {
                    for j in 0..kw {
                        for ch in 0..c {
                            let at = if planar { (i * c + ch) * kw + j } else { (i * kw + j) * c + ch };
                            let got = patch[ox * k + at];
                            if border_only && (lo..hi).contains(&ox) {
                                assert!(got.is_nan(), "border only, but interior pixel {ox} was written");
                                continue;
                            }
                            let want = match win.column(ox, j) {
                                Some(iw) if i < kh - 1 => row[if planar { ch * plane + iw } else { iw * c + ch }],
                                _ => 0.0,
                            };
                            assert_eq!(got, want, "planar {planar} ox {ox} tap ({i}, {j}) channel {ch}");
                        }
                    }
                }
            }
        }
    }
}
