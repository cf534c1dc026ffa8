//! Writes an EfficientNet family member or a MobileNet as ONNX with seeded weights.
//!
//! ```sh
//! cargo run --release --example write_efficientnet -- b0 /tmp/b0.onnx [RESOLUTION] [SEED]
//! cargo run --release --example write_efficientnet -- lite2 /tmp/lite2.onnx
//! cargo run --release --example write_efficientnet -- mobilenet_v3_small /tmp/mnv3s.onnx
//! cargo run --release --example write_efficientnet -- mixnet_s /tmp/mixnet_s.onnx
//! cargo run --release --example write_efficientnet -- b0 /tmp/b0_n.onnx --dynamic-batch
//! ```
//!
//! `--dynamic-batch` writes the batch dim as the symbol `N` (as `dynamic_axes` exports do).

use effc_models::family::{Exporter, Family, MobileNet, efficientnet, mixnet_s, mobilenet};

/// The MobileNets by their torchvision names.
const MOBILENETS: [(&str, MobileNet); 3] = [
    ("mobilenet_v2", MobileNet::V2),
    ("mobilenet_v3_large", MobileNet::V3Large),
    ("mobilenet_v3_small", MobileNet::V3Small),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let dynamic = args.iter().any(|a| a == "--dynamic-batch");
    args.retain(|a| a != "--dynamic-batch");
    let batch = || if dynamic { effc_models::writer::Dim::Symbolic("N".into()) } else { 1.into() };
    let (Some(variant), Some(path)) = (args.first(), args.get(1)) else {
        eprintln!(
            "usage: write_efficientnet (b0..b7|lite0..lite4|mobilenet_v2|mobilenet_v3_large|mobilenet_v3_small|mixnet_s) OUT.onnx [RESOLUTION] [SEED] [--dynamic-batch]"
        );
        std::process::exit(2);
    };
    let resolution = args.get(2).map(|r| r.parse()).transpose()?;
    let seed = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(0);
    if let Some(&(name, net)) = MOBILENETS.iter().find(|(name, _)| name == variant) {
        let resolution = resolution.unwrap_or(224);
        let model = mobilenet(net, batch(), resolution, 1000, seed, Exporter::TorchvisionLegacy);
        effc_models::writer::save(&model, path.as_ref())?;
        let blocks = net.layout().1.len();
        println!("wrote {name} ({blocks} inverted-residual blocks, {resolution}×{resolution}) to {path}");
        return Ok(());
    }
    if variant == "mixnet_s" {
        let resolution = resolution.unwrap_or(224);
        effc_models::writer::save(&mixnet_s(batch(), resolution, 1000, seed), path.as_ref())?;
        println!("wrote mixnet_s (16 mixed-kernel blocks, {resolution}×{resolution}) to {path}");
        return Ok(());
    }
    let family = match variant.strip_prefix("lite") {
        Some(n) => n.parse().ok().and_then(Family::lite),
        None => variant.trim_start_matches('b').parse().ok().and_then(Family::efficientnet),
    }
    .ok_or_else(|| format!("unknown variant {variant}"))?;
    let resolution = resolution.unwrap_or(family.resolution);
    let model = efficientnet(&family, batch(), resolution, 1000, seed);
    effc_models::writer::save(&model, path.as_ref())?;
    println!("wrote {} ({} MBConv blocks, {resolution}×{resolution}) to {path}", family.name, family.blocks().len());
    Ok(())
}
