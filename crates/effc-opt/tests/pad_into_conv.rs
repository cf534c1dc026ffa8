use effc_ir::op::{Conv, Op, Pad, PadMode};
use effc_ir::{DType, Graph, Tensor, ValueInfo, ValueRef};
use effc_opt::{DeadCode, MergePadIntoConv, Pass, optimize};

fn info(name: &str, shape: &[usize]) -> Vec<ValueInfo> {
    vec![ValueInfo { name: name.into(), dtype: DType::F32, shape: shape.to_vec() }]
}

/// x → Pad(mode, pads) → Conv(pads 1,1,1,1), returning the graph and the Conv node.
fn padded_conv(mode: PadMode, begin: Vec<usize>, end: Vec<usize>) -> (Graph, effc_ir::NodeId) {
    let mut g = Graph::new();
    let x = g.add_node("x", Op::Input { index: 0 }, &[], info("x", &[1, 2, 5, 5]));
    g.inputs.push(x);
    let out_hw = [5 + begin[2] + end[2], 5 + begin[3] + end[3]];
    let pad = g.add_node(
        "pad",
        Op::Pad(Pad { mode, begin, end }),
        &[Some(ValueRef::new(x, 0))],
        info("p", &[1, 2, out_hw[0], out_hw[1]]),
    );
    let w = g.add_const("w", Tensor::from_f32(vec![2, 2, 3, 3], vec![0.0; 36]).unwrap());
    let conv = Conv {
        kernel: vec![3, 3],
        strides: vec![1, 1],
        dilations: vec![1, 1],
        pads_begin: vec![1, 1],
        pads_end: vec![1, 1],
        group: 1,
        act: None,
    };
    let c = g.add_node(
        "conv",
        Op::Conv(conv),
        &[Some(ValueRef::new(pad, 0)), Some(w)],
        info("y", &[1, 2, out_hw[0], out_hw[1]]),
    );
    g.outputs.push(("y".into(), ValueRef::new(c, 0)));
    (g, c)
}

#[test]
fn zero_pad_merges_and_disappears() {
    let (mut g, c) = padded_conv(PadMode::Constant(0.0), vec![0, 0, 2, 0], vec![0, 0, 1, 3]);
    let passes: Vec<Box<dyn Pass>> = vec![Box::new(MergePadIntoConv), Box::new(DeadCode)];
    let reports = optimize(&mut g, &passes).unwrap();
    assert_eq!(reports[0].changes, 1);
    let Op::Conv(conv) = &g.node(c).op else { panic!() };
    assert_eq!((conv.pads_begin.clone(), conv.pads_end.clone()), (vec![3, 1], vec![2, 4]));
    assert_eq!(g.op_histogram().keys().collect::<Vec<_>>(), ["Conv"]);
    assert!(matches!(g.node(g.input(c, 0).unwrap().node).op, Op::Input { .. }));
}

#[test]
fn non_zero_or_channel_pads_stay() {
    for (mode, begin) in [
        (PadMode::Constant(1.0), vec![0, 0, 1, 1]),
        (PadMode::Reflect, vec![0, 0, 1, 1]),
        (PadMode::Constant(0.0), vec![0, 1, 1, 1]),
    ] {
        let (mut g, _) = padded_conv(mode, begin.clone(), vec![0, 0, 1, 1]);
        assert_eq!(MergePadIntoConv.run(&mut g).unwrap(), 0, "{mode:?} {begin:?}");
    }
}
