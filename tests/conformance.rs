//! Runs ONNX's own backend test cases from ../shared/onnx-conformance.
//!
//! Every case is compiled and run on its stored inputs; each output must have the stored
//! shape and match the stored values within ONNX's tolerances (rtol 1e-3, atol 1e-5). A case
//! that uses an op or dtype effc does not support is listed with what is missing, never
//! dropped silently. Prints `N passed, N failed` and fails on any failure.

use std::path::{Path, PathBuf};

use effc_onnx::proto::TensorProto;
use prost::Message;

fn conformance_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/onnx-conformance")
}

fn cases() -> Vec<PathBuf> {
    let mut v = Vec::new();
    for suite in ["pytorch-converted", "pytorch-operator"] {
        let dir = conformance_root().join(suite);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
        v.extend(entries.map(|e| e.unwrap().path()).filter(|p| p.join("model.onnx").exists()));
    }
    v.sort();
    v
}

fn read_pb(path: &Path) -> effc_ir::Tensor {
    let bytes = std::fs::read(path).unwrap();
    let proto = TensorProto::decode(bytes.as_slice()).unwrap();
    effc_onnx::tensor_from_proto(&proto).unwrap()
}

enum Outcome {
    Pass,
    Unsupported(String),
    Fail(String),
}

fn run_case(dir: &Path) -> Outcome {
    // Checked mode: canaries around every buffer, verified after every kernel. Code
    // generation consumes the graph, dropping each constant after its last reader (as the
    // CLI compiles): a constant read by several nodes or returned as an output must stay.
    let opts = effc::Options { checked: true, keep_graph: false, ..Default::default() };
    let compiled = match effc::compile_file(dir.join("model.onnx"), &opts) {
        Ok(c) => c,
        Err(e) => {
            return match e.kind {
                effc_ir::ErrorKind::UnsupportedOp { op_type, .. } => Outcome::Unsupported(format!("op {op_type}")),
                effc_ir::ErrorKind::Unsupported(what) => Outcome::Unsupported(what),
                _ => Outcome::Fail(e.to_string()),
            };
        }
    };
    let data = dir.join("test_data_set_0");
    let model = compiled.model.as_ref().expect("compiled");
    for (i, out) in model.outputs().iter().enumerate() {
        let expected = read_pb(&data.join(format!("output_{i}.pb")));
        if out.shape != expected.shape() {
            let (name, got) = (&out.name, &out.shape);
            return Outcome::Fail(format!("output '{name}': inferred {got:?}, reference {:?}", expected.shape()));
        }
    }
    let inputs: Vec<effc_ir::Tensor> =
        (0..model.inputs().len()).map(|i| read_pb(&data.join(format!("input_{i}.pb")))).collect();
    let outputs = match model.run(&inputs) {
        Ok(o) => o,
        Err(e) => return Outcome::Fail(format!("run: {e}")),
    };
    for (i, got) in outputs.iter().enumerate() {
        let expected = read_pb(&data.join(format!("output_{i}.pb")));
        let (g, e) = (got.to_f64_vec(), expected.to_f64_vec());
        for (k, (&a, &b)) in g.iter().zip(&e).enumerate() {
            let ok = (a - b).abs() <= 1e-5 + 1e-3 * b.abs() || (a.is_nan() && b.is_nan());
            if !ok {
                return Outcome::Fail(format!("output {i} element {k}: effc {a}, reference {b}"));
            }
        }
    }
    Outcome::Pass
}

fn main() {
    let (mut passed, mut failed, mut unsupported) = (0, 0, Vec::new());
    for dir in cases() {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        match run_case(&dir) {
            Outcome::Pass => passed += 1,
            Outcome::Unsupported(why) => unsupported.push(format!("{name}: {why}")),
            Outcome::Fail(why) => {
                failed += 1;
                println!("FAIL {name}: {why}");
            }
        }
    }
    for u in &unsupported {
        println!("unsupported {u}");
    }
    println!("conformance: {passed} passed, {failed} failed, {} skipped", unsupported.len());
    if failed > 0 || passed == 0 {
        std::process::exit(1);
    }
}
