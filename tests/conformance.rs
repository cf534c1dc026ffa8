//! Runs ONNX's backend test cases: the converted PyTorch cases in ../shared/onnx-conformance,
//! ONNX's node tests for the ops effc reads (tests/onnx-node/cases, written by
//! tools/onnx_node_tests.py from the pinned onnx package) and pooling cases with
//! onnxruntime's outputs (tests/ort-cases, tools/ort_pool_cases.py).
//!
//! Every case is compiled and run on each of its stored data sets; each output must have the
//! stored shape and match the stored values within ONNX's tolerances (rtol 1e-3, atol 1e-5).
//! A case that uses an op or dtype effc does not support is listed with what is missing,
//! never dropped silently. Fails on any failure, and when a case named in
//! tests/onnx-node/must-pass.txt is skipped or missing (the list only grows).

use std::path::{Path, PathBuf};

use effc_onnx::proto::TensorProto;
use prost::Message;

fn conformance_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/onnx-conformance")
}

fn checked_in(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join(dir)
}

fn cases() -> Vec<PathBuf> {
    let mut v = Vec::new();
    let suites = [
        conformance_root().join("pytorch-converted"),
        conformance_root().join("pytorch-operator"),
        checked_in("onnx-node/cases"),
        checked_in("ort-cases"),
    ];
    for dir in suites {
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
        v.extend(entries.map(|e| e.unwrap().path()).filter(|p| p.join("model.onnx").exists()));
    }
    v.sort();
    v
}

/// The cases that must pass, one name a line ('#' starts a comment).
fn must_pass() -> Vec<String> {
    let path = checked_in("onnx-node/must-pass.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines().map(|l| l.split('#').next().unwrap_or("").trim().to_string()).filter(|l| !l.is_empty()).collect()
}

/// The case's data sets, in order.
fn data_sets(dir: &Path) -> Vec<PathBuf> {
    (0..).map(|i| dir.join(format!("test_data_set_{i}"))).take_while(|d| d.is_dir()).collect()
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
    let model = compiled.model.as_ref().expect("compiled");
    for data in data_sets(dir) {
        if let Some(failure) = run_data_set(model, &data) {
            return Outcome::Fail(failure);
        }
    }
    Outcome::Pass
}

/// Runs one data set; the first mismatch, if any.
fn run_data_set(model: &effc::CompiledModel, data: &Path) -> Option<String> {
    for (i, out) in model.outputs().iter().enumerate() {
        let expected = read_pb(&data.join(format!("output_{i}.pb")));
        if out.shape != expected.shape() {
            let (name, got) = (&out.name, &out.shape);
            return Some(format!("output '{name}': inferred {got:?}, reference {:?}", expected.shape()));
        }
    }
    let inputs: Vec<effc_ir::Tensor> =
        (0..model.inputs().len()).map(|i| read_pb(&data.join(format!("input_{i}.pb")))).collect();
    let outputs = match model.run(&inputs) {
        Ok(o) => o,
        Err(e) => return Some(format!("run: {e}")),
    };
    for (i, got) in outputs.iter().enumerate() {
        let expected = read_pb(&data.join(format!("output_{i}.pb")));
        let (g, e) = (got.to_f64_vec(), expected.to_f64_vec());
        for (k, (&a, &b)) in g.iter().zip(&e).enumerate() {
            let ok = (a - b).abs() <= 1e-5 + 1e-3 * b.abs() || (a.is_nan() && b.is_nan()) || a == b;
            if !ok {
                return Some(format!("output {i} element {k}: effc {a}, reference {b}"));
            }
        }
    }
    None
}

fn main() {
    let (mut passed, mut failed, mut unsupported) = (0, 0, Vec::new());
    let must = must_pass();
    let mut passing = std::collections::HashSet::new();
    for dir in cases() {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        match run_case(&dir) {
            Outcome::Pass => {
                passed += 1;
                passing.insert(name);
            }
            Outcome::Unsupported(why) => unsupported.push(format!("{name}: {why}")),
            Outcome::Fail(why) => {
                failed += 1;
                println!("FAIL {name}: {why}");
            }
        }
    }
    let lost: Vec<&String> = must.iter().filter(|m| !passing.contains(*m)).collect();
    for m in &lost {
        println!("MUST PASS {m}: skipped, failed or missing");
    }
    let mut unlisted: Vec<&String> = passing.iter().filter(|p| !must.contains(p)).collect();
    unlisted.sort();
    for p in unlisted {
        println!("passes but is not in must-pass.txt: {p}");
    }
    for u in &unsupported {
        println!("unsupported {u}");
    }
    println!("conformance: {passed} passed, {failed} failed, {} skipped", unsupported.len());
    if failed > 0 || passed == 0 || !lost.is_empty() {
        std::process::exit(1);
    }
}
