//! Shapes at run time: a model with a symbolic batch runs whatever batch it is fed,
//! compiling each new one once and caching it, within one memory budget.

mod common;

use std::path::Path;

use effc::{Model, Options, Tensor, TensorData};
use effc_models::family::{Exporter, Family, efficientnet_styled};
use effc_models::writer::{Dim, GraphBuilder};
use effc_onnx::proto::tensor_proto::DataType;

const RES: usize = 32;
const CLASSES: usize = 8;

/// The writer's B0 at 32×32 with a symbolic batch `N`, in `style`.
fn b0_symbolic(style: Exporter) -> (tempfile::TempDir, std::path::PathBuf) {
    let f = Family::efficientnet(0).unwrap();
    common::write_temp(&efficientnet_styled(&f, Dim::Symbolic("N".into()), RES, CLASSES, 5, style))
}

/// The input shape of a batch of `n` in `style`'s layout.
fn input_shape(style: Exporter, n: usize) -> Vec<usize> {
    match style {
        Exporter::KerasNhwc => vec![n, RES, RES, 3],
        _ => vec![n, 3, RES, RES],
    }
}

fn batch(style: Exporter, n: usize, seed: u64) -> Tensor {
    let shape = input_shape(style, n);
    let len = shape.iter().product();
    Tensor::new(shape, TensorData::F32(common::noise(len, seed).into())).unwrap()
}

fn assert_matches_tract(path: &Path, x: &Tensor, ours: &Tensor) {
    let tract = effc_tract::Reference::load(path, &[x.shape().to_vec()], &[]).unwrap();
    let theirs = tract.run(&[&x.to_f32_vec()]).unwrap();
    assert_eq!(ours.shape(), theirs[0].shape.as_slice());
    let cmp = effc::compare::Comparison::new(&ours.to_f32_vec(), &theirs[0].data);
    assert!(cmp.max_rel <= 1e-4, "batch {:?}: {cmp:?}", x.shape());
}

/// Batches 1, 3, 8 and 1 again, each against tract, in three spellings: NCHW with explicit
/// BN, Keras' NHWC, and timm's TF-"same" padding chain, which folds per shape. Batch 1 is
/// compiled at load and reused; every specialisation uses one copy of the packed weights.
#[test]
fn a_symbolic_batch_runs_any_batch_and_matches_tract() {
    for style in [Exporter::ExplicitBn, Exporter::KerasNhwc, Exporter::TfSamePadding] {
        let (_dir, path) = b0_symbolic(style);
        let model = Model::load(&path, &Options::default()).unwrap();
        assert!(model.has_free_dims());
        assert_eq!(model.cached_shapes(), vec![vec![input_shape(style, 1)]], "batch 1 is compiled at load");
        for (n, seed) in [(1, 1), (3, 2), (8, 3), (1, 4)] {
            let x = batch(style, n, seed);
            let y = model.run(std::slice::from_ref(&x)).unwrap();
            assert_matches_tract(&path, &x, &y[0]);
        }
        let cached = model.cached_shapes();
        assert_eq!(cached, [1, 8, 3].map(|n| vec![input_shape(style, n)]).to_vec(), "most recent first");
        let specs: Vec<_> = cached.iter().map(|s| model.specialise(&[&s[0]]).unwrap()).collect();
        let shared = specs[0].compiled.shared_const_bytes();
        assert!(shared > 100_000, "{style:?}: the packed weights are in the store ({shared} bytes)");
        assert!(specs.iter().all(|s| s.compiled.shared_const_bytes() == shared), "{style:?}");
        let own: usize = specs.iter().map(|s| s.compiled.arena_bytes() + s.compiled.const_bytes() - shared).sum();
        assert_eq!(model.memory_bytes(), shared + own, "{style:?}: the weights are held once");
    }
}

/// Four threads on one model, each with its own batch, compile their shapes concurrently
/// and compute the same bits as the same calls made one after another.
#[test]
fn threads_with_different_batches_match_sequential_bits() {
    let style = Exporter::ExplicitBn;
    let (_dir, path) = b0_symbolic(style);
    let inputs: Vec<Tensor> = (1..=4).map(|n| batch(style, n, n as u64)).collect();
    let sequential: Vec<Vec<f32>> = {
        let model = Model::load(&path, &Options::default()).unwrap();
        inputs.iter().map(|x| model.run(std::slice::from_ref(x)).unwrap()[0].to_f32_vec()).collect()
    };
    let model = Model::load(&path, &Options::default()).unwrap();
    std::thread::scope(|s| {
        for (x, want) in inputs.iter().zip(&sequential) {
            let model = &model;
            s.spawn(move || {
                for _ in 0..5 {
                    let got = model.run(std::slice::from_ref(x)).unwrap()[0].to_f32_vec();
                    assert!(got.iter().zip(want).all(|(a, b)| a.to_bits() == b.to_bits()), "batch {:?}", x.shape());
                }
            });
        }
    });
    assert_eq!(model.cached_shapes().len(), 4);
}

/// The cache keeps `shape_cache` shapes, least recently used out first; the memory budget
/// evicts others to make room, and refuses, in one line, shapes that do not fit even alone.
#[test]
fn the_cache_bound_and_the_memory_budget_are_enforced() {
    let style = Exporter::ExplicitBn;
    let (_dir, path) = b0_symbolic(style);
    let shape = |n| input_shape(style, n);
    let model = Model::load(&path, &Options { shape_cache: 2, ..Options::default() }).unwrap();
    for n in [2, 3] {
        model.run(&[batch(style, n, 0)]).unwrap();
    }
    assert_eq!(model.cached_shapes(), vec![vec![shape(3)], vec![shape(2)]]);

    // A budget that holds the shared weights with batch 16's own memory, or batch 1's, but
    // not both; batch 64 does not fit alone.
    let probe = Model::load(&path, &Options::default()).unwrap();
    let own = |n: usize| {
        let s = probe.specialise(&[&shape(n)]).unwrap();
        (s.compiled.arena_bytes() + s.compiled.const_bytes() - s.compiled.shared_const_bytes(), s)
    };
    let ((own_1, _), (own_16, s16), (own_64, _)) = (own(1), own(16), own(64));
    let weights = probe.memory_bytes() - own_1 - own_16 - own_64;
    // The lowering's own check before packing: the arena plus every parameter as f32.
    let before_packing = s16.compiled.arena_bytes() + s16.summary.params as usize * 4;
    let cap = (weights + own_16 + own_1 / 2).max(before_packing);
    assert!(cap < weights + own_16 + own_1 && cap < weights + own_64, "{weights} {own_1} {own_16} {own_64}");
    drop((s16, probe));
    let model = Model::load(&path, &Options { max_memory: Some(cap), ..Options::default() }).unwrap();
    model.run(&[batch(style, 16, 0)]).unwrap();
    assert_eq!(model.cached_shapes(), vec![vec![shape(16)]], "batch 1 made room");
    assert!(model.memory_bytes() <= cap);
    let e = model.run(&[batch(style, 64, 0)]).unwrap_err().to_string();
    assert!(e.contains("input shapes [64, 3, 32, 32]: ") && e.contains("memory cap"), "{e}");
    assert!(e.contains("model.onnx"), "{e}");
    assert_eq!(e.lines().count(), 1);
    assert!(model.run(&[batch(style, 1, 0)]).is_ok(), "a refused shape leaves the model usable");
}

/// Data that does not fit the declared dims is refused in one line naming the input, the
/// declared dims (symbols by name) and the data's shape; a static model runs only its shape.
#[test]
fn shapes_that_do_not_fit_are_named() {
    let (_dir, path) = b0_symbolic(Exporter::ExplicitBn);
    let model = Model::load(&path, &Options::default()).unwrap();
    let x = Tensor::new(vec![2, 4, RES, RES], TensorData::F32(vec![0.0; 2 * 4 * RES * RES].into())).unwrap();
    let e = model.run(&[x]).unwrap_err().to_string();
    assert!(
        e.contains("input 'input': the data's shape [2, 4, 32, 32] does not fit the declared dims [N, 3, 32, 32]"),
        "{e}"
    );
    let f = Family::efficientnet(0).unwrap();
    let (_d, fixed) =
        common::write_temp(&efficientnet_styled(&f, Dim::Fixed(1), RES, CLASSES, 5, Exporter::ExplicitBn));
    let model = Model::load(&fixed, &Options::default()).unwrap();
    assert!(!model.has_free_dims());
    let e = model.run(&[batch(Exporter::ExplicitBn, 2, 0)]).unwrap_err().to_string();
    assert!(e.contains("does not fit the declared dims [1, 3, 32, 32]"), "{e}");
    assert!(model.run(&[batch(Exporter::ExplicitBn, 1, 0)]).is_ok());

    // Two inputs that share a symbol must agree on its value.
    let mut g = GraphBuilder::new(17);
    let dims = [Dim::Symbolic("N".into()), Dim::Fixed(4)];
    let a = g.input("a", DataType::Float, &dims);
    let b = g.input("b", DataType::Float, &dims);
    let sum = g.node("Add", &[&a, &b], vec![]);
    g.output(&sum);
    let (_d2, two) = common::write_temp(&g.build());
    let model = Model::load(&two, &Options::default()).unwrap();
    let t = |n: usize| Tensor::new(vec![n, 4], TensorData::F32((0..n * 4).map(|i| i as f32).collect())).unwrap();
    let e = model.run(&[t(2), t(3)]).unwrap_err().to_string();
    assert!(e.contains("input 'b': dim 'N' is 3 here but 2 in input 'a'"), "{e}");
    let y = model.run(&[t(3), t(3)]).unwrap();
    assert_eq!(y[0].shape(), [3, 4]);
    assert_eq!(y[0].to_f32_vec(), (0..12).map(|i| 2.0 * i as f32).collect::<Vec<_>>());

    // Two symbolic dims have no default: a single compilation names them, a Model waits for
    // data to bind them.
    let mut g = GraphBuilder::new(17);
    let x = g.input("x", DataType::Float, &[Dim::Symbolic("N".into()), Dim::Symbolic("C".into())]);
    let y = g.node("Relu", &[&x], vec![]);
    g.output(&y);
    let m = g.build();
    let e = common::compile_err(&m);
    assert!(e.contains("input 'x': dims [N, C] are not static"), "{e}");
    let (_d3, free) = common::write_temp(&m);
    let model = Model::load(&free, &Options::default()).unwrap();
    assert!(model.cached_shapes().is_empty(), "nothing to compile before data binds N and C");
    let x = Tensor::new(vec![2, 3], TensorData::F32(vec![-1.0, 2.0, -3.0, 4.0, 0.5, -0.5].into())).unwrap();
    assert_eq!(model.run(&[x]).unwrap()[0].to_f32_vec(), [0.0, 2.0, 0.0, 4.0, 0.5, 0.0]);
}
