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
