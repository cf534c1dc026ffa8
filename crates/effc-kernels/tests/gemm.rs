//! Every GEMM variant against the f64 reference and against the portable variant, on
//! random shapes, strides, epilogues and tails, with buffers that fault one element past
//! their end (reads before the start are caught by the guard page of the previous
//! mapping only by chance, so every pointer passed starts at element 0 of its buffer).

mod guarded;

use effc_kernels::gemm::{GemmParams, reference};
use effc_kernels::{ActKind, Activation, Isa};
use guarded::Guarded;
use proptest::prelude::*;

/// A random product: shapes, strides and the epilogue.
#[derive(Clone, Debug)]
struct Case {
    rows: usize,
    n: usize,
    k: usize,
    pad: [usize; 3],
    /// B panel-major ([n/32][k][32], as packed weights) instead of row-major.
    panels: bool,
    bias: bool,
    residual: bool,
    scaled: bool,
    act: Activation,
    seed: u64,
}

fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Elements a row-major matrix with `rows` rows of `cols` used columns at stride `ld` spans.
fn span(rows: usize, cols: usize, ld: usize) -> usize {
    (rows - 1) * ld + cols
}

/// Runs `isa`'s kernel on `c`; returns the output matrix (padding columns included).
fn run(isa: Isa, c: &Case) -> (Vec<f32>, Vec<f32>) {
    let [pa, pb, po] = c.pad;
    // Panel-major: rows of a panel `32 + pb` apart, panels one row further apart than K rows.
    let (ldb, panel_stride) = if c.panels { (32 + pb, (c.k + 1) * (32 + pb)) } else { (c.n + pb, 32) };
    let p_base = GemmParams {
        k: c.k,
        n: c.n,
        lda: c.k + pa,
        ldb,
        panel_stride,
        ldo: c.n + po,
        ldr: c.n + po,
        bias: std::ptr::null(),
        b_scale: std::ptr::null(),
        a_taps: std::ptr::null(),
        act: c.act,
        // Packed B takes the next-panel requests, as in a compiled model.
        request_next_panel: c.panels,
    };
    let a = values(span(c.rows, c.k, p_base.lda), c.seed);
    let b = values((c.k - 1) * p_base.ldb + p_base.b_col(c.n - 1) + 1, c.seed + 1);
    let bias = values(c.n, c.seed + 2);
    let res = values(span(c.rows, c.n, p_base.ldr), c.seed + 3);
    let kscale = values(c.k, c.seed + 4);
    let sentinel = 1234.5f32;
    let (ga, gb, gbias, gres) = (Guarded::new(&a), Guarded::new(&b), Guarded::new(&bias), Guarded::new(&res));
    let gscale = Guarded::new(&kscale);
    let scale_ptr = if c.scaled { gscale.ptr() } else { std::ptr::null() };
    let mut gout = Guarded::new(&vec![sentinel; span(c.rows, c.n, p_base.ldo)]);
    let p = GemmParams { bias: if c.bias { gbias.ptr() } else { std::ptr::null() }, ..p_base };
    let res_ptr = if c.residual { gres.ptr() } else { std::ptr::null() };
    let gemm = isa.gemm().expect("supported");
    // SAFETY: every buffer spans exactly what the params say; the ISA is supported.
    unsafe { gemm(ga.ptr(), gb.ptr(), gout.mut_ptr(), res_ptr, c.rows, &p, scale_ptr) };
    let out = gout.to_vec();
    // Padding columns are never written.
    for r in 0..c.rows {
        for j in c.n..p.ldo {
            if let Some(&v) = out.get(r * p.ldo + j) {
                assert_eq!(v, sentinel, "{isa:?} wrote padding at row {r}, column {j}");
            }
        }
    }
    let mut padded = vec![0.0; c.rows * p.ldo];
    padded[..out.len()].copy_from_slice(&out);
    let expect = reference(
        &a,
        &b,
        c.residual.then_some(&res[..]),
        c.rows,
        &p,
        c.bias.then_some(&bias[..]),
        c.scaled.then_some(&kscale[..]),
    );
    (padded, expect)
}

fn close(got: f32, want: f32, scale: f32) -> bool {
    (got.is_nan() && want.is_nan()) || (got - want).abs() <= 2e-6 * scale.max(1.0)
}

fn check(isa: Isa, c: &Case) {
    let (got, want) = run(isa, c);
    let scale = (c.k as f32).sqrt() + 2.0;
    for r in 0..c.rows {
        for j in 0..c.n {
            let i = r * (c.n + c.pad[2]) + j;
            assert!(
                close(got[i], want[i], scale),
                "{isa:?} {c:?}: ({r}, {j}) = {} but the reference says {}",
                got[i],
                want[i]
            );
        }
    }
}

/// The quantization snap is left out: the sums here are accumulated in another order than
/// the reference's, and at a rounding tie the snap turns a last-bit difference into a
/// whole level (the sweep tests it bit for bit).
fn activation() -> impl Strategy<Value = Activation> {
    prop_oneof![
        Just(Activation::IDENTITY),
        Just(Activation::new(ActKind::Relu)),
        Just(Activation::with(ActKind::Clip, 0.0, 6.0)),
        Just(Activation::with(ActKind::LeakyRelu, 0.1, 0.0)),
        Just(Activation::with(ActKind::HardSigmoid, 0.2, 0.5)),
        Just(Activation::new(ActKind::HardSwish)),
        Just(Activation::new(ActKind::Sigmoid)),
        Just(Activation::new(ActKind::Swish)),
        Just(Activation::new(ActKind::Erf)),
        Just(Activation::new(ActKind::Gelu)),
        Just(Activation::new(ActKind::GeluTanh)),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        1usize..40,
        1usize..80,
        1usize..48,
        [0usize..3, 0usize..3, 0usize..3],
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        activation(),
        any::<u64>(),
    )
        .prop_map(|(rows, n, k, pad, panels, bias, residual, scaled, act, seed)| Case {
            rows,
            n,
            k,
            pad,
            panels,
            bias,
            residual,
            scaled,
            act,
            seed,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn every_variant_matches_the_reference(c in case()) {
        for isa in guarded::variants() {
            check(isa, &c);
        }
    }

    #[test]
    fn every_variant_matches_the_portable_one(c in case()) {
        let (portable, _) = run(Isa::Portable, &c);
        for isa in guarded::variants().into_iter().filter(|i| *i != Isa::Portable) {
            let (got, _) = run(isa, &c);
            for (i, (&g, &p)) in got.iter().zip(&portable).enumerate() {
                prop_assert!(close(g, p, (c.k as f32).sqrt() + 2.0), "{isa:?} element {i}: {g} vs portable {p}");
            }
        }
    }
}

/// Products whose last columns are an 8-wide tail (B0's 24- and 40-channel projections),
/// which the AVX-512 variant computes in ymm halves: every row remainder, both B layouts,
/// with and without bias, residual and scale. Up to 3 rows, AVX2 and portable run whole
/// 32-column panels in one tile first.
#[test]
fn eight_column_tails_match_the_reference() {
    let mut seed = 1;
    for n in [8, 24, 40, 56, 72] {
        for rows in [1, 2, 3, 5, 12, 14, 27] {
            for flags in 0..16u32 {
                let bit = |i: u32| flags & (1 << i) != 0;
                seed += 1;
                let c = Case {
                    rows,
                    n,
                    k: 7 + rows % 5,
                    pad: [1, (n / 8) % 3, 2],
                    panels: bit(0),
                    bias: bit(1),
                    residual: bit(2),
                    scaled: bit(3),
                    act: Activation::new(if bit(1) { ActKind::Swish } else { ActKind::Identity }),
                    seed,
                };
                for isa in guarded::variants() {
                    check(isa, &c);
                }
            }
        }
    }
}

/// The epilogue activations over a sweep of x (k = 1, a = x, b = 1), including ±∞, NaN
/// and values far outside where exp is representable.
#[test]
fn activations_over_a_sweep() {
    let mut xs: Vec<f32> = (-2000..=2000).map(|i| i as f32 * 0.05).collect();
    xs.extend([f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 1e30, -1e30, 88.0, -88.0, 104.0, -104.0]);
    let kinds = [
        Activation::IDENTITY,
        Activation::new(ActKind::Relu),
        Activation::with(ActKind::Clip, -1.0, 6.0),
        Activation::with(ActKind::LeakyRelu, 0.01, 0.0),
        Activation::with(ActKind::HardSigmoid, 0.2, 0.5),
        Activation::new(ActKind::HardSwish),
        Activation::new(ActKind::Sigmoid),
        Activation::new(ActKind::Swish),
        Activation::new(ActKind::Erf),
        Activation::new(ActKind::Gelu),
        Activation::new(ActKind::GeluTanh),
        // uint8 levels of 0.1 around zero point 128, and int8 ones of 0.05 around −3: the
        // sweep saturates both and crosses every rounding tie of the first.
        Activation::quantize_dequantize(0.1, -128.0, 127.0),
        Activation::quantize_dequantize(0.05, -125.0, 130.0),
        // A QDQ swish and sigmoid as onnxruntime quantizes B0's: uint8 input levels, the
        // gate in 1/255 steps over [0, 1], the output snapped again.
        Activation::quantized(
            ActKind::QuantizedSwish,
            [(0.1, -128.0, 127.0), (1.0 / 255.0, 0.0, 255.0), (0.05, -7.0, 248.0)],
        ),
        Activation::quantized(
            ActKind::QuantizedSigmoid,
            [(0.1, -128.0, 127.0), (0.0, 0.0, 0.0), (1.0 / 255.0, 0.0, 255.0)],
        ),
    ];
    for isa in guarded::variants() {
        for act in kinds {
            let p = GemmParams {
                k: 1,
                n: 1,
                lda: 1,
                ldb: 1,
                panel_stride: 32,
                ldo: 1,
                ldr: 1,
                bias: std::ptr::null(),
                b_scale: std::ptr::null(),
                a_taps: std::ptr::null(),
                act,
                request_next_panel: false,
            };
            let one = [1.0f32];
            let mut out = vec![0.0f32; xs.len()];
            // SAFETY: a is xs.len() × 1, b is 1 × 1, out is xs.len() × 1.
            unsafe {
                isa.gemm().unwrap()(
                    xs.as_ptr(),
                    one.as_ptr(),
                    out.as_mut_ptr(),
                    std::ptr::null(),
                    xs.len(),
                    &p,
                    std::ptr::null(),
                )
            };
            for (&x, &y) in xs.iter().zip(&out) {
                let want = act.apply(x);
                // exp-based ones relative to the value, plus |x|·1.4e-8 for AVX-512's
                // argument reduction with log2 e rounded to f32 (it only shows where the
                // logistic is below 1e-7); piecewise-linear ones may differ by the rounding
                // of one fused multiply-add. AVX2 clamps e^x at e^-87.3 and AVX-512 the
                // logistic's input at −87, so values below ~1e-35 may come out as such
                // instead of 0.
                let tolerance = match act.kind {
                    ActKind::Sigmoid | ActKind::Swish => (4e-7 + 1.4e-8 * x.abs()) * want.abs(),
                    // The rational erf is within 3.6e-7 of the value evaluated in f32; in
                    // GELU's 1 + erf that becomes an absolute error near −1, times |x|/2.
                    ActKind::Erf | ActKind::Gelu | ActKind::GeluTanh => 5e-7 * want.abs() + 2e-7 * x.abs().min(10.0),
                    // Division, rounding and clamps are exact: bit for bit.
                    ActKind::QuantizeDequantize => 0.0,
                    // The snaps are exact, the sigmoid between them is not: a gate on a
                    // rounding tie may take the next level (one gate step times |a|, then
                    // one output step), an output one output step.
                    ActKind::QuantizedSwish => {
                        let a = Activation::quantize_dequantize(act.a, act.b, act.c).apply(x);
                        act.levels(1).0 * a.abs() + act.levels(2).0
                    }
                    ActKind::QuantizedSigmoid => act.levels(2).0,
                    _ => 2e-7 * want.abs().max(1.0),
                };
                // x·σ(x) at x = −∞ is −∞·0 = NaN by the formula; the limit, 0, is as good.
                let swish_limit = act.kind == ActKind::Swish && x == f32::NEG_INFINITY && y <= 0.0 && y > -1e-35;
                let ok = (y.is_nan() && want.is_nan())
                    || y == want
                    || (y - want).abs() <= tolerance.max(1e-35)
                    || swish_limit;
                assert!(ok, "{isa:?} {act:?} at {x}: {y} vs {want}");
            }
        }
    }
}

/// The CPU this runs on gets its best variant.
#[test]
fn detection_picks_a_supported_variant() {
    let isa = Isa::detect();
    assert!(isa.is_supported());
    assert!(isa.gemm().is_some());
    // On x86-64, the variant std's own detection says is best.
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        let want = if has!("avx512f") {
            Isa::Avx512
        } else if has!("avx2") && has!("fma") {
            Isa::Avx2
        } else {
            Isa::Portable
        };
        assert_eq!(isa, want);
    }
}

/// `pack_panels` lays B out as [n/32][k][32] with a zero-padded last panel, and every
/// variant computes the same product from it as from the row-major B.
#[test]
fn packed_panels_give_the_row_major_product() {
    use effc_kernels::gemm::pack_panels;
    let (rows, k, n) = (13, 37, 70);
    let mut packed = vec![f32::NAN; 3 * k * 32];
    pack_panels(&mut packed, k, n, |kk, j| (kk * 1000 + j) as f32);
    assert_eq!(packed.len(), 3 * k * 32);
    assert_eq!(packed[32 + 5], 1005.0, "panel 0, row 1, column 5");
    assert_eq!(packed[2 * k * 32 + 3 * 32 + 4], 3068.0, "panel 2, row 3, column 68");
    assert_eq!(packed[2 * k * 32 + 3 * 32 + 6], 0.0, "column 70 is padding");
    let a = values(rows * k, 1);
    let b = values(k * n, 2);
    let mut b_panels = vec![0.0; 3 * k * 32];
    pack_panels(&mut b_panels, k, n, |kk, j| b[kk * n + j]);
    let act = Activation::new(ActKind::Swish);
    let row_major = GemmParams {
        k,
        n,
        lda: k,
        ldb: n,
        panel_stride: 32,
        ldo: n,
        ldr: n,
        bias: std::ptr::null(),
        b_scale: std::ptr::null(),
        a_taps: std::ptr::null(),
        act,
        request_next_panel: false,
    };
    let panels = GemmParams { ldb: 32, panel_stride: 32 * k, request_next_panel: true, ..row_major };
    let want = reference(&a, &b, None, rows, &row_major, None, None);
    for isa in guarded::variants() {
        let mut out = vec![0.0f32; rows * n];
        let (ga, gb) = (Guarded::new(&a), Guarded::new(&b_panels));
        // SAFETY: a is rows × k, B is the packed panels the params describe, out rows × n.
        unsafe {
            isa.gemm().unwrap()(ga.ptr(), gb.ptr(), out.as_mut_ptr(), std::ptr::null(), rows, &panels, std::ptr::null())
        };
        for (i, (&g, &w)) in out.iter().zip(&want).enumerate() {
            assert!(close(g, w, (k as f32).sqrt() + 2.0), "{isa:?} element {i}: {g} vs {w}");
        }
    }
}

/// Int8 weights (`GemmParams::b_scale`): B packed panel-major as int8 values, its buffer
/// ending where the last 32-column panel ends (the kernel loads whole vectors inside a
/// panel), each column's sums scaled before the bias; column tails of every width, with
/// and without bias, residual and per-K scale, against the f64 reference on the same
/// integers.
#[test]
fn int8_weights_match_the_reference() {
    let mut seed = 100;
    for isa in guarded::variants() {
        for n in [8usize, 13, 24, 32, 40, 70] {
            for (k, rows) in [(1, 1), (5, 3), (17, 7), (33, 13)] {
                for flags in 0..8u32 {
                    seed += 1;
                    let panels = n.div_ceil(32);
                    let q: Vec<i8> = values(panels * k * 32, seed)
                        .iter()
                        .enumerate()
                        .map(|(i, v)| if i % 32 + (i / (32 * k)) * 32 < n { (v * 127.0).round() as i8 } else { 0 })
                        .collect();
                    let bytes: Vec<f32> = q
                        .chunks_exact(4)
                        .map(|c| f32::from_ne_bytes([c[0] as u8, c[1] as u8, c[2] as u8, c[3] as u8]))
                        .collect();
                    let as_f32: Vec<f32> = q.iter().map(|&v| v as f32).collect();
                    let scales: Vec<f32> = values(n, seed + 1).iter().map(|v| 0.01 + 0.01 * v.abs()).collect();
                    let a = values(rows * k, seed + 2);
                    let bias = values(n, seed + 3);
                    let res = values(rows * n, seed + 4);
                    let kscale = values(k, seed + 5);
                    let (bias_on, res_on, scaled) = (flags & 1 != 0, flags & 2 != 0, flags & 4 != 0);
                    let (ga, gb, gs) = (Guarded::new(&a), Guarded::new(&bytes), Guarded::new(&scales));
                    let (gbias, gres, gk) = (Guarded::new(&bias), Guarded::new(&res), Guarded::new(&kscale));
                    let mut gout = Guarded::new(&vec![0.0; rows * n]);
                    let p = GemmParams {
                        k,
                        n,
                        lda: k,
                        ldb: 32,
                        panel_stride: 32 * k,
                        ldo: n,
                        ldr: n,
                        bias: if bias_on { gbias.ptr() } else { std::ptr::null() },
                        b_scale: gs.ptr(),
                        a_taps: std::ptr::null(),
                        act: Activation::new(ActKind::Swish),
                        request_next_panel: true,
                    };
                    let res_ptr = if res_on { gres.ptr() } else { std::ptr::null() };
                    let k_ptr = if scaled { gk.ptr() } else { std::ptr::null() };
                    // SAFETY: every buffer spans what the params say (B to its last panel's
                    // end); the ISA is supported.
                    unsafe { isa.gemm().unwrap()(ga.ptr(), gb.ptr(), gout.mut_ptr(), res_ptr, rows, &p, k_ptr) };
                    let got = gout.to_vec();
                    // The reference reads the same integers as f32 and b_scale through p.
                    let want = reference(
                        &a,
                        &as_f32,
                        res_on.then_some(&res[..]),
                        rows,
                        &p,
                        bias_on.then_some(&bias[..]),
                        scaled.then_some(&kscale[..]),
                    );
                    for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                        assert!(
                            close(g, w, (k as f32).sqrt() + 2.0),
                            "{isa:?} n {n} k {k} rows {rows} flags {flags}: element {i} {g} vs {w}"
                        );
                    }
                }
            }
        }
    }
}

/// A's columns read through `a_taps` (an implicit im2col: the stem reads the NCHW image
/// itself): 3×3 windows of strides 1–3 over c planes of a W-wide image, full and tail
/// column vectors, against the f64 reference on the patch gathered by hand. The image
/// ends at the last element a tap reads, so a read past it faults.
#[test]
fn taps_read_an_implicit_im2col() {
    let mut seed = 500;
    for (c, w, stride) in [(3usize, 29usize, 2usize), (1, 16, 1), (2, 40, 3)] {
        let (kh, kw, plane) = (3, 3, 3 * w + 5);
        // k = (i·c + ch)·kw + j, as the lowering packs the stem's weights.
        let mut taps = Vec::new();
        for i in 0..kh {
            for ch in 0..c {
                taps.extend((0..kw).map(|j| i * w + ch * plane + j));
            }
        }
        let k = taps.len();
        let rows = (w - kw) / stride + 1;
        for n in [8usize, 16, 24, 32, 40] {
            for flags in 0..4u32 {
                seed += 1;
                let act = Activation::new(if flags & 1 == 0 { ActKind::HardSwish } else { ActKind::Swish });
                let (bias, residual) = (values(n, seed + 1), values(rows * n, seed + 2));
                let image = values((rows - 1) * stride + taps.iter().max().unwrap() + 1, seed);
                let patch: Vec<f32> =
                    (0..rows).flat_map(|r| taps.iter().map(|&t| image[r * stride + t]).collect::<Vec<_>>()).collect();
                let b = values(k * n, seed + 3);
                let p = GemmParams {
                    k,
                    n,
                    lda: stride,
                    ldb: n,
                    panel_stride: 32,
                    ldo: n,
                    ldr: n,
                    bias: bias.as_ptr(),
                    b_scale: std::ptr::null(),
                    a_taps: taps.as_ptr(),
                    act,
                    request_next_panel: false,
                };
                let res = (flags & 2 != 0).then_some(&residual[..]);
                let gathered = GemmParams { lda: k, a_taps: std::ptr::null(), ..p };
                let want = reference(&patch, &b, res, rows, &gathered, Some(&bias), None);
                for isa in guarded::variants() {
                    let (gi, gb) = (Guarded::new(&image), Guarded::new(&b));
                    let mut out = vec![0.0f32; rows * n];
                    let res_ptr = res.map_or(std::ptr::null(), |r| r.as_ptr());
                    // SAFETY: every tap of every row is inside the image; B is k × n, out
                    // and the residual rows × n.
                    unsafe {
                        isa.gemm().unwrap()(gi.ptr(), gb.ptr(), out.as_mut_ptr(), res_ptr, rows, &p, std::ptr::null())
                    };
                    for (i, (&g, &e)) in out.iter().zip(&want).enumerate() {
                        assert!(close(g, e, (k as f32).sqrt() + 2.0), "{isa:?} c {c} n {n} element {i}: {g} vs {e}");
                    }
                }
            }
        }
    }
}
