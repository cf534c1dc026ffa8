//! The shared EfficientNet-B0 exports against both oracles: tract (run here, on the same
//! inputs) and onnxruntime (its stored outputs).

mod common;

use common::shared_models;
use effc::compare::Comparison;
use ndarray::ArrayD;
use ndarray_npy::read_npy;

fn npy(path: &std::path::Path) -> ArrayD<f32> {
    read_npy(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const TOLERANCE: f64 = 1e-4;

#[test]
fn shared_b0_models_match_tract_and_onnxruntime() {
    let models = shared_models();
    for name in ["tv_b0_legacy", "tv_b0_bn", "tv_b0_dynamo"] {
        let path = models.join(format!("{name}.onnx"));
        let c = effc::compile_file(&path, &effc::Options::default()).unwrap_or_else(|e| panic!("{e}"));
        let model = c.model().unwrap();
        let tract = effc_tract::Reference::load(&path, &[vec![1, 3, 224, 224]], &[]).unwrap();
        for input in ["cat", "noise"] {
            let x = npy(&models.join(format!("inputs/{input}_1x3x224x224.npy")));
            let x = x.as_slice().unwrap();
            let mut out = vec![0f32; 1000];
            model.run_into(&[effc::TensorRef::F32(x)], &mut [effc::TensorMut::F32(&mut out)]).unwrap();
            let ort = npy(&models.join(format!("ref/{name}.{input}.ort.npy")));
            let vs_ort = Comparison::new(&out, ort.as_slice().unwrap());
            let t = tract.run(&[x]).unwrap();
            assert_eq!(t[0].shape, [1, 1000]);
            let vs_tract = Comparison::new(&out, &t[0].data);
            println!(
                "{name} {input}: vs tract max_abs {:.2e} max_rel {:.2e}; vs ORT max_abs {:.2e} max_rel {:.2e}",
                vs_tract.max_abs, vs_tract.max_rel, vs_ort.max_abs, vs_ort.max_rel
            );
            assert!(vs_tract.passes(TOLERANCE), "{name} on {input} vs tract: {vs_tract:?}");
            assert!(vs_ort.passes(TOLERANCE), "{name} on {input} vs onnxruntime: {vs_ort:?}");
        }
    }
}

/// Every kernel path (AVX-512, AVX2, portable micro-kernels and pure JIT, as far as this
/// CPU has them) computes B0 within tolerance of onnxruntime's stored outputs, the
/// micro-kernel paths reading the input image in place.
#[test]
fn every_kernel_path_matches_onnxruntime() {
    let models = shared_models();
    let path = models.join("tv_b0_legacy.onnx");
    let paths = common::kernel_paths();
    assert!(paths.len() >= 2, "at least portable and pure JIT: {paths:?}");
    for kernels in paths {
        let c = effc::compile_file(&path, &effc::Options { kernels, ..Default::default() }).unwrap();
        let model = c.model().unwrap();
        for input in ["cat", "noise"] {
            let vs_ort =
                common::vs_onnxruntime(model, &format!("{input}_1x3x224x224"), &format!("tv_b0_legacy.{input}"));
            println!("{kernels}: {input} vs ORT max_abs {:.2e} max_rel {:.2e}", vs_ort.max_abs, vs_ort.max_rel);
            assert!(vs_ort.passes(TOLERANCE), "{kernels} on {input} vs onnxruntime: {vs_ort:?}");
        }
        // With micro-kernels the stem gathers its patches from the caller's NCHW image:
        // no step copies the image into channels-last first.
        let steps = model.profile(&[effc::input::seeded_noise(&[1, 3, 224, 224], 0)], 1).unwrap();
        let copies_input = steps.iter().any(|(name, _)| name.starts_with("input_"));
        assert_eq!(copies_input, kernels == effc::Kernels::Jit, "{kernels}: {steps:?}");
    }
}

/// One CompiledModel shared by 8 threads, 20 runs each on different inputs: every output is
/// bit-identical to the single-threaded run of the same input. Teams splitting each
/// kernel give the same bits too.
#[test]
fn concurrent_runs_are_bit_identical() {
    let c = effc::compile_file(shared_models().join("tv_b0_legacy.onnx"), &effc::Options::default()).unwrap();
    let model = c.model().unwrap();
    let inputs: Vec<effc::Tensor> = (0..4).map(|s| effc::input::seeded_noise(&[1, 3, 224, 224], s)).collect();
    let expected: Vec<Vec<f32>> =
        inputs.iter().map(|x| model.run(std::slice::from_ref(x)).unwrap()[0].to_f32_vec()).collect();
    run_concurrently(
        8,
        20,
        &inputs,
        &expected,
        |x| model.run(std::slice::from_ref(x)).unwrap()[0].to_f32_vec(),
        "model",
    );
    // Teams of 2 and 3 (more threads than this machine's cores: a descheduled thread's
    // chunks go to the others), and one 2-thread session shared by 3 callers at once
    // (a caller that finds the team busy runs its step alone).
    for threads in [2, 3] {
        let session = effc::Session::new(model, threads).unwrap();
        for (x, want) in inputs.iter().zip(&expected) {
            let got = session.run(std::slice::from_ref(x)).unwrap()[0].to_f32_vec();
            assert!(same_bits(&got, want), "{threads}-thread team");
        }
    }
    let session = effc::Session::new(model, 2).unwrap();
    let shared = |x: &effc::Tensor| session.run(std::slice::from_ref(x)).unwrap()[0].to_f32_vec();
    run_concurrently(3, 5, &inputs, &expected, shared, "shared session");
}

/// `callers` threads at once, `runs` runs each over the inputs in turn: every output has
/// the bits of the expected one for its input.
fn run_concurrently(
    callers: usize,
    runs: usize,
    inputs: &[effc::Tensor],
    expected: &[Vec<f32>],
    run: impl Fn(&effc::Tensor) -> Vec<f32> + Sync,
    what: &str,
) {
    std::thread::scope(|s| {
        for t in 0..callers {
            let run = &run;
            s.spawn(move || {
                for r in 0..runs {
                    let k = (t + r) % inputs.len();
                    assert!(same_bits(&run(&inputs[k]), &expected[k]), "{what}: caller {t} run {r}");
                }
            });
        }
    });
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

#[test]
fn wrong_inputs_are_errors() {
    let c = effc::compile_file(shared_models().join("tv_b0_dynamo.onnx"), &effc::Options::default()).unwrap();
    let model = c.model().unwrap();
    let short = vec![0f32; 3 * 224 * 223];
    let mut out = vec![0f32; 1000];
    let e = model.run_into(&[effc::TensorRef::F32(&short)], &mut [effc::TensorMut::F32(&mut out)]).unwrap_err();
    assert!(e.to_string().contains("input 'input' must be f32"), "{e}");
    let wide = vec![0f64; 3 * 224 * 224];
    let e = model.run_into(&[effc::TensorRef::F64(&wide)], &mut [effc::TensorMut::F32(&mut out)]).unwrap_err();
    assert!(e.to_string().contains("got 150528 f64"), "{e}");
    let mut small = vec![0f32; 999];
    let x = vec![0f32; 3 * 224 * 224];
    let e = model.run_into(&[effc::TensorRef::F32(&x)], &mut [effc::TensorMut::F32(&mut small)]).unwrap_err();
    assert!(e.to_string().contains("output 'logits'"), "{e}");
    let t = effc::Tensor::from_f32(vec![1, 224, 224, 3], x).unwrap();
    let e = model.run(&[t]).unwrap_err();
    assert!(e.to_string().contains("[1, 3, 224, 224]"), "{e}");
}

#[test]
fn compiled_model_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<effc::CompiledModel>();
    assert_send_sync::<effc::Compilation>();
}

/// Compiling without keeping the graph (as the CLI does: each weight is dropped once its
/// packed copy exists) gives the same model: bit-identical outputs to a compilation that
/// keeps the graph, within tolerance of onnxruntime's, and an empty graph.
#[test]
fn compiling_without_the_graph_gives_the_same_model() {
    let models = shared_models();
    let x = npy(&models.join("inputs/cat_1x3x224x224.npy"));
    let x = x.as_slice().unwrap();
    for name in ["tv_b0_legacy", "tv_b0_bn", "tv_b0_dynamo"] {
        let path = models.join(format!("{name}.onnx"));
        let run = |keep_graph: bool| {
            let c = effc::compile_file(&path, &effc::Options { keep_graph, ..Default::default() }).unwrap();
            let mut out = vec![0f32; 1000];
            c.model().unwrap().run_into(&[effc::TensorRef::F32(x)], &mut [effc::TensorMut::F32(&mut out)]).unwrap();
            (out, c.graph.node_ids().count(), c.summary.params)
        };
        let (kept, kept_nodes, kept_params) = run(true);
        let (lean, lean_nodes, lean_params) = run(false);
        assert_eq!(lean, kept, "{name}: outputs differ");
        assert!(kept_nodes > 0 && lean_nodes == 0, "{name}: {kept_nodes} nodes kept, {lean_nodes} without the graph");
        assert_eq!(lean_params, kept_params, "{name}: the summary still counts the parameters");
        let ort = npy(&models.join(format!("ref/{name}.cat.ort.npy")));
        let vs_ort = Comparison::new(&lean, ort.as_slice().unwrap());
        assert!(vs_ort.passes(TOLERANCE), "{name} without the graph vs onnxruntime: {vs_ort:?}");
    }
}
