//! `effc compile --emit lib`: the static library and header link into a C program
//! (examples/c/top5.c) with the system `cc`, whose outputs are onnxruntime's within
//! float tolerance and the JIT's bit for bit, on the same kernels and any thread count;
//! two models link into one program; the runtime archive exports `effc_rt_*` only; bad
//! use is one line.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{assert_clean_failure, effc, read_f32_npy, shared, stderr, write_b0_with_symbolic_batch};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Compiles `model` into `dir/name.{a,h}` with `extra` flags and links examples/c/top5.c
/// against it by the header's own `// link:` line; returns the program.
fn build_top5(model: &Path, dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let mut args = vec!["compile", model.to_str().unwrap(), "--emit", "lib", "-o", out.to_str().unwrap()];
    args.extend(extra);
    let o = effc(&args);
    assert!(o.status.success(), "{}", stderr(&o));
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
    assert!(o.status.success(), "cc: {}", stderr(&o));
    app
}

/// Runs the program on `input` with `threads`; returns its first output and its stdout.
fn run_top5(app: &Path, input: &Path, dir: &Path, threads: usize) -> (Vec<f32>, String) {
    let out = dir.join("out.npy");
    let o =
        Command::new(app).arg(input).arg("-o").arg(&out).args(["--threads", &threads.to_string()]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    (read_f32_npy(&out), text(&o.stdout))
}

/// The same model through the JIT with the same kernels and threads.
fn jit_output(model: &Path, input: &Path, kernels: effc::Kernels, threads: usize) -> Vec<f32> {
    let opts = effc::Options { kernels, keep_graph: false, ..Default::default() };
    let c = effc::compile_file(model, &opts).unwrap();
    let m = c.model().unwrap();
    let x = effc::input::load(input, &m.inputs()[0].shape, m.inputs()[0].dtype).unwrap();
    effc::Session::new(m, threads).unwrap().run(&[x]).unwrap()[0].to_f32_vec()
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

/// The shared torchvision B0 (NCHW) and Keras B0 (NHWC, raw pixels) as libraries, with
/// this CPU's micro-kernels (the runtime archive) and with Cranelift code only: the C
/// program's outputs are onnxruntime's, and the JIT's bit for bit on 1 and 2 threads.
#[test]
fn b0_libraries_link_into_c_and_match_onnxruntime_and_the_jit() {
    let dir = tempfile::tempdir().unwrap();
    let best = effc::Kernels::Isa(effc::Isa::detect());
    for (model, name, inputs) in [
        ("tv_b0_legacy.onnx", "tv_b0", [("cat_1x3x224x224.npy", "cat"), ("noise_1x3x224x224.npy", "noise")]),
        (
            "keras_b0_nhwc.onnx",
            "keras_b0",
            [("keras_cat_1x224x224x3.npy", "cat"), ("keras_noise_1x224x224x3.npy", "noise")],
        ),
    ] {
        let model = shared(model);
        for (kernels, flag) in [(best, "auto"), (effc::Kernels::Jit, "jit")] {
            let name = format!("{name}_{flag}");
            let app = build_top5(&model, dir.path(), &name, &["--kernels", flag]);
            let header = std::fs::read_to_string(dir.path().join(format!("{name}.h"))).unwrap();
            let runtime = header.lines().next().unwrap().contains(effc::RUNTIME_FILE);
            assert_eq!(runtime, kernels != effc::Kernels::Jit, "{header}");
            for (input, tag) in inputs {
                let input = shared(&format!("inputs/{input}"));
                let stem = model.file_stem().unwrap().to_str().unwrap();
                let jit = bits(&jit_output(&model, &input, kernels, 1));
                // Cranelift-only artifacts run on the calling thread.
                for threads in if runtime { vec![1, 2] } else { vec![1] } {
                    let (ours, printed) = run_top5(&app, &input, dir.path(), threads);
                    assert_matches_ort(&ours, &shared(&format!("ref/{stem}.{tag}.ort.npy")), &printed);
                    assert!(bits(&ours) == jit, "{name} on {tag}, {threads} threads: not the JIT's bits");
                }
            }
        }
    }
}

/// `--target-cpu`: x86-64-v3 code (AVX2 micro-kernels) runs on every host of the project
/// and computes the JIT's bits with those kernels; x86-64-v4 code runs where AVX-512 is,
/// and elsewhere `NAME_new` refuses it in one line instead of faulting.
#[test]
#[cfg(target_arch = "x86_64")]
fn target_levels_run_where_the_cpu_has_them_and_are_refused_cleanly_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let model = shared("tv_b0_legacy.onnx");
    let input = shared("inputs/cat_1x3x224x224.npy");
    let v3 = build_top5(&model, dir.path(), "b0_v3", &["--target-cpu", "x86-64-v3"]);
    let (ours, _) = run_top5(&v3, &input, dir.path(), 1);
    let jit = jit_output(&model, &input, effc::Kernels::Isa(effc::Isa::Avx2), 1);
    assert!(bits(&ours) == bits(&jit), "x86-64-v3 code computes other bits than the JIT");
    let v4 = build_top5(&model, dir.path(), "b0_v4", &["--target-cpu", "x86-64-v4", "--kernels", "jit"]);
    let o = Command::new(&v4).arg(&input).output().unwrap();
    let has_v4 = ["avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"].iter().all(|f| match *f {
        "avx512f" => std::arch::is_x86_feature_detected!("avx512f"),
        "avx512bw" => std::arch::is_x86_feature_detected!("avx512bw"),
        "avx512cd" => std::arch::is_x86_feature_detected!("avx512cd"),
        "avx512dq" => std::arch::is_x86_feature_detected!("avx512dq"),
        _ => std::arch::is_x86_feature_detected!("avx512vl"),
    });
    if has_v4 {
        assert!(o.status.success(), "{}", stderr(&o));
    } else {
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains("b0_v4_new: this CPU (or its OS) lacks AVX-512"), "{err}");
        assert!(err.contains("--target-cpu x86-64-v4"), "{err}");
    }
}

/// Two models compiled with different names, one with micro-kernels and one without,
/// link into one C program with the one runtime archive of their directory, and each
/// computes its own model's outputs; the archives define their own symbols only.
#[test]
fn two_models_link_into_one_program() {
    let dir = tempfile::tempdir().unwrap();
    let (tv, keras) = (shared("tv_b0_legacy.onnx"), shared("keras_b0_nhwc.onnx"));
    for (model, name, kernels) in [(&tv, "tv", "auto"), (&keras, "keras", "avx2")] {
        let o = effc(
            &["compile", model.to_str().unwrap(), "--emit", "lib", "-o"]
                .into_iter()
                .chain([dir.path().join(name).to_str().unwrap(), "--kernels", kernels])
                .collect::<Vec<_>>(),
        );
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let program = r#"
#include <stdio.h>
#include <stdlib.h>
#include "tv.h"
#include "keras.h"
/* argv: tv input, keras input, tv output, keras output (raw little-endian f32). */
static float *load(const char *path, size_t n) {
    float *v = malloc(n * sizeof(float));
    FILE *f = fopen(path, "rb");
    if (!v || !f || fread(v, sizeof(float), n, f) != n) exit(3);
    fclose(f);
    return v;
}
static void save(const char *path, const float *v, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(v, sizeof(float), n, f) != n || fclose(f)) exit(4);
}
int main(int argc, char **argv) {
    if (argc != 5) return 2;
    float *x1 = load(argv[1], tv_input_size(0)), *x2 = load(argv[2], keras_input_size(0));
    float *y1 = malloc(tv_output_size(0) * sizeof(float)), *y2 = malloc(keras_output_size(0) * sizeof(float));
    tv_ctx *a = tv_new(2);
    keras_ctx *b = keras_new(1);
    if (!a || !b) { fprintf(stderr, "%s%s\n", tv_last_error(), keras_last_error()); return 1; }
    const float *in1[] = {x1}, *in2[] = {x2};
    float *out1[] = {y1}, *out2[] = {y2};
    if (tv_run(a, in1, out1) || keras_run(b, in2, out2)) return 1;
    save(argv[3], y1, tv_output_size(0));
    save(argv[4], y2, keras_output_size(0));
    tv_free(a);
    keras_free(b);
    return 0;
}
"#;
    std::fs::write(dir.path().join("two.c"), program).unwrap();
    let (tv_h, keras_h) = (dir.path().join("tv.h"), dir.path().join("keras.h"));
    let link = |h: &Path| {
        let header = std::fs::read_to_string(h).unwrap();
        let line = header.lines().next().unwrap().strip_prefix("// link: cc app.c ").unwrap().to_string();
        line.split_whitespace().map(str::to_string).collect::<Vec<_>>()
    };
    let (l1, l2) = (link(&tv_h), link(&keras_h));
    let runtime = dir.path().join(effc::RUNTIME_FILE);
    assert!(l1.contains(&runtime.display().to_string()) && l2.contains(&runtime.display().to_string()));
    let mut words: Vec<String> = l1.clone();
    words.extend(l2.into_iter().filter(|w| !l1.contains(w)));
    let app = dir.path().join("two");
    let o = Command::new("cc")
        .args(["-O2", "-Wall", "-Werror", "-I", dir.path().to_str().unwrap()])
        .arg(dir.path().join("two.c"))
        .args(&words)
        .arg("-o")
        .arg(&app)
        .output()
        .unwrap();
    assert!(o.status.success(), "cc: {}", stderr(&o));
    let raw = |npy: &Path, name: &str| {
        let v = read_f32_npy(npy);
        let p = dir.path().join(name);
        std::fs::write(&p, v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
        p
    };
    let x1 = raw(&shared("inputs/cat_1x3x224x224.npy"), "x1.bin");
    let x2 = raw(&shared("inputs/keras_cat_1x224x224x3.npy"), "x2.bin");
    let (y1, y2) = (dir.path().join("y1.bin"), dir.path().join("y2.bin"));
    let o = Command::new(&app).args([&x1, &x2, &y1, &y2]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let floats = |p: &Path| -> Vec<f32> {
        std::fs::read(p).unwrap().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
    };
    for (y, r) in [(&y1, "ref/tv_b0_legacy.cat.ort.npy"), (&y2, "ref/keras_b0_nhwc.cat.ort.npy")] {
        let cmp = effc::compare::Comparison::new(&floats(y), &read_f32_npy(&shared(r)));
        assert!(cmp.max_rel <= 1e-4, "{r}: {cmp:?}");
    }
    // What each archive exports: its own prefix only (no Rust standard library symbol).
    for (archive, prefix) in [("tv.a", "tv_"), ("keras.a", "keras_"), (effc::RUNTIME_FILE, "effc_rt_")] {
        let o =
            Command::new("nm").args(["-g", "--defined-only", "--format=posix"]).arg(dir.path().join(archive)).output();
        let Ok(o) = o else { continue };
        let listed = text(&o.stdout);
        let names: Vec<&str> =
            listed.lines().filter(|l| !l.ends_with(':')).filter_map(|l| l.split_whitespace().next()).collect();
        assert!(!names.is_empty(), "{archive}: {listed}");
        assert!(names.iter().all(|n| n.starts_with(prefix)), "{archive} exports {names:?}");
    }
}

/// `--int8-weights`: a QDQ Lite0 whose products read int8 weight panels with per-column
/// scales (pointers the library relocates) computes in C what the JIT computes with the
/// same option, bit for bit on 1 and 2 threads, from a library under 1/3 of the f32 one.
#[test]
fn int8_weight_panels_link_into_c_and_match_the_jit() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("lite0_qdq.onnx");
    common::write_lite0_qdq(&model);
    let input = dir.path().join("x.npy");
    effc::input::save_npy(&input, &effc::input::seeded_noise(&[1, 3, 48, 48], 5)).unwrap();
    let app = build_top5(&model, dir.path(), "lite0_i8", &["--int8-weights"]);
    build_top5(&model, dir.path(), "lite0_f32", &[]);
    let size = |name: &str| std::fs::metadata(dir.path().join(format!("{name}.a"))).unwrap().len();
    assert!(3 * size("lite0_i8") < size("lite0_f32"), "{} vs {} bytes", size("lite0_i8"), size("lite0_f32"));
    let opts = effc::Options { int8_weights: true, keep_graph: false, ..Default::default() };
    let c = effc::compile_file(&model, &opts).unwrap();
    let x = effc::input::load(&input, &[1, 3, 48, 48], effc::DType::F32).unwrap();
    let jit = bits(&effc::Session::new(c.model().unwrap(), 1).unwrap().run(&[x]).unwrap()[0].to_f32_vec());
    for threads in [1, 2] {
        let (ours, _) = run_top5(&app, &input, dir.path(), threads);
        assert!(bits(&ours) == jit, "{threads} threads: not the JIT's bits");
    }
}

/// Bad use is one line before anything is written: a model whose batch is symbolic (says
/// which `--input-shape` to give), an unwritable `-o`, a name that is no C identifier, an
/// unknown level, micro-kernels the level lacks.
#[test]
fn bad_use_of_emit_lib_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let dynamic = dir.path().join("b0_n.onnx");
    write_b0_with_symbolic_batch(&dynamic);
    let (m, out) = (dynamic.to_str().unwrap(), dir.path().join("lib"));
    let o = effc(&["compile", m, "--emit", "lib", "-o", out.to_str().unwrap()]);
    assert_clean_failure(&o, "input 'input' has dims [N, 3, 32, 32], but an artifact's shapes are fixed");
    assert!(stderr(&o).contains("--input-shape input=1x3x32x32"), "{}", stderr(&o));
    assert!(stderr(&o).contains("b0_n.onnx"), "{}", stderr(&o));
    assert!(!out.with_extension("a").exists() && !out.with_extension("h").exists(), "nothing written");
    // With the shape given, it compiles.
    let o = effc(&["compile", m, "--emit", "lib", "-o", out.to_str().unwrap(), "--input-shape", "input=2x3x32x32"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let header = std::fs::read_to_string(out.with_extension("h")).unwrap();
    assert!(header.contains("f32 [2, 3, 32, 32]") && header.contains("size_t lib_input_size(size_t i);"), "{header}");
    let o = effc(&["compile", m, "--emit", "lib", "-o", "/nonexistent/dir/b0"]);
    assert_clean_failure(&o, "cannot write /nonexistent/dir/b0.a");
    let o = effc(&["compile", m, "--emit", "lib", "-o", out.to_str().unwrap(), "--name", "9lives"]);
    assert_clean_failure(&o, "--name '9lives'");
    let o = effc(&["compile", m, "--emit", "lib", "-o", out.to_str().unwrap(), "--target-cpu", "x86-64-v9"]);
    assert!(!o.status.success() && stderr(&o).contains("x86-64-v9"), "{}", stderr(&o));
    let shape = "input=1x3x32x32";
    let o = effc(&[
        "compile",
        m,
        "--emit",
        "lib",
        "-o",
        out.to_str().unwrap(),
        "--kernels",
        "avx512",
        "--target-cpu",
        "x86-64-v3",
        "--input-shape",
        shape,
    ]);
    assert_clean_failure(
        &o,
        "--kernels avx512: its micro-kernels need AVX-512F, which --target-cpu x86-64-v3 does not have",
    );
}
