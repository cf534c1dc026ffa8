//! Fused-MBConv super-ops (EfficientNetV2's EdgeResidual blocks: a dense k×k expansion +
//! activation, then a 1×1 projection): the writer's EfficientNetV2-B0 in each NCHW
//! exporter spelling fuses into 4 Fused-MBConv and 16 MBConv blocks and agrees with tract
//! on every kernel path (streamed rows with the micro-kernels, conv + product in JIT
//! code); timm's real `tf_efficientnetv2_b0` export fuses the same way and matches
//! onnxruntime's stored outputs.

mod common;

use effc::compare::Comparison;
use effc_models::family::{Exporter, efficientnet_v2_b0};

/// Asserts the super-op histogram every EfficientNetV2-B0 fuses into: the stem, the
/// first stage's single conv and the head conv stay.
fn assert_v2_b0_fused(h: &std::collections::BTreeMap<String, usize>, what: &str) {
    assert_eq!(h.get("FusedMBConv"), Some(&4), "{what}: {h:?}");
    assert_eq!(h.get("MBConv"), Some(&16), "{what}: {h:?}");
    assert_eq!(h.get("Conv"), Some(&3), "{what}: {h:?}");
    for gone in ["BatchNormalization", "Pad", "Sigmoid", "Swish", "Add"] {
        assert!(!h.contains_key(gone), "{what} left {gone}: {h:?}");
    }
}

#[test]
fn writer_v2_b0_fuses_in_every_spelling_and_matches_tract() {
    let styles = [Exporter::ExplicitBn, Exporter::TorchvisionLegacy, Exporter::TfSamePadding, Exporter::Timm];
    for (i, style) in styles.into_iter().enumerate() {
        // 64×64 keeps the fused stages' rows streamed; batch 2 runs two samples per kernel.
        let m = efficientnet_v2_b0(2.into(), 64, 10, 3 + i as u64, style);
        let (_dir, path) = common::write_temp(&m);
        let shape = [2, 3, 64, 64];
        let tract = effc_tract::Reference::load(&path, &[shape.to_vec()], &[]).unwrap();
        let x = effc::input::seeded_noise(&shape, i as u64);
        let theirs = tract.run(&[&x.to_f32_vec()]).unwrap();
        for kernels in common::kernel_paths() {
            let c = effc::compile_file(&path, &effc::Options { kernels, ..Default::default() }).unwrap();
            assert_v2_b0_fused(&c.summary.ops_after, &format!("{style:?} {kernels}"));
            let ours = c.model().unwrap().run(std::slice::from_ref(&x)).unwrap()[0].to_f32_vec();
            let cmp = Comparison::new(&ours, &theirs[0].data);
            assert!(cmp.max_rel <= 1e-4 && cmp.cosine > 0.999_999, "{style:?} {kernels}: {cmp:?}");
        }
    }
}

#[test]
fn timm_tf_v2b0_fuses_every_block_and_matches_onnxruntime() {
    let path = common::shared_models().join("timm_tf_v2b0.onnx");
    for kernels in common::kernel_paths() {
        let c = effc::compile_file(&path, &effc::Options { kernels, ..Default::default() }).unwrap();
        assert_v2_b0_fused(&c.summary.ops_after, &format!("timm_tf_v2b0 {kernels}"));
        let model = c.model().unwrap();
        for input in ["cat", "noise"] {
            let vs_ort =
                common::vs_onnxruntime(model, &format!("{input}_1x3x224x224"), &format!("timm_tf_v2b0.{input}"));
            println!("{kernels} {input}: vs ORT max_abs {:.2e} max_rel {:.2e}", vs_ort.max_abs, vs_ort.max_rel);
            assert!(vs_ort.passes(1e-4), "{kernels} on {input} vs onnxruntime: {vs_ort:?}");
        }
    }
}
