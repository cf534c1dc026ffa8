//! The `effc` binary: output format, exit codes and one-line errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn effc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_effc")).args(args).output().expect("effc runs")
}

fn shared(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/models").join(name)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A failure is exit code 1 with exactly one line on stderr (so: no panic, no backtrace).
fn assert_clean_failure(o: &Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line expected: {err}");
    assert!(err.contains(needle), "{err:?} should contain {needle:?}");
}

#[test]
fn compile_json_reports_b0_cost() {
    let o = effc(&["compile", shared("tv_b0_legacy.onnx").to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let macs = v["macs"].as_u64().unwrap() as f64;
    assert!((macs / 385.8e6 - 1.0).abs() <= 1e-3, "{macs}");
    let params = v["params"].as_u64().unwrap() as f64;
    assert!((params / 5.29e6 - 1.0).abs() <= 0.01, "{params}");
    assert_eq!(v["ops_before"]["Identity"], 18);
    assert_eq!(v["ops_after"]["Conv"], 81);
    assert!(v["ops_after"].get("Identity").is_none());
    assert!(v["compile_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(v["inputs"][0]["shape"], serde_json::json!([1, 3, 224, 224]));
}

#[test]
fn compile_text_summary_and_dot() {
    let dir = tempfile::tempdir().unwrap();
    let dot = dir.path().join("g.dot");
    let o = effc(&[
        "compile",
        shared("tv_b0_dynamo.onnx").to_str().unwrap(),
        "--emit",
        "dot",
        "-o",
        dot.to_str().unwrap(),
        "--print-passes",
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.contains("MACs      385.8 M"), "{out}");
    assert!(out.contains("pass      merge-pad-into-conv"), "{out}");
    let text = std::fs::read_to_string(&dot).unwrap();
    assert!(text.starts_with("digraph"));
    assert_eq!(text.matches("label=\"Conv\\n").count(), 81);
    assert!(text.contains("f32[1, 1280, 7, 7]"), "edges carry shapes");
}

#[test]
fn bad_files_fail_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.onnx");
    std::fs::write(&junk, b"\x08\x96\x01definitely not onnx \xff\xff\xff").unwrap();
    assert_clean_failure(&effc(&["compile", junk.to_str().unwrap()]), "junk.onnx");
    let half = dir.path().join("half.onnx");
    let full = std::fs::read(shared("tv_b0_bn.onnx")).unwrap();
    std::fs::write(&half, &full[..full.len() / 2]).unwrap();
    assert_clean_failure(&effc(&["compile", half.to_str().unwrap()]), "not a valid ONNX model");
    assert_clean_failure(&effc(&["compile", "/nonexistent/m.onnx"]), "cannot read /nonexistent/m.onnx");
    let legacy = shared("tv_b0_legacy.onnx");
    assert_clean_failure(
        &effc(&["compile", legacy.to_str().unwrap(), "--input-shape", "input=1x3xAx224"]),
        "dims must be positive integers",
    );
    assert_clean_failure(
        &effc(&["compile", legacy.to_str().unwrap(), "--input-shape", "input=1x3x225x224"]),
        "does not fit",
    );
}
