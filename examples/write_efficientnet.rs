//! Writes an EfficientNet family member as ONNX with seeded weights.
//!
//! ```sh
//! cargo run --release --example write_efficientnet -- b0 /tmp/b0.onnx [RESOLUTION] [SEED]
//! cargo run --release --example write_efficientnet -- lite2 /tmp/lite2.onnx
//! ```

use effc_onnx::family::{Family, efficientnet};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(variant), Some(path)) = (args.first(), args.get(1)) else {
        eprintln!("usage: write_efficientnet (b0..b7|lite0..lite4) OUT.onnx [RESOLUTION] [SEED]");
        std::process::exit(2);
    };
    let family = match variant.strip_prefix("lite") {
        Some(n) => n.parse().ok().and_then(Family::lite),
        None => variant.trim_start_matches('b').parse().ok().and_then(Family::efficientnet),
    }
    .ok_or_else(|| format!("unknown variant {variant}"))?;
    let resolution = args.get(2).map(|r| r.parse()).transpose()?.unwrap_or(family.resolution);
    let seed = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(0);
    let model = efficientnet(&family, 1.into(), resolution, 1000, seed);
    effc_onnx::writer::save(&model, path.as_ref())?;
    println!("wrote {} ({} MBConv blocks, {resolution}×{resolution}) to {path}", family.name, family.blocks().len());
    Ok(())
}
