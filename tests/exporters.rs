//! Every exporter spelling of an EfficientNet (written by the family writer) compiles,
//! fuses into the expected number of MBConv super-ops and agrees with tract.

mod common;

use effc::compare::Comparison;
use effc_models::family::{Exporter, Family, efficientnet_styled};
use effc_models::writer::{Dim, encode, save_with_external_data};

const STYLES: [Exporter; 8] = Exporter::ALL;

fn input_shape(style: Exporter, batch: usize, res: usize) -> Vec<usize> {
    if style == Exporter::KerasNhwc { vec![batch, res, res, 3] } else { vec![batch, 3, res, res] }
}

/// Compiles `path`, checks the fusion count, and compares with tract on two inputs.
fn check(path: &std::path::Path, style: Exporter, f: &Family, opts: &effc::Options, shape: &[usize]) -> Vec<f32> {
    let c = effc::compile_file(path, opts).unwrap_or_else(|e| panic!("{style:?}: {e}"));
    let h = &c.summary.ops_after;
    assert_eq!(h.get("MBConv"), Some(&f.blocks().len()), "{style:?}: {h:?}");
    // Every expansion inside its block (an explicit Pad before a depthwise conv once kept
    // it out): only the stem and the head conv stay.
    assert_eq!(h.get("Conv"), Some(&2), "{style:?}: {h:?}");
    for gone in ["BatchNormalization", "Pad", "Shape", "Sigmoid", "Identity"] {
        assert!(!h.contains_key(gone), "{style:?} left {gone}: {h:?}");
    }
    let tract = effc_tract::Reference::load(path, &[shape.to_vec()], &[]).unwrap();
    let mut first = Vec::new();
    for seed in 0..2 {
        let x = effc::input::seeded_noise(shape, seed);
        let ours = c.model().unwrap().run(std::slice::from_ref(&x)).unwrap()[0].to_f32_vec();
        let theirs = tract.run(&[&x.to_f32_vec()]).unwrap();
        let cmp = Comparison::new(&ours, &theirs[0].data);
        assert!(cmp.max_rel <= 1e-4 && cmp.cosine > 0.999_999, "{style:?} seed {seed}: {cmp:?}");
        if seed == 0 {
            first = ours;
        }
    }
    first
}

#[test]
fn every_exporter_style_fuses_and_matches_tract() {
    let f = Family::efficientnet(0).unwrap();
    let mut outputs = Vec::new();
    for style in STYLES {
        let m = efficientnet_styled(&f, 1.into(), 64, 16, 11, style);
        let (_dir, path) = common::write_temp(&m);
        outputs.push(check(&path, style, &f, &effc::Options::default(), &input_shape(style, 1, 64)));
    }
    // Styles with symmetric pads spell the same function as explicit BN: same logits.
    for (i, style) in STYLES.iter().enumerate() {
        if matches!(style, Exporter::TorchvisionLegacy | Exporter::Dynamo | Exporter::Timm | Exporter::Lukemelas) {
            let cmp = Comparison::new(&outputs[i], &outputs[1]);
            assert!(cmp.max_rel < 1e-5, "{style:?} vs explicit BN: {cmp:?}");
        }
    }
}

#[test]
fn lite_batch_and_symbolic_batch_and_external_data() {
    let lite = Family::lite(0).unwrap();
    // Batch 2 in the TF-same-padding spelling, relu6 blocks without SE.
    let m = efficientnet_styled(&lite, 2.into(), 48, 8, 5, Exporter::TfSamePadding);
    let (_dir, path) = common::write_temp(&m);
    check(&path, Exporter::TfSamePadding, &lite, &effc::Options::default(), &[2, 3, 48, 48]);
    // Symbolic batch bound to 3, weights in an external data file.
    let b1 = Family::efficientnet(1).unwrap();
    let m = efficientnet_styled(&b1, Dim::Symbolic("N".into()), 40, 8, 6, Exporter::TorchvisionLegacy);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b1.onnx");
    save_with_external_data(&m, &path, "b1.onnx.data", 1024).unwrap();
    assert!(std::fs::metadata(&path).unwrap().len() < 200_000, "weights moved out of the model file");
    let mut opts = effc::Options::default();
    opts.input_shapes.insert("input".into(), vec![3, 3, 40, 40]);
    let ext = check(&path, Exporter::TorchvisionLegacy, &b1, &opts, &[3, 3, 40, 40]);
    // The in-memory copy (weights inline) computes the same.
    let inline = effc::compile_bytes(encode(&m), None, &opts).unwrap();
    let x = effc::input::seeded_noise(&[3, 3, 40, 40], 0);
    let y = inline.model().unwrap().run(&[x]).unwrap()[0].to_f32_vec();
    assert_eq!(y, ext);
}

#[test]
fn mobilenets_fuse_every_inverted_residual_block_and_match_tract() {
    use effc_models::family::{MobileNet, mobilenet};
    for (net, style) in [
        (MobileNet::V2, Exporter::ExplicitBn),
        (MobileNet::V3Large, Exporter::TorchvisionLegacy),
        // A block without expansion that has squeeze-excite and stride 2.
        (MobileNet::V3Small, Exporter::TorchvisionLegacy),
        // Opset 18: the SE mean is a ReduceMean with axes as an input.
        (MobileNet::V3Large, Exporter::Dynamo),
    ] {
        let (_, blocks, _) = net.layout();
        let m = mobilenet(net, 1.into(), 64, 10, 4, style);
        let (_dir, path) = common::write_temp(&m);
        let c = effc::compile_file(&path, &effc::Options::default()).unwrap();
        let h = &c.summary.ops_after;
        assert_eq!(h.get("MBConv"), Some(&blocks.len()), "{net:?}: {h:?}");
        for gone in ["BatchNormalization", "Clip", "HardSigmoid", "Mul", "Add", "Relu"] {
            assert!(!h.contains_key(gone), "{net:?} left {gone}: {h:?}");
        }
        let tract = effc_tract::Reference::load(&path, &[vec![1, 3, 64, 64]], &[]).unwrap();
        let x = effc::input::seeded_noise(&[1, 3, 64, 64], 1);
        let ours = c.model().unwrap().run(std::slice::from_ref(&x)).unwrap()[0].to_f32_vec();
        let theirs = tract.run(&[&x.to_f32_vec()]).unwrap();
        let cmp = Comparison::new(&ours, &theirs[0].data);
        assert!(cmp.max_rel <= 1e-4 && cmp.cosine > 0.999_999, "{net:?}: {cmp:?}");
    }
}

/// Full-size B0 (224×224, 1000 classes) in every spelling (about 2 s).
#[test]
fn full_size_b0_in_every_style() {
    let f = Family::efficientnet(0).unwrap();
    for style in STYLES {
        let m = efficientnet_styled(&f, 1.into(), 224, 1000, 21, style);
        let (_dir, path) = common::write_temp(&m);
        check(&path, style, &f, &effc::Options::default(), &input_shape(style, 1, 224));
    }
}

#[test]
fn oldest_and_newest_opsets_and_every_b_series_resolution() {
    let f = Family::efficientnet(0).unwrap();
    for opset in [11, 21] {
        let mut m = efficientnet_styled(&f, 1.into(), 64, 16, 11, Exporter::ExplicitBn);
        m.opset_import[0].version = opset;
        let (_dir, path) = common::write_temp(&m);
        check(&path, Exporter::ExplicitBn, &f, &effc::Options::default(), &[1, 3, 64, 64]);
    }
    // The B-series resolutions, on the B0 layout (the architecture's other multipliers are
    // covered in tests/family.rs).
    for res in [224, 240, 260, 300, 380, 456, 528, 600] {
        let m = efficientnet_styled(&f, 1.into(), res, 10, 12, Exporter::TfSamePadding);
        let bytes = encode(&m);
        let c = effc::compile_bytes(bytes, None, &effc::Options { analyze_only: true, ..Default::default() }).unwrap();
        assert_eq!(c.summary.ops_after.get("MBConv"), Some(&16), "{res}");
        let scale = (res as f64 / 224.0).powi(2);
        let macs = c.summary.macs as f64 / 1e6;
        // Odd feature-map sizes round up at each stride, so the cost grows a little faster.
        assert!(macs > 385.0 * scale * 0.95 && macs < 386.0 * scale * 1.25, "{res}: {macs} M");
    }
    for res in [456, 600] {
        let m = efficientnet_styled(&f, 1.into(), res, 10, 12, Exporter::TfSamePadding);
        let (_dir, path) = common::write_temp(&m);
        check(&path, Exporter::TfSamePadding, &f, &effc::Options::default(), &[1, 3, res, res]);
    }
}
