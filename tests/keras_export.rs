//! The real Keras EfficientNetB0 export (tf2onnx 1.17, NHWC, raw 0–255 pixels) fuses like
//! torchvision's: BN written as per-channel Mul/Add after each depthwise conv folds into
//! it, the squeeze-excite's Squeeze/Reshape chains collapse, and all 16 blocks become
//! MBConv super-ops. Checked against onnxruntime's stored outputs on every kernel path.

mod common;

#[test]
fn keras_b0_fuses_every_block_and_matches_onnxruntime() {
    // The stem and the head conv stay; the NHWC input is transposed once.
    let expect = [("MBConv", 16), ("Conv", 2), ("Transpose", 1)];
    let inputs = ["keras_cat_1x224x224x3", "keras_noise_1x224x224x3"];
    common::shared_fused_and_matches_onnxruntime(
        "keras_b0_nhwc",
        inputs,
        &expect,
        &["Sigmoid", "Swish", "Squeeze", "Pad"],
    );
}
