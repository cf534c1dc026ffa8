//! QDQ int8 models in onnxruntime's `quantize_static` spelling (written by
//! `effc_models::quantize` from the family writer's float models, calibrated on seeded
//! inputs) compile, run and agree with tract within a few output quanta.

mod common;

use effc_ir::Tensor;
use effc_models::family::{Exporter, Family, efficientnet_styled};
use effc_models::quantize::{self, Ranges};
use effc_onnx::proto::ModelProto;

/// Each calibrated tensor's range over the outputs of `model` (BatchNorms folded) on
/// seeded inputs, run by effc.
fn calibrate(model: &ModelProto, shape: &[usize], seeds: std::ops::Range<u64>) -> Ranges {
    let names = quantize::calibration_outputs(model);
    let c = common::compile_ok(&quantize::with_outputs(model, &names));
    let m = c.model().unwrap();
    let mut ranges = Ranges::new();
    for seed in seeds {
        let x = effc::input::seeded_noise(shape, seed);
        for (info, t) in m.outputs().iter().zip(m.run(&[x]).unwrap()) {
            let v = t.to_f32_vec();
            let (lo, hi) = v.iter().fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
            let r = ranges.entry(info.name.clone()).or_insert((lo, hi));
            *r = (r.0.min(lo), r.1.max(hi));
        }
    }
    ranges
}

/// How far apart two dequantized outputs are, in quanta of `scale`: counts of 0, 1, 2 and
/// more.
fn quanta_histogram(a: &[f32], b: &[f32], scale: f32) -> [usize; 4] {
    let mut h = [0; 4];
    for (x, y) in a.iter().zip(b) {
        let q = ((x - y).abs() / scale).round() as usize;
        h[q.min(3)] += 1;
    }
    h
}

fn argmax(v: &[f32]) -> usize {
    v.iter().enumerate().fold(0, |best, (i, &x)| if x > v[best] { i } else { best })
}

/// A family member in `exporter`'s spelling at `res` × `res`, BatchNorms folded, quantized
/// as onnxruntime's tools quantize the real one (calibrated by effc on 4 seeded inputs):
/// every pair becomes a snap, the weights fold to f32, every block is one MBConv super-op
/// on every kernel path, and the logits agree with tract's within 2 quanta (≥ 99 %),
/// top-1 equal.
fn qdq_runs_and_agrees_with_tract(f: &Family, exporter: Exporter, res: usize) {
    let shape = vec![1, 3, res, res];
    let float = quantize::fold_batch_norms(&efficientnet_styled(f, 1.into(), res, 100, 5, exporter));
    let ranges = calibrate(&float, &shape, 0..4);
    let qdq = quantize::qdq(&float, &ranges);
    let ops = |op: &str| qdq.graph.as_ref().unwrap().node.iter().filter(|n| n.op_type == op).count();
    // The spelling: a pair per activation, a DequantizeLinear per weight and bias.
    assert!(
        ops("QuantizeLinear") > 60 && ops("DequantizeLinear") > 150,
        "{} {}",
        ops("QuantizeLinear"),
        ops("DequantizeLinear")
    );
    assert_eq!(ops("Clip"), 0);
    let (_dir, path) = common::write_temp(&qdq);
    let tract = effc_tract::Reference::load(&path, std::slice::from_ref(&shape), &[]).unwrap();
    let (out_scale, _) = quantize::activation_params(ranges["logits"]);
    for kernels in common::kernel_paths() {
        let opts = effc::Options { kernels, int8_weights: true, ..Default::default() };
        let c = effc::compile_file(&path, &opts).unwrap_or_else(|e| panic!("{}: {e}", kernels.name()));
        let h = &c.summary.ops_after;
        for gone in ["QuantizeLinear", "DequantizeLinear", "Pad", "Sigmoid", "Mul"] {
            assert!(!h.contains_key(gone), "{} left {gone}: {h:?}", kernels.name());
        }
        // The snaps fuse as activations do: every block is one MBConv super-op.
        assert_eq!(h.get("MBConv"), Some(&f.blocks().len()), "{}: {h:?}", kernels.name());
        // Asked to, the micro-kernels keep the products' int8 weights int8: the weights take
        // under a third of their f32 size (depthwise weights, biases and scales are f32).
        let f32_bytes = 4 * c.summary.params as usize;
        if kernels != effc::Kernels::Jit {
            assert!(
                3 * c.summary.weight_bytes < f32_bytes,
                "{}: {} of {f32_bytes}",
                kernels.name(),
                c.summary.weight_bytes
            );
        }
        for seed in 10..12 {
            let x: Tensor = effc::input::seeded_noise(&shape, seed);
            let ours = c.model().unwrap().run(std::slice::from_ref(&x)).unwrap()[0].to_f32_vec();
            let theirs = &tract.run(&[&x.to_f32_vec()]).unwrap()[0].data;
            let h = quanta_histogram(&ours, theirs, out_scale);
            let within2 = (h[0] + h[1] + h[2]) as f64 / ours.len() as f64;
            println!("{} {} seed {seed}: quanta off by 0/1/2/more: {h:?}", f.name, kernels.name());
            assert!(within2 >= 0.99, "{} seed {seed}: {h:?}", kernels.name());
            assert_eq!(argmax(&ours), argmax(theirs), "{} seed {seed}", kernels.name());
        }
    }
}

/// EfficientNet-Lite0 in lukemelas' spelling (explicit Pads, ReLU6 as Clip).
#[test]
fn qdq_lite0_runs_and_agrees_with_tract() {
    qdq_runs_and_agrees_with_tract(&Family::lite(0).unwrap(), Exporter::Lukemelas, 96);
}

/// EfficientNet-B0 with explicit BatchNorms (folded before quantizing; the legacy
/// torchvision spelling puts Identity nodes between weights and convs, which the writer's
/// quantizer does not see through): each swish is Sigmoid, Mul and three
/// pairs, each squeeze-excite seven quantized ops; they become QuantizedSwish,
/// QuantizedSigmoid and a squeeze-excite with snapped mean and product, and the blocks
/// MBConv super-ops.
#[test]
fn qdq_b0_runs_and_agrees_with_tract() {
    qdq_runs_and_agrees_with_tract(&Family::efficientnet(0).unwrap(), Exporter::ExplicitBn, 96);
}

/// ConvInteger returns its int32 sums, which effc computes in f32: a node whose sums could
/// pass 2^24 (64 × 3 × 3 uint8 inputs up to 255 against weights of 127: 18.7 M) is refused
/// by name; one that cannot (a 16-channel input: 4.7 M) compiles.
#[test]
fn conv_integer_is_refused_where_f32_could_not_hold_its_sums_exactly() {
    use effc_models::writer::{Dim, GraphBuilder, tensor_quantized};
    use effc_onnx::proto::tensor_proto::DataType;
    let build = |channels: i64| {
        let mut b = GraphBuilder::new(13);
        let x = b.input("x", DataType::Uint8, &[Dim::Fixed(1), Dim::Fixed(channels), Dim::Fixed(5), Dim::Fixed(5)]);
        let n = (channels * 9) as usize;
        let w = b.weight(tensor_quantized("w", &[1, channels, 3, 3], DataType::Int8, &vec![127; n]));
        let y = b.node("ConvInteger", &[&x, &w], vec![]);
        b.output(&y);
        b.build()
    };
    let err = common::compile_err(&build(64));
    assert!(err.contains("ConvInteger") && err.contains("2^24"), "{err}");
    common::compile_ok(&build(16));
}

/// onnxruntime's contrib ops that effc does not read are refused with their domain.
#[test]
fn an_unread_contrib_op_is_refused_with_its_domain() {
    use effc_models::writer::GraphBuilder;
    let mut b = GraphBuilder::new(13);
    let x = b.input_f32("x", &[1, 4]);
    let y = b.node("QLinearSoftmax", &[&x], vec![]);
    b.graph.node.last_mut().unwrap().domain = "com.microsoft".into();
    b.output(&y);
    let err = common::compile_err(&b.build());
    assert!(err.contains("QLinearSoftmax") && err.contains("com.microsoft"), "{err}");
}
