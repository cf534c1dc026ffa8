//! The EfficientNet family writer: block tables against the published architecture, and
//! small variants compiled, fused and checked against tract.

mod common;

use effc::compare::Comparison;
use effc_models::family::{Family, efficientnet};

#[test]
fn block_tables_match_the_published_architectures() {
    let b0 = Family::efficientnet(0).unwrap();
    let blocks = b0.blocks();
    assert_eq!(blocks.len(), 16);
    // NOTES.md's B0 table: (in, expand ratio, k, stride, out, SE squeeze).
    let table = [
        (32, 1, 3, 1, 16, 8),
        (16, 6, 3, 2, 24, 4),
        (24, 6, 3, 1, 24, 6),
        (24, 6, 5, 2, 40, 6),
        (40, 6, 5, 1, 40, 10),
        (40, 6, 3, 2, 80, 10),
        (80, 6, 3, 1, 80, 20),
        (80, 6, 3, 1, 80, 20),
        (80, 6, 5, 1, 112, 20),
        (112, 6, 5, 1, 112, 28),
        (112, 6, 5, 1, 112, 28),
        (112, 6, 5, 2, 192, 28),
        (192, 6, 5, 1, 192, 48),
        (192, 6, 5, 1, 192, 48),
        (192, 6, 5, 1, 192, 48),
        (192, 6, 3, 1, 320, 48),
    ];
    for (s, t) in blocks.iter().zip(table) {
        assert_eq!((s.c_in, s.expand_ratio, s.kernel, s.stride, s.c_out, s.se.unwrap()), t);
    }
    // B4: width 1.4 → stem 48, last stage 448; depth 1.8 → 32 blocks.
    let b4 = Family::efficientnet(4).unwrap();
    assert_eq!((b4.channels(32), b4.channels(320), b4.blocks().len(), b4.resolution), (48, 448, 32, 380));
    assert_eq!(Family::efficientnet(7).unwrap().blocks().len(), 55);
    let lite0 = Family::lite(0).unwrap();
    assert!(lite0.blocks().iter().all(|s| s.se.is_none()));
}

#[test]
fn written_b0_has_b0_cost_and_fuses_into_16_blocks() {
    let m = efficientnet(&Family::efficientnet(0).unwrap(), 1.into(), 224, 1000, 1);
    let c = effc::compile_bytes(
        effc_models::writer::encode(&m),
        None,
        &effc::Options { analyze_only: true, ..Default::default() },
    )
    .unwrap();
    let macs = c.summary.macs as f64 / 1e6;
    assert!((macs - 385.8).abs() < 0.5, "{macs}");
    assert!((c.summary.params as f64 / 1e6 - 5.29).abs() < 0.05, "{}", c.summary.params);
    assert_eq!(c.summary.ops_after.get("MBConv"), Some(&16));
}

#[test]
fn small_family_members_match_tract() {
    for (f, res) in
        [(Family::efficientnet(0).unwrap(), 64), (Family::efficientnet(1).unwrap(), 48), (Family::lite(0).unwrap(), 64)]
    {
        let m = efficientnet(&f, 2.into(), res, 10, 3);
        let (_dir, path) = common::write_temp(&m);
        let c = effc::compile_file(&path, &effc::Options::default()).unwrap();
        assert_eq!(c.summary.ops_after.get("MBConv"), Some(&f.blocks().len()), "{}", f.name);
        let shape = vec![2, 3, res, res];
        let tract = effc_tract::Reference::load(&path, std::slice::from_ref(&shape), &[]).unwrap();
        let x = effc::input::seeded_noise(&shape, 5);
        let ours = c.model().unwrap().run(std::slice::from_ref(&x)).unwrap();
        let theirs = tract.run(&[&x.to_f32_vec()]).unwrap();
        let cmp = Comparison::new(&ours[0].to_f32_vec(), &theirs[0].data);
        // Random weights give near-tied logits, so ranks are not compared here.
        assert!(cmp.max_rel <= 1e-4 && cmp.cosine > 0.999_999, "{}: {cmp:?}", f.name);
    }
}

/// Larger members at their own resolutions: B2 (260×260) always, B4 (380×380) on request
/// (`cargo test --release --test family -- --ignored`).
fn full_size(b: usize) {
    let f = Family::efficientnet(b).unwrap();
    let m = efficientnet(&f, 1.into(), f.resolution, 1000, 9);
    let (_dir, path) = common::write_temp(&m);
    let c = effc::compile_file(&path, &effc::Options::default()).unwrap();
    assert_eq!(c.summary.ops_after.get("MBConv"), Some(&f.blocks().len()));
    let shape = vec![1, 3, f.resolution, f.resolution];
    let tract = effc_tract::Reference::load(&path, std::slice::from_ref(&shape), &[]).unwrap();
    let x = effc::input::seeded_noise(&shape, 1);
    let ours = c.model().unwrap().run(std::slice::from_ref(&x)).unwrap()[0].to_f32_vec();
    let theirs = tract.run(&[&x.to_f32_vec()]).unwrap();
    let cmp = Comparison::new(&ours, &theirs[0].data);
    assert!(cmp.max_rel <= 1e-4 && cmp.cosine > 0.999_999, "B{b}: {cmp:?}");
}

#[test]
fn b2_at_260_matches_tract() {
    full_size(2);
}

#[test]
#[ignore]
fn b4_at_380_matches_tract() {
    full_size(4);
}
