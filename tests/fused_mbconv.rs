//! Fused-MBConv super-ops (EfficientNetV2's EdgeResidual blocks: a dense k×k expansion +
//! activation, then a 1×1 projection): the writer's EfficientNetV2-B0 in each NCHW
//! exporter spelling fuses into 4 Fused-MBConv and 16 MBConv blocks and agrees with tract
//! on every kernel path (streamed rows with the micro-kernels, conv + product in JIT
//! code); timm's real `tf_efficientnetv2_b0` export fuses the same way and matches
//! onnxruntime's stored outputs.

mod common;

use effc_models::family::{Exporter, efficientnet_v2_b0};

/// The super-op histogram every EfficientNetV2-B0 fuses into: the stem, the first stage's
/// single conv and the head conv stay.
const V2_B0: [(&str, usize); 3] = [("FusedMBConv", 4), ("MBConv", 16), ("Conv", 3)];
const GONE: [&str; 5] = ["BatchNormalization", "Pad", "Sigmoid", "Swish", "Add"];

#[test]
fn writer_v2_b0_fuses_in_every_spelling_and_matches_tract() {
    let styles = [Exporter::ExplicitBn, Exporter::TorchvisionLegacy, Exporter::TfSamePadding, Exporter::Timm];
    for (i, style) in styles.into_iter().enumerate() {
        // 64×64 keeps the fused stages' rows streamed; batch 2 runs two samples per kernel.
        let m = efficientnet_v2_b0(2.into(), 64, 10, 3 + i as u64, style);
        let (_dir, path) = common::write_temp(&m);
        common::fused_and_matches_tract(&path, &[2, 3, 64, 64], i as u64, &V2_B0, &GONE);
    }
}

#[test]
fn timm_tf_v2b0_fuses_every_block_and_matches_onnxruntime() {
    let inputs = ["cat_1x3x224x224", "noise_1x3x224x224"];
    common::shared_fused_and_matches_onnxruntime("timm_tf_v2b0", inputs, &V2_B0, &GONE);
}
