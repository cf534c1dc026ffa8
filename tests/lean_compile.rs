//! Compiling without keeping the graph: code generation drops each constant after the
//! last node that reads it. A weight read by several nodes, and a constant that is also a
//! model output, must survive until their last use.

mod common;

use effc::compare::Comparison;
use effc_models::writer::{GraphBuilder, attr_ints};

#[test]
fn shared_weights_and_constant_outputs_survive_until_their_last_use() {
    let mut b = GraphBuilder::new(17);
    let x = b.input_f32("x", &[1, 4, 9, 9]);
    // One 3×3 weight and one bias read by three convs, spread over the graph.
    let w = b.weight_f32("w", &[4, 4, 3, 3], &common::noise(144, 1));
    let bias = b.weight_f32("bias", &[4], &common::noise(4, 2));
    let pads = || attr_ints("pads", &[1, 1, 1, 1]);
    let y1 = b.node("Conv", &[&x, &w, &bias], vec![pads()]);
    let y1 = b.node("Relu", &[&y1], vec![]);
    let y2 = b.node("Conv", &[&y1, &w, &bias], vec![pads()]);
    let y2 = b.node("Sigmoid", &[&y2], vec![]);
    let y3 = b.node("Conv", &[&y2, &w, &bias], vec![pads()]);
    // Constants that are read by nodes and also returned: one read as a run-time operand,
    // one packed as a conv bias.
    let k = b.weight_f32("k", &[1, 4, 1, 1], &common::noise(4, 3));
    let y3 = b.node("Mul", &[&y3, &k], vec![]);
    b.output(&y3);
    b.output(&k);
    b.output(&bias);
    let (_dir, path) = common::write_temp(&b.build());
    let opts = effc::Options { keep_graph: false, ..Default::default() };
    let c = effc::compile_file(&path, &opts).unwrap();
    assert_eq!(c.graph.node_ids().count(), 0, "the graph was consumed");
    let tract = effc_tract::Reference::load(&path, &[vec![1, 4, 9, 9]], &[]).unwrap();
    let input = effc::input::seeded_noise(&[1, 4, 9, 9], 7);
    let ours = c.model().unwrap().run(std::slice::from_ref(&input)).unwrap();
    let theirs = tract.run(&[&input.to_f32_vec()]).unwrap();
    assert_eq!(ours.len(), 3);
    for (o, t) in ours.iter().zip(&theirs) {
        let cmp = Comparison::new(&o.to_f32_vec(), &t.data);
        assert!(cmp.max_rel <= 1e-4 && cmp.cosine > 0.999_999, "{cmp:?}");
    }
    assert_eq!(ours[1].to_f32_vec(), common::noise(4, 3), "a constant output is the constant");
    assert_eq!(ours[2].to_f32_vec(), common::noise(4, 2), "a constant output is the constant");
}
