//! Writes small fuzz seeds: one stem conv and two MBConv blocks (one with SE and a
//! residual, one strided without SE) in every exporter's spelling and activation; each
//! other block form effc fuses (Fused-MBConv, the UIB forms, depthwise-separable, MixConv);
//! and one small model of each hostile class effc refuses (a constant-folding bomb, a
//! window of a million taps, a Split claiming 2^40 outputs, Slice steps of ±i64::MAX,
//! thousands of empty nodes), so the fuzzer starts from the graphs effc is built for and
//! from the edges it guards, as well as from ONNX's conformance cases.
//!
//! ```sh
//! cargo run -p effc-models --example fuzz_seeds -- fuzz/corpus/seeds
//! ```

use effc_models::family::{
    Act, Exporter, MbConvSpec, MixSpec, SeStyle, UibSpec, Weights, activation, conv_bn_styled,
    depthwise_separable_styled, fused_mbconv_styled, mbconv_styled, mixnet_block, uib_styled,
};
use effc_models::writer::{GraphBuilder, attr_int, attr_ints, save};
use effc_onnx::proto::tensor_proto::DataType;
use effc_onnx::proto::{ModelProto, NodeProto};

/// One model per other block form, on a 12×12 input.
fn block_forms() -> Vec<(&'static str, ModelProto)> {
    let start = |seed: u64| {
        let mut b = GraphBuilder::new(17);
        let w = Weights::new(seed);
        let x = b.input("input", DataType::Float, &[1.into(), 8.into(), 12.into(), 12.into()]);
        (b, w, x)
    };
    let mut out = Vec::new();
    let spec = |c_in, c_out, stride| MbConvSpec {
        c_in,
        c_out,
        expand_ratio: 4,
        expanded: None,
        kernel: 3,
        stride,
        se: None,
        act: Act::Swish,
        se_style: SeStyle::Conv,
    };
    let (mut b, mut w, x) = start(1);
    let y = fused_mbconv_styled(&mut b, &mut w, &x, &spec(8, 8, 1), Exporter::ExplicitBn);
    let y = fused_mbconv_styled(&mut b, &mut w, &y, &spec(8, 12, 2), Exporter::TfSamePadding);
    b.output(&y);
    out.push(("fused-mbconv", b.build()));
    let (mut b, mut w, x) = start(2);
    let uib = |start_kernel, mid_kernel, c_out, stride| UibSpec {
        c_in: 8,
        c_out,
        expanded: 16,
        start_kernel,
        mid_kernel,
        stride,
        stride_in_mid: false,
        act: Act::Relu,
        layer_scale: c_out == 8,
    };
    let mut y = x.clone();
    for s in
        [uib(Some(3), Some(3), 8, 1), uib(Some(3), None, 8, 1), uib(None, None, 8, 1), uib(Some(5), Some(3), 12, 2)]
    {
        y = uib_styled(&mut b, &mut w, &y, &s, Exporter::ExplicitBn);
    }
    b.output(&y);
    out.push(("uib", b.build()));
    let (mut b, mut w, x) = start(3);
    let y =
        depthwise_separable_styled(&mut b, &mut w, &x, ([8, 16, 3, 1], Some(4), Act::HardSwish), Exporter::ExplicitBn);
    let y = activation(&mut b, &y, Act::Relu);
    b.output(&y);
    out.push(("depthwise-separable", b.build()));
    let (mut b, mut w, x) = start(4);
    let s = MixSpec {
        c_in: 8,
        c_out: 8,
        expand_ratio: 3,
        exp_groups: 2,
        dw_kernels: vec![3, 5, 7],
        pwl_groups: 2,
        stride: 1,
        se: Some(4),
        act: Act::Swish,
    };
    let y = mixnet_block(&mut b, &mut w, &x, &s);
    b.output(&y);
    out.push(("mixconv", b.build()));
    out
}

/// One small model of each hostile class.
fn hostile() -> Vec<(&'static str, ModelProto)> {
    let mut out = Vec::new();
    // ConstantOfShape([2^26]) → Add → ReduceMax, twice: folding would compute gigabytes.
    out.push(("fold-bomb", effc_models::hostile::fold_bomb(2, 1 << 26)));
    // A MaxPool with a 1×1000000 window.
    let mut b = GraphBuilder::new(17);
    let x = b.input("x", DataType::Float, &[1.into(), 1.into(), 1.into(), 8.into()]);
    let y = b.node(
        "MaxPool",
        &[&x],
        vec![attr_ints("kernel_shape", &[1, 1_000_000]), attr_ints("pads", &[0, 0, 0, 999_992])],
    );
    b.output(&y);
    out.push(("huge-window", b.build()));
    // Split-18 claiming 2^40 outputs, with two.
    let mut b = GraphBuilder::new(18);
    let x = b.input("x", DataType::Float, &[1.into(), 4.into()]);
    let ys = b.node_n("Split", &[&x], vec![attr_int("axis", 1), attr_int("num_outputs", 1 << 40)], 2);
    b.output(&ys[0]);
    out.push(("split-outputs", b.build()));
    // Slice with steps of ±i64::MAX.
    let mut b = GraphBuilder::new(17);
    let x = b.input("x", DataType::Float, &[1.into(), 3.into(), 4.into(), 8.into()]);
    let (starts, ends) = (b.weight_i64("starts", &[0, -1]), b.weight_i64("ends", &[i64::MAX, i64::MIN]));
    let (axes, steps) = (b.weight_i64("axes", &[2, 3]), b.weight_i64("steps", &[i64::MAX, -i64::MAX]));
    let y = b.node("Slice", &[&x, &starts, &ends, &axes, &steps], vec![]);
    b.output(&y);
    out.push(("slice-steps", b.build()));
    // Thousands of empty nodes after a valid one.
    let mut b = GraphBuilder::new(17);
    let x = b.input("x", DataType::Float, &[1.into(), 4.into()]);
    let y = b.node("Relu", &[&x], vec![]);
    b.output(&y);
    let mut m = b.build();
    if let Some(g) = m.graph.as_mut() {
        g.node.extend(std::iter::repeat_n(NodeProto::default(), 20_000));
    }
    out.push(("empty-nodes", m));
    out
}

fn seed_model(style: Exporter, act: Act, se_style: SeStyle, seed: u64) -> effc_onnx::proto::ModelProto {
    let mut b = GraphBuilder::new(style.opset());
    let mut w = Weights::new(seed);
    let x = b.input("input", DataType::Float, &[1.into(), 3.into(), 12.into(), 12.into()]);
    let stem = conv_bn_styled(&mut b, &mut w, &x, [3, 8, 3, 2, 1], style);
    let block = |c_in, c_out, kernel, stride, se| MbConvSpec {
        c_in,
        c_out,
        expand_ratio: 4,
        expanded: None,
        kernel,
        stride,
        se,
        act,
        se_style,
    };
    let y = mbconv_styled(&mut b, &mut w, &stem, &block(8, 8, 3, 1, Some(2)), style);
    let y = mbconv_styled(&mut b, &mut w, &y, &block(8, 12, 5, 2, None), style);
    b.output(&y);
    b.build()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "fuzz/corpus/seeds".into()));
    std::fs::create_dir_all(&dir)?;
    let mut written = 0;
    for (i, style) in Exporter::ALL.into_iter().enumerate() {
        for (j, (act, se_style)) in [
            (Act::Swish, SeStyle::Conv),
            (Act::Relu6, SeStyle::Gemm),
            (Act::HardSwish, SeStyle::MatMul),
            (Act::Swish, SeStyle::SqueezedConv),
        ]
        .into_iter()
        .enumerate()
        {
            let model = seed_model(style, act, se_style, (i * 3 + j) as u64);
            save(&model, &dir.join(format!("{style:?}-{act:?}.onnx")))?;
            written += 1;
        }
    }
    for (name, model) in block_forms().into_iter().chain(hostile()) {
        save(&model, &dir.join(format!("{name}.onnx")))?;
        written += 1;
    }
    println!("wrote {written} seeds to {}", dir.display());
    Ok(())
}
