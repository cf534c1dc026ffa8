//! The JIT's polynomial exp, sigmoid, tanh and log against f64 references, through real
//! compiled models, on both the f32x4 path and the scalar tail.

mod common;

use effc_models::writer::GraphBuilder;

/// Compiles `op(x)` for a 1-D input of `n` elements and returns a runner.
fn unary_model(op: &str, n: usize) -> effc::CompiledModel {
    let mut b = GraphBuilder::new(13);
    let x = b.input_f32("x", &[n as i64]);
    let y = b.node(op, &[&x], vec![]);
    b.output(&y);
    let c = common::compile_ok(&b.build());
    c.model.unwrap()
}

fn run(model: &effc::CompiledModel, x: &[f32]) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    model.run_into(&[effc::TensorRef::F32(x)], &mut [effc::TensorMut::F32(&mut out)]).unwrap();
    out
}

/// Evenly spaced points over [lo, hi] plus the f32 neighbours of a few landmarks; an odd
/// count so the scalar tail runs too.
fn grid(lo: f32, hi: f32, n: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..n).map(|i| lo + (hi - lo) * i as f32 / (n - 1) as f32).collect();
    for x in [0.0f32, 1e-30, -1e-30, 0.5, -0.5, 1.0, -1.0, 20.0, -20.0, 87.0, -87.0] {
        v.extend([x, x.next_up(), x.next_down()]);
    }
    if v.len().is_multiple_of(2) {
        v.push(0.25);
    }
    v
}

/// Max relative error over results that are normal f32 numbers; subnormal results are
/// held to an absolute bound instead (they carry fewer significant bits).
fn max_rel(got: &[f32], x: &[f32], f: impl Fn(f64) -> f64) -> f64 {
    let mut worst = 0f64;
    for (&g, &x) in got.iter().zip(x) {
        let want = f(x as f64);
        if want.abs() < f32::MIN_POSITIVE as f64 {
            assert!((g as f64 - want).abs() <= 1e-44, "x={x}: got {g}, want {want}");
            continue;
        }
        let rel = ((g as f64 - want) / want).abs();
        assert!(rel.is_finite(), "x={x}: got {g}, want {want}");
        worst = worst.max(rel);
    }
    worst
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

#[test]
fn sigmoid_is_accurate_over_the_whole_range() {
    let x = grid(-100.0, 100.0, 200_001);
    let m = unary_model("Sigmoid", x.len());
    let rel = max_rel(&run(&m, &x), &x, sigmoid);
    println!("sigmoid max relative error {rel:.3e}");
    assert!(rel <= 2e-7, "sigmoid max relative error {rel:.3e}");
}

#[test]
fn exp_is_accurate_until_overflow() {
    let x = grid(-100.0, 88.7, 200_001);
    let m = unary_model("Exp", x.len());
    let rel = max_rel(&run(&m, &x), &x, f64::exp);
    println!("exp max relative error {rel:.3e}");
    assert!(rel <= 2.5e-7, "exp max relative error {rel:.3e}");
}

#[test]
fn tanh_and_log_are_accurate() {
    let x = grid(-20.0, 20.0, 40_001);
    let m = unary_model("Tanh", x.len());
    let got = run(&m, &x);
    // tanh is computed as 1 - 2/(e^{2|x|}+1): absolute error is what is bounded near 0.
    let abs = got.iter().zip(&x).map(|(&g, &x)| (g as f64 - (x as f64).tanh()).abs()).fold(0.0, f64::max);
    println!("tanh max absolute error {abs:.3e}");
    assert!(abs <= 2e-7, "tanh max absolute error {abs:.3e}");
    // Subnormal inputs are documented to read as 0 (log → -inf); test normal inputs.
    let x: Vec<f32> = grid(1e-3, 1e4, 100_001).into_iter().filter(|&v| v >= f32::MIN_POSITIVE).collect();
    let m = unary_model("Log", x.len());
    let got = run(&m, &x);
    let abs = got.iter().zip(&x).map(|(&g, &x)| (g as f64 - (x as f64).ln()).abs()).fold(0.0, f64::max);
    println!("log max absolute error {abs:.3e}");
    assert!(abs <= 1e-6, "log max absolute error {abs:.3e}");
}

#[test]
fn special_values() {
    let x = [f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 1e30, -1e30, 0.0, -0.0];
    let s = run(&unary_model("Sigmoid", x.len()), &x);
    assert_eq!(&s[..2], &[1.0, 0.0]);
    assert!(s[2].is_nan());
    assert_eq!(&s[3..], &[1.0, 0.0, 0.5, 0.5]);
    let e = run(&unary_model("Exp", x.len()), &x);
    assert_eq!(e[0], f32::INFINITY);
    assert_eq!(e[1], 0.0);
    assert!(e[2].is_nan());
    assert_eq!(&e[3..], &[f32::INFINITY, 0.0, 1.0, 1.0]);
    let t = run(&unary_model("Tanh", x.len()), &x);
    assert_eq!(&t[..2], &[1.0, -1.0]);
    assert!(t[2].is_nan());
    let l = run(&unary_model("Log", 5), &[0.0, -1.0, f32::INFINITY, f32::NAN, 1.0]);
    assert_eq!(l[0], f32::NEG_INFINITY);
    assert!(l[1].is_nan() && l[3].is_nan());
    assert_eq!(l[2], f32::INFINITY);
    assert_eq!(l[4], 0.0);
}
