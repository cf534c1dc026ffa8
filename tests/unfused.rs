//! `effc compile` names, for every conv left outside a super-op, the first fusion rule it
//! failed.

mod common;

use common::*;
use effc_models::family::{Act, MbConvSpec, SeStyle, Weights, conv_bn, mbconv};
use effc_models::writer::*;
use effc_onnx::proto::tensor_proto::DataType;

fn block(c_in: usize, c_out: usize, stride: usize) -> MbConvSpec {
    MbConvSpec {
        c_in,
        c_out,
        expand_ratio: 4,
        expanded: None,
        kernel: 3,
        stride,
        se: Some(2),
        act: Act::Swish,
        se_style: SeStyle::Conv,
    }
}

#[test]
fn every_unfused_conv_says_why() {
    let mut b = GraphBuilder::new(13);
    let mut w = Weights::new(5);
    let x = b.input("x", DataType::Float, &[1.into(), 3.into(), 16.into(), 16.into()]);
    let stem = conv_bn(&mut b, &mut w, &x, 3, 8, 3, 2, 1);
    let y = mbconv(&mut b, &mut w, &stem, &block(8, 8, 1));
    // A second reader of the second block's input keeps its projection's input shared.
    let z = mbconv(&mut b, &mut w, &y, &block(8, 12, 1));
    b.output(&z);
    b.output(&y);
    let c = compile_ok(&b.build());
    assert_eq!(c.summary.ops_after.get("MBConv"), Some(&2), "{:?}", c.summary.ops_after);
    let reasons: Vec<String> = c.summary.unfused.iter().map(|u| u.reason.clone()).collect();
    assert_eq!(reasons, ["a dense k×k conv without an activation, which no super-op takes"], "{:?}", c.summary.unfused);

    // A block whose depthwise output is also a model output stays apart, and its three
    // convs say so.
    let mut b = GraphBuilder::new(13);
    let x = b.input("x", DataType::Float, &[1.into(), 8.into(), 8.into(), 8.into()]);
    let e = b.weight_f32("e", &[32, 8, 1, 1], &noise(256, 1));
    let h = b.node("Conv", &[&x, &e], vec![]);
    let h = b.node("Relu", &[&h], vec![]);
    let dw = b.weight_f32("dw", &[32, 1, 3, 3], &noise(288, 2));
    let d = b.node("Conv", &[&h, &dw], vec![attr_int("group", 32), attr_ints("pads", &[1, 1, 1, 1])]);
    let d = b.node("Relu", &[&d], vec![]);
    let p = b.weight_f32("p", &[8, 32, 1, 1], &noise(256, 3));
    let y = b.node("Conv", &[&d, &p], vec![]);
    b.output(&y);
    b.output(&d);
    let c = compile_ok(&b.build());
    assert_eq!(c.summary.ops_after.get("MBConv"), None, "{:?}", c.summary.ops_after);
    let u = &c.summary.unfused;
    assert_eq!(u.len(), 3, "{u:?}");
    assert!(u.iter().all(|u| u.reason.contains("its input has other users")), "{u:?}");
    assert!(u[0].reason.starts_with("as the expansion of the block projected by"), "{u:?}");
    assert!(u[1].reason.starts_with("as the depthwise of the block projected by"), "{u:?}");
}
