//! Writer-built MBConv-style models, batch 1 and batch > 1 (fixed and symbolic), against
//! tract.

mod common;

use common::*;
use effc::compare::Comparison;
use effc_models::writer::*;
use effc_onnx::proto::ModelProto;
use effc_onnx::proto::tensor_proto::DataType;

/// Applies the named activation the way exporters spell it.
fn activation(b: &mut GraphBuilder, x: &str, act: &str) -> String {
    match act {
        "swish" => {
            let s = b.node("Sigmoid", &[x], vec![]);
            b.node("Mul", &[x, &s], vec![])
        }
        "relu6" => {
            let (lo, hi) = (b.weight_f32("lo", &[], &[0.0]), b.weight_f32("hi", &[], &[6.0]));
            b.node("Clip", &[x, &lo, &hi], vec![])
        }
        "hardswish" => {
            let s = b.node("HardSigmoid", &[x], vec![attr_float("alpha", 1.0 / 6.0), attr_float("beta", 0.5)]);
            b.node("Mul", &[&s, x], vec![])
        }
        other => panic!("{other}"),
    }
}

/// stem conv (3×3 s2) → BN → act → depthwise 3×3 → act → SE → project 1×1 (+ residual)
/// → GAP → Gemm.
fn mini_net(batch: Dim, hw: i64, seed: u64) -> ModelProto {
    mini_net_with(batch, hw, seed, "swish")
}

fn mini_net_with(batch: Dim, hw: i64, seed: u64, act: &str) -> ModelProto {
    let (c0, c1, classes) = (8i64, 8i64, 10i64);
    let mut b = GraphBuilder::new(13);
    let x = b.input("x", DataType::Float, &[batch, 3.into(), hw.into(), hw.into()]);
    let w = b.weight_f32("stem_w", &[c0, 3, 3, 3], &scaled(noise(c0 as usize * 27, seed), 0.3));
    let y = b.node("Conv", &[&x, &w], vec![attr_ints("strides", &[2, 2]), attr_ints("pads", &[1, 1, 1, 1])]);
    let bn: Vec<String> = (0..4)
        .map(|i| {
            let v: Vec<f32> =
                noise(c0 as usize, seed + 10 + i).iter().map(|v| if i == 3 { 1.0 + v.abs() } else { *v }).collect();
            b.weight_f32("bn", &[c0], &v)
        })
        .collect();
    let y = b.node("BatchNormalization", &[&y, &bn[0], &bn[1], &bn[2], &bn[3]], vec![attr_float("epsilon", 1e-3)]);
    let block_in = activation(&mut b, &y, act);
    let dw = b.weight_f32("dw", &[c0, 1, 3, 3], &scaled(noise(c0 as usize * 9, seed + 2), 0.5));
    let y = b.node("Conv", &[&block_in, &dw], vec![attr_int("group", c0), attr_ints("pads", &[1, 1, 1, 1])]);
    let y = activation(&mut b, &y, act);
    let p = b.node("GlobalAveragePool", &[&y], vec![]);
    let w1 = b.weight_f32("se1", &[4, c0, 1, 1], &scaled(noise(4 * c0 as usize, seed + 3), 0.5));
    let b1 = b.weight_f32("se1b", &[4], &noise(4, seed + 4));
    let p = b.node("Conv", &[&p, &w1, &b1], vec![]);
    let ps = b.node("Sigmoid", &[&p], vec![]);
    let p = b.node("Mul", &[&p, &ps], vec![]);
    let w2 = b.weight_f32("se2", &[c0, 4, 1, 1], &scaled(noise(4 * c0 as usize, seed + 5), 0.5));
    let p = b.node("Conv", &[&p, &w2], vec![]);
    let p = b.node("Sigmoid", &[&p], vec![]);
    let y = b.node("Mul", &[&y, &p], vec![]);
    let wp = b.weight_f32("proj", &[c1, c0, 1, 1], &scaled(noise((c1 * c0) as usize, seed + 6), 0.4));
    let y = b.node("Conv", &[&y, &wp], vec![]);
    let y = b.node("Add", &[&y, &block_in], vec![]);
    let y = b.node("GlobalAveragePool", &[&y], vec![]);
    let y = b.node("Flatten", &[&y], vec![attr_int("axis", 1)]);
    let wg = b.weight_f32("fc", &[classes, c1], &noise((classes * c1) as usize, seed + 7));
    let bg = b.weight_f32("fcb", &[classes], &noise(classes as usize, seed + 8));
    let y = b.node("Gemm", &[&y, &wg, &bg], vec![attr_int("transB", 1)]);
    b.output(&y);
    b.build()
}

fn scaled(v: Vec<f32>, s: f32) -> Vec<f32> {
    v.into_iter().map(|x| x * s).collect()
}

fn check_against_tract(m: &ModelProto, opts: &effc::Options, batch: usize, hw: usize) {
    let (_dir, path) = write_temp(m);
    let c = effc::compile_file(&path, opts).unwrap_or_else(|e| panic!("{e}"));
    let model = c.model().unwrap();
    let shape = vec![batch, 3, hw, hw];
    assert_eq!(model.inputs()[0].shape, shape);
    let tract = effc_tract::Reference::load(&path, std::slice::from_ref(&shape), &[]).unwrap();
    for seed in 0..3 {
        let x = effc::input::seeded_noise(&shape, seed);
        let ours = model.run(std::slice::from_ref(&x)).unwrap();
        let theirs = tract.run(&[&x.to_f32_vec()]).unwrap();
        assert_eq!(ours[0].shape(), theirs[0].shape.as_slice());
        let cmp = Comparison::new(&ours[0].to_f32_vec(), &theirs[0].data);
        assert!(cmp.max_rel <= 1e-4 && cmp.cosine > 0.999_999, "batch {batch} seed {seed}: {cmp:?}");
    }
}

#[test]
fn mbconv_style_net_matches_tract_at_batch_1_and_3() {
    check_against_tract(&mini_net(1.into(), 33, 1), &effc::Options::default(), 1, 33);
    check_against_tract(&mini_net(3.into(), 20, 2), &effc::Options::default(), 3, 20);
}

#[test]
fn symbolic_batch_is_bound_from_the_options() {
    let m = mini_net("N".into(), 17, 3);
    check_against_tract(&m, &effc::Options::default(), 1, 17);
    let mut opts = effc::Options::default();
    opts.input_shapes.insert("x".into(), vec![4, 3, 17, 17]);
    check_against_tract(&m, &opts, 4, 17);
}

#[test]
fn fused_and_unfused_agree_with_tract_for_each_activation() {
    for act in ["swish", "relu6", "hardswish"] {
        let m = mini_net_with(2.into(), 15, 4, act);
        check_against_tract(&m, &effc::Options::default(), 2, 15);
        check_against_tract(&m, &effc::Options { fuse: false, ..Default::default() }, 2, 15);
        let fused = compile_ok(&m);
        let h = fused.graph.op_histogram();
        assert!(!h.contains_key("Sigmoid") || act != "swish" || h["Sigmoid"] == 1, "{act}: {h:?}");
        assert!(!h.contains_key("Add") && !h.contains_key("BatchNormalization"), "{act}: {h:?}");
    }
}
