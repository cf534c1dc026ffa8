//! Writes small fuzz seeds: one stem conv and two MBConv blocks (one with SE and a
//! residual, one strided without SE) in every exporter's spelling and activation, so the
//! fuzzer starts from the graphs effc is built for as well as from ONNX's conformance cases.
//!
//! ```sh
//! cargo run -p effc-models --example fuzz_seeds -- fuzz/corpus/seeds
//! ```

use effc_models::family::{Act, Exporter, MbConvSpec, SeStyle, Weights, conv_bn_styled, mbconv_styled};
use effc_models::writer::{GraphBuilder, save};
use effc_onnx::proto::tensor_proto::DataType;

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
    println!("wrote {written} seeds to {}", dir.display());
    Ok(())
}
