//! Helpers shared by the end-to-end tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use effc_onnx::proto::ModelProto;

/// The shared, read-only model folder.
pub fn shared_models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/models")
}

/// Writes `model` into a fresh temp folder and returns (folder guard, file path).
pub fn write_temp(model: &ModelProto) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.onnx");
    effc_models::writer::save(model, &path).unwrap();
    (dir, path)
}

/// Compiles in memory and returns the error text, which the test expects.
pub fn compile_err(model: &ModelProto) -> String {
    let bytes = effc_models::writer::encode(model);
    match effc::compile_bytes(bytes, None, &effc::Options::default()) {
        Ok(_) => panic!("the model compiled but should have been refused"),
        Err(e) => e.to_string(),
    }
}

pub fn compile_ok(model: &ModelProto) -> effc::Compilation {
    let bytes = effc_models::writer::encode(model);
    effc::compile_bytes(bytes, None, &effc::Options::default()).unwrap_or_else(|e| panic!("{e}"))
}

/// Deterministic pseudo-random floats in [-1, 1) (a small LCG, so tests need no RNG crate).
pub fn noise(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Every kernel path this CPU can run (micro-kernels per instruction set, then pure JIT).
pub fn kernel_paths() -> Vec<effc::Kernels> {
    effc::Kernels::EXPLICIT.into_iter().filter(|k| k.is_supported()).collect()
}

/// The kernel path for test case `i`: property and differential tests rotate through all
/// of them so every path sees a share of the random graphs.
#[allow(dead_code)]
pub fn kernel_path(i: u64) -> effc::Kernels {
    let paths = kernel_paths();
    paths[(i % paths.len() as u64) as usize]
}

/// Runs `model` (one input, 1000 outputs) on the shared input `inputs/{input}.npy` and
/// compares with onnxruntime's stored `ref/{reference}.ort.npy`.
pub fn vs_onnxruntime(model: &effc::CompiledModel, input: &str, reference: &str) -> effc::compare::Comparison {
    let npy = |path: PathBuf| -> ndarray::ArrayD<f32> {
        ndarray_npy::read_npy(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let x = npy(shared_models().join(format!("inputs/{input}.npy")));
    let mut out = vec![0f32; 1000];
    model.run_into(&[effc::TensorRef::F32(x.as_slice().unwrap())], &mut [effc::TensorMut::F32(&mut out)]).unwrap();
    let ort = npy(shared_models().join(format!("ref/{reference}.ort.npy")));
    effc::compare::Comparison::new(&out, ort.as_slice().unwrap())
}

/// Compiles `path` on every kernel path, asserts its op histogram after fusion has
/// `expect`'s counts and none of `gone`, and compares its first output on seeded noise of
/// `shape` with tract's (max relative error 1e-4, cosine above 0.999999).
#[allow(dead_code)]
pub fn fused_and_matches_tract(path: &Path, shape: &[usize], seed: u64, expect: &[(&str, usize)], gone: &[&str]) {
    let tract = effc_tract::Reference::load(path, &[shape.to_vec()], &[]).unwrap();
    let x = effc::input::seeded_noise(shape, seed);
    let theirs = tract.run(&[&x.to_f32_vec()]).unwrap();
    for kernels in kernel_paths() {
        let c = effc::compile_file(path, &effc::Options { kernels, ..Default::default() }).unwrap();
        assert_histogram(&c, expect, gone, &kernels.to_string());
        let ours = c.model().unwrap().run(std::slice::from_ref(&x)).unwrap()[0].to_f32_vec();
        let cmp = effc::compare::Comparison::new(&ours, &theirs[0].data);
        assert!(cmp.max_rel <= 1e-4 && cmp.cosine > 0.999_999, "{kernels}: {cmp:?}");
    }
}

/// Asserts the op histogram after fusion: `expect`'s counts, none of `gone` (the unfused
/// convs and their reasons are in the message).
#[allow(dead_code)]
pub fn assert_histogram(c: &effc::Compilation, expect: &[(&str, usize)], gone: &[&str], what: &str) {
    let (h, why) = (&c.summary.ops_after, &c.summary.unfused);
    for &(op, n) in expect {
        assert_eq!(h.get(op), Some(&n), "{what}: {op} in {h:?}; unfused {why:?}");
    }
    for op in gone {
        assert!(!h.contains_key(*op), "{what} left {op}: {h:?}");
    }
}

/// Compiles the shared export `name` on every kernel path, asserts its histogram as
/// [`assert_histogram`] does, and compares it with onnxruntime's stored outputs for both
/// shared inputs (`input_prefix` + cat / noise, e.g. "" for `cat_1x3x224x224`).
#[allow(dead_code)]
pub fn shared_fused_and_matches_onnxruntime(name: &str, inputs: [&str; 2], expect: &[(&str, usize)], gone: &[&str]) {
    let path = shared_models().join(format!("{name}.onnx"));
    for kernels in kernel_paths() {
        let c = effc::compile_file(&path, &effc::Options { kernels, ..Default::default() }).unwrap();
        assert_histogram(&c, expect, gone, &format!("{name} {kernels}"));
        let model = c.model().unwrap();
        for (input, which) in inputs.iter().zip(["cat", "noise"]) {
            let vs_ort = vs_onnxruntime(model, input, &format!("{name}.{which}"));
            println!("{name} {kernels} {which}: vs ORT max_abs {:.2e} max_rel {:.2e}", vs_ort.max_abs, vs_ort.max_rel);
            assert!(vs_ort.passes(1e-4), "{name} {kernels} on {which} vs onnxruntime: {vs_ort:?}");
        }
    }
}
