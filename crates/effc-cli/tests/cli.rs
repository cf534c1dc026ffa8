//! The `effc` binary: output format, exit codes and one-line errors.

mod common;

use std::path::Path;
use std::process::Command;

use common::{assert_clean_failure, effc, read_f32_npy, shared, stderr, write_b0_with_symbolic_batch};

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
    assert_eq!(v["ops_imported"]["Conv"], 81);
    assert_eq!(v["ops_after"]["MBConv"], 16);
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
    assert_eq!(text.matches("label=\"MBConv\\n").count(), 16);
    assert_eq!(text.matches("label=\"Conv\\n").count(), 2);
    assert!(text.contains("f32[1, 320, 7, 7]"), "edges carry shapes");
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
    let missing = effc(&["compile", "/nonexistent/m.onnx"]);
    assert_clean_failure(&missing, "cannot read /nonexistent/m.onnx");
    // The cause is said once.
    assert_eq!(stderr(&missing).matches("os error 2").count(), 1, "{}", stderr(&missing));
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

#[test]
fn run_prints_top_k_and_writes_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("y.npy");
    let input = shared("inputs/cat_1x3x224x224.npy");
    let o = effc(&[
        "run",
        shared("tv_b0_legacy.onnx").to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--top",
        "3",
        "--output",
        out.to_str().unwrap(),
        "--threads",
        "2",
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(text.lines().filter(|l| l.trim_start().starts_with('#')).count(), 3, "{text}");
    // onnxruntime's top class for this input.
    let ort: Vec<f32> = read_f32_npy(&shared("ref/tv_b0_legacy.cat.ort.npy"));
    let best = (0..ort.len()).max_by(|&a, &b| ort[a].total_cmp(&ort[b])).unwrap();
    let names =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("data/imagenet_classes.txt")).unwrap();
    let name = names.lines().nth(best).unwrap();
    let first = text.lines().find(|l| l.contains("#1 ")).unwrap();
    assert!(first.contains(&format!("#1  index {best} ")) && first.ends_with(&format!("  {name}")), "{text}");
    let written = read_f32_npy(&out);
    assert_eq!(written.len(), 1000);
    let max_rel = written.iter().zip(&ort).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max)
        / ort.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(max_rel < 1e-4, "{max_rel}");
}

#[test]
fn run_refuses_a_wrong_shape() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.npy");
    // A valid .npy of shape (2, 2).
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }";
    let padded = format!("{header:<117}\n");
    bytes.extend((padded.len() as u16).to_le_bytes());
    bytes.extend(padded.as_bytes());
    bytes.extend([0u8; 16]);
    std::fs::write(&bad, bytes).unwrap();
    let o = effc(&["run", shared("tv_b0_legacy.onnx").to_str().unwrap(), "--input", bad.to_str().unwrap()]);
    assert_clean_failure(&o, "input 'input': the data's shape [2, 2] does not fit the declared dims [1, 3, 224, 224]");
}

#[test]
fn check_json_passes_against_tract() {
    let input = shared("inputs/noise_1x3x224x224.npy");
    let o = effc(&["check", shared("tv_b0_bn.onnx").to_str().unwrap(), "--input", input.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["pass"], true);
    let logits = &v["outputs"]["logits"];
    for key in ["max_abs", "max_rel", "cosine", "top1_agree", "top5_agree"] {
        assert!(!logits[key].is_null(), "missing {key}: {v}");
    }
    assert!(logits["max_rel"].as_f64().unwrap() <= 1e-4);
    assert!(logits["cosine"].as_f64().unwrap() > 0.99999);
    // An impossible tolerance fails with exit code 1.
    let o = effc(&["check", shared("tv_b0_bn.onnx").to_str().unwrap(), "--random", "1", "--tolerance", "0", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["pass"], false);
}

/// A QDQ model's dequantized output is compared in quanta of its scale: the histogram
/// covers every value of every case, and a tolerance of 0 quanta is stricter than the
/// default 2.
#[test]
fn check_compares_a_qdq_models_output_in_quanta() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lite0_qdq.onnx");
    common::write_lite0_qdq(&path);
    let o = effc(&["check", path.to_str().unwrap(), "--random", "2", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let q = &v["outputs"]["logits"]["quanta"];
    assert!((q["quantum"].as_f64().unwrap() - 12.0 / 255.0).abs() < 1e-7, "{v}");
    let off_by: Vec<u64> = q["off_by"].as_array().unwrap().iter().map(|c| c.as_u64().unwrap()).collect();
    assert_eq!(off_by.iter().sum::<u64>(), 20, "{v}");
    assert_eq!(v["pass"], q["max"].as_u64().unwrap() <= 2 && v["outputs"]["logits"]["top1_agree"] == true, "{v}");
    assert_eq!(o.status.success(), v["pass"] == true);
    let text = effc(&["check", path.to_str().unwrap(), "--random", "1"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("in quanta of"), "{}", stderr(&text));
}

#[test]
fn emit_clif_dumps_every_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let clif = dir.path().join("m.clif");
    let o = effc(&[
        "compile",
        shared("tv_b0_legacy.onnx").to_str().unwrap(),
        "--emit",
        "clif",
        "-o",
        clif.to_str().unwrap(),
        "--json",
        "--kernels",
        "jit",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let kernels = v["kernels"].as_u64().unwrap() as usize;
    let text = std::fs::read_to_string(&clif).unwrap();
    assert_eq!(text.matches("; kernel ").count(), kernels);
    assert_eq!(text.matches("function u0:").count(), kernels);
    // The pure-JIT path does its own arithmetic, in vectors; it calls nothing.
    assert!(text.contains(" = fma ") && text.contains("load.f32x4"), "kernels use vector loads and FMAs");
    assert!(!text.contains("call_indirect"));
    // By default the matrix products and depthwise rows call micro-kernels.
    let o2 = effc(&[
        "compile",
        shared("tv_b0_legacy.onnx").to_str().unwrap(),
        "--emit",
        "clif",
        "-o",
        clif.to_str().unwrap(),
    ]);
    assert!(o2.status.success(), "{}", stderr(&o2));
    assert!(std::fs::read_to_string(&clif).unwrap().contains("call_indirect"), "micro-kernel calls");
    // Block 1's expanded tensor (96×112×112 f32 = 4.8 MB) is streamed through ring
    // buffers, so the whole arena is smaller than it.
    let arena = v["arena_bytes"].as_u64().unwrap();
    assert!(arena > 1_204_224 && arena < 4_816_896, "arena {arena}");
}

#[test]
fn check_layers_compares_every_surviving_tensor() {
    let model = shared("tv_b0_dynamo.onnx");
    let o = effc(&["check", model.to_str().unwrap(), "--layers", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let layers = v["layers"].as_array().unwrap();
    // Stem, 16 MBConv block outputs, head conv, pool.
    assert!(layers.len() >= 19, "{} layers", layers.len());
    assert!(v.get("first_bad_layer").is_none());
    assert!(layers.iter().all(|l| l["max_rel"].as_f64().unwrap() <= 1e-4));
    // With an impossible tolerance the first layer in execution order is named.
    let o = effc(&["check", model.to_str().unwrap(), "--layers", "--json", "--tolerance", "1e-12"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["first_bad_layer"], layers[0]["name"]);
}

#[test]
fn demo_runs_with_no_files_and_passes() {
    let o = effc(&["demo", "--runs", "2"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}{}", text, stderr(&o));
    assert!(text.contains("| ops after fusion | MBConv 16,"), "{text}");
    assert!(text.contains("385.8 M MACs"), "{text}");
    assert!(text.contains("→ PASS"), "{text}");
    assert!(text.contains("effc/tract = "), "{text}");
}

#[test]
fn memory_cap_refuses_before_running() {
    let model = shared("tv_b0_legacy.onnx");
    let o = effc(&["compile", model.to_str().unwrap(), "--max-memory", "20M"]);
    assert_clean_failure(&o, "over the 20 MB memory cap");
    let o = effc(&["run", model.to_str().unwrap(), "--input", "x.npy", "--max-memory", "lots"]);
    assert_eq!(o.status.code(), Some(2), "clap rejects a malformed size");
    assert!(stderr(&o).contains("not a size like 512M"));
    let o = effc(&["compile", model.to_str().unwrap(), "--max-memory", "64M", "--checked", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // effc fits in 64M (4 MB arena, 21 MB of weights), but the reference would hold every
    // activation (~40 MB moved) and the weights twice: `check` says so before loading it.
    let o = effc(&["check", model.to_str().unwrap(), "--max-memory", "64M"]);
    assert_clean_failure(&o, "the reference (tract) may need up to");
    assert!(stderr(&o).contains("over --max-memory 64 MiB; raise --max-memory to compare"), "{}", stderr(&o));
}

/// A 3×3 conv (16 → 16) followed by Erf, at opset 13 and at opset 22: `effc run` used to
/// panic on it (exit 101), and opset 22 was refused; `effc check` now agrees with tract.
#[test]
fn conv_then_erf_runs_and_matches_tract_at_opsets_13_and_22() {
    use effc_models::writer::{GraphBuilder, attr_ints, save};
    for opset in [13, 22] {
        let mut b = GraphBuilder::new(opset);
        let x = b.input_f32("x", &[1, 16, 12, 12]);
        let w: Vec<f32> = (0..16 * 16 * 9).map(|i| ((i * 7919 % 201) as f32 - 100.0) / 600.0).collect();
        let w = b.weight_f32("w", &[16, 16, 3, 3], &w);
        let y = b.node("Conv", &[&x, &w], vec![attr_ints("kernel_shape", &[3, 3]), attr_ints("pads", &[1, 1, 1, 1])]);
        let e = b.node("Erf", &[&y], vec![]);
        b.output(&e);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("conv_erf.onnx");
        save(&b.build(), &path).unwrap();
        let o = effc(&["check", path.to_str().unwrap(), "--random", "2", "--json"]);
        assert!(o.status.success(), "opset {opset}: {}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["pass"], true, "opset {opset}: {v}");
    }
}

/// `--output` is written even when stdout's reader goes away after the first line, and
/// an absurd `--threads` is refused before any thread exists.
#[test]
fn output_survives_a_closed_stdout_and_threads_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("y.npy");
    let model = shared("tv_b0_legacy.onnx");
    let input = shared("inputs/cat_1x3x224x224.npy");
    let mut child = Command::new(env!("CARGO_BIN_EXE_effc"))
        .args(["run", model.to_str().unwrap(), "--input", input.to_str().unwrap(), "--output", out.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    child.wait().unwrap();
    assert_eq!(read_f32_npy(&out).len(), 1000);
    let o = effc(&["run", model.to_str().unwrap(), "--input", input.to_str().unwrap(), "--threads", "100000"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("from 1 to 1024"), "{}", stderr(&o));
}

/// The schedule line names the code that runs: the kernel variant, or JIT code only.
#[test]
fn compile_names_the_kernels_it_chose() {
    let model = shared("tv_b0_legacy.onnx");
    for (kernels, says) in [("portable", "portable micro-kernels (4 f32 lanes"), ("jit", "cranelift f32x4 only")] {
        let o = effc(&["compile", model.to_str().unwrap(), "--kernels", kernels]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success() && out.contains(says), "{kernels}: {out}");
    }
}

/// `effc run` on a model whose graph input has an initializer: the mismatch says which
/// inputs the model takes and that the initializer is that input's value; `--override`
/// feeds it (y = x + w, by hand).
#[test]
fn run_says_which_inputs_have_initializers_and_overrides_them() {
    use effc_models::writer::{GraphBuilder, save, tensor_f32};
    let dir = tempfile::tempdir().unwrap();
    let mut b = GraphBuilder::new(13);
    let x = b.input_f32("x", &[1, 4]);
    let w = b.input_f32("w", &[1, 4]);
    b.graph.initializer.push(tensor_f32("w", &[1, 4], &[1.0, 2.0, 3.0, 4.0]));
    let y = b.node("Add", &[&x, &w], vec![]);
    b.output(&y);
    let model = dir.path().join("m.onnx");
    save(&b.build(), &model).unwrap();
    let npy = |name: &str, v: [f32; 4]| {
        let p = dir.path().join(name);
        effc::input::save_npy(&p, &effc::Tensor::from_f32(vec![1, 4], v.to_vec()).unwrap()).unwrap();
        p
    };
    let (xf, wf) = (npy("x.npy", [10.0, 20.0, 30.0, 40.0]), npy("w.npy", [0.5, 0.5, 0.5, 0.5]));
    let (m, xs, ws) = (model.to_str().unwrap(), xf.to_str().unwrap(), wf.to_str().unwrap());
    let o = effc(&["run", m, "--input", xs, "--input", ws]);
    assert_clean_failure(&o, "takes 1 inputs (x), 2 given with --input; w also has an initializer");
    let out = dir.path().join("y.npy");
    let o = effc(&["run", m, "--override", "w", "--input", xs, "--input", ws, "--output", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read_f32_npy(&out), [10.5, 20.5, 30.5, 40.5]);
}

/// `effc run` takes the shapes of a model's symbolic dims from its inputs: the writer's B0
/// with a symbolic batch, fed a batch of 3, computes what tract computes for that batch;
/// data that does not fit a static dim is one line naming the input, its declared dims and
/// the data's shape.
#[test]
fn run_binds_symbolic_dims_from_its_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("b0.onnx");
    write_b0_with_symbolic_batch(&model);
    let shape = [3, 3, 32, 32];
    let x = effc::input::seeded_noise(&shape, 2);
    let xf = dir.path().join("x.npy");
    effc::input::save_npy(&xf, &x).unwrap();
    let out = dir.path().join("y.npy");
    let (m, xs, ys) = (model.to_str().unwrap(), xf.to_str().unwrap(), out.to_str().unwrap());
    let o = effc(&["run", m, "--input", xs, "--output", ys]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ours = read_f32_npy(&out);
    let tract = effc_tract::Reference::load(&model, &[shape.to_vec()], &[]).unwrap();
    let theirs = tract.run(&[&x.to_f32_vec()]).unwrap();
    assert_eq!(theirs[0].shape, [3, 8]);
    let cmp = effc::compare::Comparison::new(&ours, &theirs[0].data);
    assert!(cmp.max_rel <= 1e-4, "{cmp:?}");
    // Each image of the batch gets its own top classes.
    let text = String::from_utf8_lossy(&o.stdout);
    for (image, row) in theirs[0].data.chunks(8).enumerate() {
        let best = (0..8).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
        let at = text.find(&format!("  image {image}\n")).unwrap_or_else(|| panic!("{text}"));
        assert!(text[at..].lines().nth(1).unwrap().contains(&format!("#1  index {best} ")), "{text}");
    }
    // `check` on that batch: tract agrees, each image ranking its classes the same.
    let o = effc(&["check", m, "--input", xs, "--json"]);
    assert!(o.status.success(), "{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["pass"], true, "{v}");
    let bad = dir.path().join("bad.npy");
    effc::input::save_npy(&bad, &effc::input::seeded_noise(&[3, 4, 32, 32], 0)).unwrap();
    let o = effc(&["run", m, "--input", bad.to_str().unwrap()]);
    assert_clean_failure(
        &o,
        "input 'input': the data's shape [3, 4, 32, 32] does not fit the declared dims [N, 3, 32, 32]",
    );
}

/// `--labels none` prints indices only; a labels file names the classes of an output with
/// as many classes and is refused in one line when it fits no output.
#[test]
fn run_labels_can_be_turned_off_or_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let (m, x) = (shared("tv_b0_legacy.onnx"), shared("inputs/cat_1x3x224x224.npy"));
    let (m, x) = (m.to_str().unwrap(), x.to_str().unwrap());
    let o = effc(&["run", m, "--input", x, "--top", "1", "--labels", "none"]);
    let text = String::from_utf8_lossy(&o.stdout);
    let first = text.lines().find(|l| l.contains("#1 ")).unwrap();
    assert!(first.trim_end().ends_with(|c: char| c.is_ascii_digit()), "{text}");
    let mine = dir.path().join("mine.txt");
    std::fs::write(&mine, (0..1000).map(|i| format!("class-{i}\n")).collect::<String>()).unwrap();
    let o = effc(&["run", m, "--input", x, "--top", "1", "--labels", mine.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout);
    let ort: Vec<f32> = read_f32_npy(&shared("ref/tv_b0_legacy.cat.ort.npy"));
    let best = (0..ort.len()).max_by(|&a, &b| ort[a].total_cmp(&ort[b])).unwrap();
    assert!(text.contains(&format!("  class-{best}\n")), "{text}");
    std::fs::write(&mine, "cat\ndog\n").unwrap();
    let o = effc(&["run", m, "--input", x, "--labels", mine.to_str().unwrap()]);
    assert_clean_failure(&o, "has 2 class names, but the outputs have 1000 classes");
}

/// A quantized model's uint8 input and output cross as uint8 .npy files: `effc run` on
/// ONNX's QLinearConv case (uint8 in, uint8 out) writes exactly the case's expected
/// output, and `effc check` compares it with tract in quanta of 1, on the case's input and
/// on seeded uint8 inputs.
#[test]
fn run_and_check_take_and_give_uint8() {
    use prost::Message;
    let case = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/onnx-node/cases/test_qlinearconv_weights_as_initializers");
    let pb = |name: &str| {
        let bytes = std::fs::read(case.join("test_data_set_0").join(name)).unwrap();
        effc_onnx::tensor_from_proto(&effc_onnx::proto::TensorProto::decode(bytes.as_slice()).unwrap()).unwrap()
    };
    let (x, want) = (pb("input_0.pb"), pb("output_0.pb"));
    assert_eq!((x.dtype(), want.dtype()), (effc::DType::U8, effc::DType::U8));
    let dir = tempfile::tempdir().unwrap();
    let (xf, yf) = (dir.path().join("x.npy"), dir.path().join("y.npy"));
    effc::input::save_npy(&xf, &x).unwrap();
    let model = case.join("model.onnx");
    let m = model.to_str().unwrap();
    let o = effc(&["run", m, "--input", xf.to_str().unwrap(), "--output", yf.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("output y u8[1, 1, 7, 7]"), "{o:?}");
    let y = effc::input::load(&yf, want.shape(), effc::DType::U8).unwrap();
    assert_eq!(y.to_f32_vec(), want.to_f32_vec());
    assert_eq!(y.dtype(), effc::DType::U8);
    // An f32 file for the uint8 input is refused by name, in one line.
    let f32_file = dir.path().join("f.npy");
    effc::input::save_npy(&f32_file, &effc::Tensor::from_f32(vec![1, 1, 7, 7], vec![0.0; 49]).unwrap()).unwrap();
    assert_clean_failure(
        &effc(&["run", m, "--input", f32_file.to_str().unwrap()]),
        "holds '<f4' data, but the model input is u8",
    );
    for args in [vec!["--input", xf.to_str().unwrap()], vec!["--random", "3"]] {
        let o = effc(&[&["check", m, "--json"], args.as_slice()].concat());
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", stderr(&o)));
        let q = &v["outputs"]["y"]["quanta"];
        assert_eq!(q["quantum"], 1.0, "{v}");
        let cases = v["cases"].as_u64().unwrap();
        assert_eq!(q["off_by"], serde_json::json!([49 * cases, 0, 0, 0]), "{v}");
        assert!(o.status.success() && v["pass"] == true, "{v}");
    }
}
