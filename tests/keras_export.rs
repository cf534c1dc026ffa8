//! The real Keras EfficientNetB0 export (tf2onnx 1.17, NHWC, raw 0–255 pixels) fuses like
//! torchvision's: BN written as per-channel Mul/Add after each depthwise conv folds into
//! it, the squeeze-excite's Squeeze/Reshape chains collapse, and all 16 blocks become
//! MBConv super-ops. Checked against onnxruntime's stored outputs on every kernel path.

mod common;

use common::shared_models;

#[test]
fn keras_b0_fuses_every_block_and_matches_onnxruntime() {
    let path = shared_models().join("keras_b0_nhwc.onnx");
    for kernels in common::kernel_paths() {
        let c = effc::compile_file(&path, &effc::Options { kernels, ..Default::default() }).unwrap();
        let h = &c.summary.ops_after;
        // The stem and the head conv stay; the NHWC input is transposed once.
        assert_eq!(h.get("MBConv"), Some(&16), "{kernels}: {h:?}");
        assert_eq!(h.get("Conv"), Some(&2), "{kernels}: {h:?}");
        assert_eq!(h.get("Transpose"), Some(&1), "{kernels}: {h:?}");
        for gone in ["Sigmoid", "Swish", "Squeeze", "Pad"] {
            assert!(!h.contains_key(gone), "{kernels} left {gone}: {h:?}");
        }
        let model = c.model().unwrap();
        for input in ["cat", "noise"] {
            let vs_ort =
                common::vs_onnxruntime(model, &format!("keras_{input}_1x224x224x3"), &format!("keras_b0_nhwc.{input}"));
            println!("{kernels} {input}: vs ORT max_abs {:.2e} max_rel {:.2e}", vs_ort.max_abs, vs_ort.max_rel);
            assert!(vs_ort.passes(1e-4), "{kernels} on {input} vs onnxruntime: {vs_ort:?}");
        }
    }
}
