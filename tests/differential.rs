//! Differential testing: random valid graphs over the supported op set, compiled by effc
//! (fused, in checked mode) and compared with tract. A failing seed is written out as a
//! reproducible .onnx file.

mod common;

use effc::compare::Comparison;
use effc_models::family::{Act, Weights, activation};
use effc_models::writer::*;
use proptest::prelude::*;

/// A small deterministic generator for graph structure.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len())]
    }
}

/// Builds a random model from `seed`; returns it with its input shape.
fn random_graph(seed: u64) -> (effc_onnx::proto::ModelProto, Vec<usize>) {
    let mut r = Rng(seed | 1);
    let mut w = Weights::new(seed);
    let mut b = GraphBuilder::new(r.pick(&[11, 13, 17]));
    let (n, mut c, mut h, mut wd) = (1 + r.below(2), 1 + r.below(8), 5 + r.below(8), 5 + r.below(8));
    let shape = vec![n, c, h, wd];
    let mut x = b.input_f32("x", &[n as i64, c as i64, h as i64, wd as i64]);
    let mut same_shape: Vec<(String, usize, usize, usize)> = vec![(x.clone(), c, h, wd)];
    for _ in 0..2 + r.below(5) {
        match r.below(8) {
            // Conv of any geometry and group, maybe with BN and an activation.
            0..=2 => {
                let k = r.pick(&[1, 3, 5]);
                let s = r.pick(&[1, 1, 2]);
                let d = if k > 1 { r.pick(&[1, 1, 2]) } else { 1 };
                let span = (k - 1) * d + 1;
                let pads: Vec<usize> = (0..4).map(|_| r.below(k / 2 + 1)).collect();
                if h + pads[0] + pads[2] < span || wd + pads[1] + pads[3] < span {
                    continue;
                }
                let group = if r.below(3) == 0 { c } else { 1 };
                let c_out = if group == c && r.below(2) == 0 { c } else { group * (1 + r.below(8 / group.min(8) + 1)) };
                let fan = c / group * k * k;
                let wt =
                    b.weight_f32("w", &[c_out as i64, (c / group) as i64, k as i64, k as i64], &w.he(c_out * fan, fan));
                let bias = b.weight_f32("b", &[c_out as i64], &w.he(c_out, fan));
                let p: Vec<i64> = pads.iter().map(|&v| v as i64).collect();
                x = b.node(
                    "Conv",
                    &[&x, &wt, &bias],
                    vec![
                        attr_ints("strides", &[s as i64, s as i64]),
                        attr_ints("dilations", &[d as i64, d as i64]),
                        attr_ints("pads", &p),
                        attr_int("group", group as i64),
                    ],
                );
                h = (h + pads[0] + pads[2] - span) / s + 1;
                wd = (wd + pads[1] + pads[3] - span) / s + 1;
                c = c_out;
                if r.below(2) == 0 {
                    let stats: Vec<String> = (0..4)
                        .map(|i| {
                            let v: Vec<f32> =
                                (0..c).map(|_| if i == 3 { 1.0 + w.uniform().abs() } else { w.uniform() }).collect();
                            b.weight_f32("bn", &[c as i64], &v)
                        })
                        .collect();
                    x = b.node("BatchNormalization", &[&x, &stats[0], &stats[1], &stats[2], &stats[3]], vec![]);
                }
                if r.below(3) > 0 {
                    x = activation(&mut b, &x, r.pick(&[Act::Swish, Act::Relu6, Act::HardSwish, Act::Relu]));
                }
                same_shape.clear();
            }
            // A residual add with an earlier tensor of the same shape.
            3 => {
                if let Some((skip, ..)) =
                    same_shape.iter().find(|(_, cc, hh, ww)| (*cc, *hh, *ww) == (c, h, wd)).cloned()
                    && skip != x
                {
                    x = b.node("Add", &[&x, &skip], vec![]);
                }
            }
            // Elementwise activations spelled as single ONNX ops.
            4 => {
                let op = r.pick(&["Sigmoid", "Tanh", "LeakyRelu", "Elu", "Softplus", "HardSigmoid", "Neg", "Abs"]);
                x = b.node(op, &[&x], vec![]);
            }
            // Pools.
            5 => {
                let k = r.pick(&[2, 3]);
                let s = r.pick(&[1, 2]);
                let p = r.below(k / 2 + 1) as i64;
                if h + 2 * p as usize >= k && wd + 2 * p as usize >= k {
                    let op = r.pick(&["MaxPool", "AveragePool"]);
                    let mut attrs = vec![
                        attr_ints("kernel_shape", &[k as i64, k as i64]),
                        attr_ints("strides", &[s as i64, s as i64]),
                        attr_ints("pads", &[p, p, p, p]),
                    ];
                    if op == "AveragePool" {
                        attrs.push(attr_int("count_include_pad", r.below(2) as i64));
                    }
                    x = b.node(op, &[&x], attrs);
                    h = (h + 2 * p as usize - k) / s + 1;
                    wd = (wd + 2 * p as usize - k) / s + 1;
                    same_shape.clear();
                }
            }
            // Squeeze-excite.
            6 => x = effc_models::family::squeeze_excite(&mut b, &mut w, &x, c, 1 + c / 2, Act::Swish),
            // A per-channel affine or a constant pad.
            _ => {
                if r.below(2) == 0 {
                    let v: Vec<f32> = (0..c).map(|_| w.uniform()).collect();
                    let s = b.weight_f32("scale", &[c as i64, 1, 1], &v);
                    x = b.node(r.pick(&["Mul", "Add", "Sub"]), &[&x, &s], vec![]);
                } else {
                    let p: Vec<i64> = (0..4).map(|_| r.below(2) as i64).collect();
                    let pads = b.weight_i64("pads", &[0, 0, p[0], p[1], 0, 0, p[2], p[3]]);
                    let mode = r.pick(&["constant", "reflect", "edge"]);
                    if mode == "reflect" && (h < 2 || wd < 2) {
                        continue;
                    }
                    x = b.node("Pad", &[&x, &pads], vec![attr_string("mode", mode)]);
                    h += (p[0] + p[2]) as usize;
                    wd += (p[1] + p[3]) as usize;
                    same_shape.clear();
                }
            }
        }
        same_shape.push((x.clone(), c, h, wd));
    }
    let classes = 2 + r.below(8);
    let p = b.node("GlobalAveragePool", &[&x], vec![]);
    let f = b.node("Flatten", &[&p], vec![attr_int("axis", 1)]);
    let fw = b.weight_f32("fc", &[classes as i64, c as i64], &w.he(classes * c, c));
    let fb = b.weight_f32("fcb", &[classes as i64], &w.he(classes, c));
    let mut y = b.node("Gemm", &[&f, &fw, &fb], vec![attr_int("transB", 1)]);
    if r.below(2) == 0 {
        y = b.node("Softmax", &[&y], vec![attr_int("axis", 1)]);
    }
    b.output(&y);
    (b.build(), shape)
}

fn check(seed: u64) -> Result<(), String> {
    let (model, shape) = random_graph(seed);
    let (dir, path) = common::write_temp(&model);
    // Each graph runs on one kernel path (micro-kernels per ISA, or pure JIT), in rotation.
    let opts = effc::Options { checked: true, kernels: common::kernel_path(seed), ..Default::default() };
    if std::env::var_os("EFFC_SHOW_GRAPHS").is_some() {
        let ops: Vec<&str> = model.graph.as_ref().unwrap().node.iter().map(|n| n.op_type.as_str()).collect();
        eprintln!("seed {seed}: {shape:?} {ops:?}");
    }
    let result = (|| {
        let c = effc::compile_file(&path, &opts).map_err(|e| e.to_string())?;
        let tract = effc_tract::Reference::load(&path, std::slice::from_ref(&shape), &[]).map_err(|e| e.to_string())?;
        let x = effc::input::seeded_noise(&shape, seed);
        let ours = c.model().unwrap().run(std::slice::from_ref(&x)).map_err(|e| e.to_string())?;
        let theirs = tract.run(&[&x.to_f32_vec()]).map_err(|e| e.to_string())?;
        let cmp = Comparison::new(&ours[0].to_f32_vec(), &theirs[0].data);
        if cmp.max_rel <= 1e-4 && cmp.cosine > 0.999_99 { Ok(()) } else { Err(format!("{cmp:?}")) }
    })();
    result.map_err(|e| {
        // Keep the model for reproduction.
        let keep = std::env::temp_dir().join(format!("effc-differential-{seed}.onnx"));
        let _ = std::fs::copy(&path, &keep);
        drop(dir);
        format!("seed {seed} ({}): {e}", keep.display())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn random_graphs_match_tract(seed in any::<u64>()) {
        check(seed).map_err(TestCaseError::fail)?;
    }
}
