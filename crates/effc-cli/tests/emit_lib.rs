//! `effc compile --emit lib`: the static library and header link into a C program
//! (examples/c/top5.c) with the system `cc`, whose outputs are onnxruntime's within
//! float tolerance and the JIT's bit for bit; bad use is one line.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn effc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_effc")).args(args).output().expect("effc runs")
}

fn shared(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/models").join(name)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A failure is exit code 1 with exactly one line on stderr.
fn assert_clean_failure(o: &Output, needle: &str) {
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line expected: {err}");
    assert!(err.contains(needle), "{err:?} should contain {needle:?}");
}

fn read_f32_npy(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = String::from_utf8_lossy(&bytes[10..10 + header_len]);
    assert!(header.contains("'<f4'"), "{header}");
    bytes[10 + header_len..].chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

/// Compiles `model` into `dir/name.{a,h}` with `extra` flags and links examples/c/top5.c
/// against it by the header's own `// link:` line; returns the program.
fn build_top5(model: &Path, dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let mut args = vec!["compile", model.to_str().unwrap(), "--emit", "lib", "-o", out.to_str().unwrap()];
    args.extend(extra);
    let o = effc(&args);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let said = text(&o.stdout);
    let header = std::fs::read_to_string(dir.join(format!("{name}.h"))).unwrap();
    let link = header.lines().find_map(|l| l.strip_prefix("// link: ")).expect("a link line");
    assert!(said.contains(&format!("link      {link}")), "effc prints the header's link line: {said}");
    // cc app.c OUT.a [libs]: the example stands in for app.c.
    let words: Vec<&str> = link.split_whitespace().collect();
    assert_eq!(words[..2], ["cc", "app.c"], "{link}");
    let app = dir.join(format!("top5_{name}"));
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/c/top5.c");
    let header_path = dir.join(format!("{name}.h"));
    let o = Command::new(words[0])
        .args(["-O2", "-Wall", "-Werror", &format!("-DMODEL={name}"), "-include", header_path.to_str().unwrap()])
        .arg(&example)
        .args(&words[2..])
        .arg("-o")
        .arg(&app)
        .output()
        .expect("the system cc runs");
    assert!(o.status.success(), "cc: {}", text(&o.stderr));
    app
}

/// Runs the program on `input`; returns its first output and its stdout.
fn run_top5(app: &Path, input: &Path, dir: &Path) -> (Vec<f32>, String) {
    let out = dir.join("out.npy");
    let o = Command::new(app).arg(input).arg("-o").arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    (read_f32_npy(&out), text(&o.stdout))
}

/// The same model through the JIT with the same code choice (pure Cranelift, one thread).
fn jit_output(model: &Path, input: &Path) -> Vec<f32> {
    let opts = effc::Options { kernels: effc::Kernels::Jit, keep_graph: false, ..Default::default() };
    let c = effc::compile_file(model, &opts).unwrap();
    let m = c.model().unwrap();
    let x = effc::input::load(input, &m.inputs()[0].shape).unwrap();
    m.run(&[x]).unwrap()[0].to_f32_vec()
}

fn top5(v: &[f32]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[b].total_cmp(&v[a]));
    idx.truncate(5);
    idx
}

fn assert_matches_ort(ours: &[f32], reference: &Path, printed: &str) {
    let ort = read_f32_npy(reference);
    let cmp = effc::compare::Comparison::new(ours, &ort);
    assert!(cmp.max_rel <= 1e-4, "{} vs onnxruntime: {cmp:?}", reference.display());
    let best = top5(&ort);
    assert_eq!(top5(ours), best, "top-5 vs onnxruntime");
    for (k, c) in best.iter().enumerate() {
        assert!(printed.contains(&format!("#{}  index {c}  ", k + 1)), "{printed}");
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// The shared torchvision B0 (NCHW) and Keras B0 (NHWC, raw pixels) as libraries: the C
/// program's outputs are onnxruntime's, and the JIT's bit for bit.
#[test]
fn b0_libraries_link_into_c_and_match_onnxruntime_and_the_jit() {
    let dir = tempfile::tempdir().unwrap();
    for (model, name, inputs) in [
        ("tv_b0_legacy.onnx", "tv_b0", [("cat_1x3x224x224.npy", "cat"), ("noise_1x3x224x224.npy", "noise")]),
        (
            "keras_b0_nhwc.onnx",
            "keras_b0",
            [("keras_cat_1x224x224x3.npy", "cat"), ("keras_noise_1x224x224x3.npy", "noise")],
        ),
    ] {
        let model = shared(model);
        let app = build_top5(&model, dir.path(), name, &[]);
        for (input, tag) in inputs {
            let input = shared(&format!("inputs/{input}"));
            let (ours, printed) = run_top5(&app, &input, dir.path());
            let stem = model.file_stem().unwrap().to_str().unwrap();
            assert_matches_ort(&ours, &shared(&format!("ref/{stem}.{tag}.ort.npy")), &printed);
            assert!(bits(&ours) == bits(&jit_output(&model, &input)), "{name} on {tag}: not the JIT's bits");
        }
    }
}

/// `--target-cpu`: x86-64-v3 code runs on every host of the project and computes the same
/// bits; x86-64-v4 code runs where AVX-512 is, and elsewhere `NAME_new` refuses it in one
/// line instead of faulting.
#[test]
fn target_levels_run_where_the_cpu_has_them_and_are_refused_cleanly_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let model = shared("tv_b0_legacy.onnx");
    let input = shared("inputs/cat_1x3x224x224.npy");
    let jit = jit_output(&model, &input);
    let v3 = build_top5(&model, dir.path(), "b0_v3", &["--target-cpu", "x86-64-v3"]);
    let (ours, _) = run_top5(&v3, &input, dir.path());
    assert!(bits(&ours) == bits(&jit), "x86-64-v3 code computes other bits than the JIT");
    let v4 = build_top5(&model, dir.path(), "b0_v4", &["--target-cpu", "x86-64-v4"]);
    let o = Command::new(&v4).arg(&input).output().unwrap();
    let has_v4 = ["avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"].iter().all(|f| match *f {
        "avx512f" => std::arch::is_x86_feature_detected!("avx512f"),
        "avx512bw" => std::arch::is_x86_feature_detected!("avx512bw"),
        "avx512cd" => std::arch::is_x86_feature_detected!("avx512cd"),
        "avx512dq" => std::arch::is_x86_feature_detected!("avx512dq"),
        _ => std::arch::is_x86_feature_detected!("avx512vl"),
    });
    if has_v4 {
        assert!(o.status.success(), "{}", text(&o.stderr));
    } else {
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains("b0_v4_new: this CPU (or its OS) lacks AVX-512"), "{err}");
        assert!(err.contains("--target-cpu x86-64-v4"), "{err}");
    }
}

/// Bad use is one line before anything is written: a model whose batch is symbolic (says
/// which `--input-shape` to give), an unwritable `-o`, a name that is no C identifier, an
/// unknown level, micro-kernels (not in artifacts yet).
#[test]
fn bad_use_of_emit_lib_is_one_line() {
    use effc_models::family::{Exporter, Family, efficientnet_styled};
    use effc_models::writer::{Dim, save};
    let dir = tempfile::tempdir().unwrap();
    let f = Family::efficientnet(0).unwrap();
    let dynamic = dir.path().join("b0_n.onnx");
    save(&efficientnet_styled(&f, Dim::Symbolic("N".into()), 32, 8, 5, Exporter::ExplicitBn), &dynamic).unwrap();
    let (m, out) = (dynamic.to_str().unwrap(), dir.path().join("lib"));
    let o = effc(&["compile", m, "--emit", "lib", "-o", out.to_str().unwrap()]);
    assert_clean_failure(&o, "input 'input' has dims [N, 3, 32, 32], but an artifact's shapes are fixed");
    assert!(text(&o.stderr).contains("--input-shape input=1x3x32x32"), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("b0_n.onnx"), "{}", text(&o.stderr));
    assert!(!out.with_extension("a").exists() && !out.with_extension("h").exists(), "nothing written");
    // With the shape given, it compiles.
    let o = effc(&["compile", m, "--emit", "lib", "-o", out.to_str().unwrap(), "--input-shape", "input=2x3x32x32"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let header = std::fs::read_to_string(out.with_extension("h")).unwrap();
    assert!(header.contains("f32 [2, 3, 32, 32]") && header.contains("size_t lib_input_size(size_t i);"), "{header}");
    let o = effc(&["compile", m, "--emit", "lib", "-o", "/nonexistent/dir/b0"]);
    assert_clean_failure(&o, "cannot write /nonexistent/dir/b0.a");
    let o = effc(&["compile", m, "--emit", "lib", "-o", out.to_str().unwrap(), "--name", "9lives"]);
    assert_clean_failure(&o, "--name '9lives'");
    let o = effc(&["compile", m, "--emit", "lib", "-o", out.to_str().unwrap(), "--target-cpu", "x86-64-v9"]);
    assert!(!o.status.success() && text(&o.stderr).contains("x86-64-v9"), "{}", text(&o.stderr));
    let shape = "input=1x3x32x32";
    let o = effc(&[
        "compile",
        m,
        "--emit",
        "lib",
        "-o",
        out.to_str().unwrap(),
        "--kernels",
        "portable",
        "--input-shape",
        shape,
    ]);
    assert_clean_failure(&o, "--kernels portable");
}
