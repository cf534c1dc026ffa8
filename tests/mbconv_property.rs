//! Property test: random single MBConv blocks, written as an exporter would write them,
//! fuse into exactly one MBConv super-op, and fused and unfused compilations both agree
//! with tract.

mod common;

use effc::compare::Comparison;
use effc_models::family::{Act, MbConvSpec, SeStyle, Weights, mbconv};
use effc_models::writer::GraphBuilder;
use proptest::prelude::*;

fn spec() -> impl Strategy<Value = (MbConvSpec, usize, u64)> {
    (
        8usize..=96,
        8usize..=96,
        prop::bool::ANY,
        prop::sample::select(vec![1usize, 4, 6]),
        prop::sample::select(vec![3usize, 5]),
        prop::sample::select(vec![1usize, 2]),
        prop::option::of(2usize..=24),
        prop::sample::select(vec![Act::Swish, Act::Relu6, Act::HardSwish]),
        prop::sample::select(vec![5usize, 7, 9, 11, 13]),
        (
            any::<u64>(),
            prop::sample::select(vec![SeStyle::Conv, SeStyle::Gemm, SeStyle::MatMul, SeStyle::SqueezedConv]),
        ),
    )
        .prop_map(|(c_in, c_out, same, expand_ratio, kernel, stride, se, act, hw, (seed, se_style))| {
            let c_out = if same { c_in } else { c_out };
            (MbConvSpec { c_in, c_out, expand_ratio, expanded: None, kernel, stride, se, act, se_style }, hw, seed)
        })
}

fn check(s: &MbConvSpec, hw: usize, seed: u64) -> Result<(), TestCaseError> {
    check_batch(s, 1, hw, seed)
}

fn check_batch(s: &MbConvSpec, batch: usize, hw: usize, seed: u64) -> Result<(), TestCaseError> {
    let mut b = GraphBuilder::new(13);
    let x = b.input_f32("x", &[batch as i64, s.c_in as i64, hw as i64, hw as i64]);
    let y = mbconv(&mut b, &mut Weights::new(seed), &x, s);
    b.output(&y);
    let (_dir, path) = common::write_temp(&b.build());
    // Checked mode: every kernel is verified not to write outside its buffers.
    // Each case runs on one kernel path (micro-kernels per ISA, or pure JIT), in rotation.
    let checked = effc::Options { checked: true, kernels: common::kernel_path(seed), ..Default::default() };
    let fused = effc::compile_file(&path, &checked).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let hist = &fused.summary.ops_after;
    prop_assert_eq!(hist.len(), 1, "{:?}: {:?}", s, hist);
    prop_assert_eq!(hist.get("MBConv"), Some(&1));
    let unfused = effc::compile_file(&path, &effc::Options { fuse: false, ..checked })
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let shape = vec![batch, s.c_in, hw, hw];
    let tract = effc_tract::Reference::load(&path, std::slice::from_ref(&shape), &[]).unwrap();
    let input = effc::input::seeded_noise(&shape, seed);
    let want = tract.run(&[&input.to_f32_vec()]).unwrap();
    for (label, c) in [("fused", &fused), ("unfused", &unfused)] {
        let got = c.model().unwrap().run(std::slice::from_ref(&input)).unwrap();
        prop_assert_eq!(got[0].shape(), want[0].shape.as_slice());
        let cmp = Comparison::new(&got[0].to_f32_vec(), &want[0].data);
        prop_assert!(cmp.max_rel <= 1e-4 && cmp.cosine > 0.999_999, "{} {:?} hw {}: {:?}", label, s, hw, cmp);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn random_mbconv_blocks_fuse_and_match_tract((s, hw, seed) in spec()) {
        check(&s, hw, seed)?;
    }
}

/// The corner cases, always run: no expansion, no SE, stride 2 with residual shapes.
#[test]
fn mbconv_corner_cases() {
    for (c_in, c_out, e, k, st, se, act, se_style) in [
        (32, 16, 1, 3, 1, Some(8), Act::Swish, SeStyle::Conv),
        (16, 16, 1, 3, 1, None, Act::Relu6, SeStyle::Conv),
        (24, 24, 6, 5, 1, Some(6), Act::HardSwish, SeStyle::Gemm),
        (24, 40, 6, 5, 2, Some(6), Act::Swish, SeStyle::MatMul),
        (8, 8, 4, 3, 2, None, Act::Swish, SeStyle::Conv),
    ] {
        let s = MbConvSpec { c_in, c_out, expand_ratio: e, expanded: None, kernel: k, stride: st, se, act, se_style };
        check(&s, 9, 7).unwrap();
        // Batch 3: per-sample rings, row sums and SE-scaled projection weights.
        check_batch(&s, 3, 11, 8).unwrap();
    }
}
