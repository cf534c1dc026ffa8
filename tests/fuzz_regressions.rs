//! Inputs the fuzzers once crashed on (tests/fuzz_regressions/): each must now give a
//! result or a clean error, never a panic.

use std::path::Path;

#[test]
fn former_fuzz_crashes_are_clean_errors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let opts = effc::Options { checked: true, max_memory: Some(64 << 20), ..Default::default() };
        // Must not panic; an error is the expected outcome for these files.
        let result = std::panic::catch_unwind(|| effc::compile_bytes(bytes, None, &opts).map(|_| ()));
        assert!(result.is_ok(), "{} panicked", path.display());
        n += 1;
    }
    assert!(n >= 1, "the regression corpus is empty");
}

/// The first crash, reduced: Split on a rank-0 tensor indexed an empty shape.
#[test]
fn split_of_a_scalar_is_an_error() {
    use effc_models::writer::*;
    let mut b = GraphBuilder::new(13);
    let x = b.weight_f32("x", &[], &[1.0]);
    let y = b.node("Split", &[&x], vec![]);
    b.output(&y);
    let e = effc::compile_bytes(encode(&b.build()), None, &effc::Options::default()).err().unwrap().to_string();
    assert!(e.contains("axis 0 is out of range for rank 0"), "{e}");
}

/// The second crash, reduced: a zero-size constant whose other dims multiply past usize
/// passed the element count (0) but overflowed when its strides were computed.
#[test]
fn zero_size_tensors_with_huge_dims_are_refused() {
    use effc_models::writer::*;
    let mut b = GraphBuilder::new(13);
    let mut t = tensor_f32("x", &[1], &[]);
    t.dims = vec![0, 1 << 40, 1 << 40];
    let x = b.weight(t);
    let y = b.node("Transpose", &[&x], vec![]);
    b.output(&y);
    let e = effc::compile_bytes(encode(&b.build()), None, &effc::Options::default()).err().unwrap().to_string();
    assert!(e.contains("overflows"), "{e}");
}
