//! Models importing opsets after 21: each node follows the version of its op's definition
//! the opset selects, and only a definition effc does not implement is refused, by name.

mod common;

use common::*;
use effc_models::writer::*;
use effc_onnx::proto::ModelProto;

/// Conv → HardSwish → GlobalAveragePool → Flatten, the ops whose definitions changed at
/// opset 22 (bfloat16 only) or not at all, written at `opset`.
fn small_net(opset: i64) -> ModelProto {
    let mut b = GraphBuilder::new(opset);
    let x = b.input_f32("x", &[1, 4, 9, 9]);
    let w = b.weight_f32("w", &[8, 4, 3, 3], &noise(8 * 4 * 9, 1));
    let bias = b.weight_f32("b", &[8], &noise(8, 2));
    let attrs =
        vec![attr_ints("kernel_shape", &[3, 3]), attr_ints("strides", &[2, 2]), attr_ints("pads", &[1, 1, 1, 1])];
    let y = b.node("Conv", &[&x, &w, &bias], attrs);
    let y = b.node("HardSwish", &[&y], vec![]);
    let y = b.node("AveragePool", &[&y], vec![attr_ints("kernel_shape", &[2, 2]), attr_int("ceil_mode", 1)]);
    let y = b.node("GlobalAveragePool", &[&y], vec![]);
    let y = b.node("Flatten", &[&y], vec![]);
    b.output(&y);
    b.build()
}

fn run(model: &ModelProto, input: &effc::Tensor) -> Vec<f32> {
    let compiled = compile_ok(model);
    compiled.model().unwrap().run(std::slice::from_ref(input)).unwrap()[0].to_f32_vec()
}

/// Opsets 22 to 28 select Conv-22, AveragePool-22, GlobalAveragePool-22, HardSwish-22 and
/// Flatten-21…25, which compute what opset 21's definitions do.
#[test]
fn opsets_22_to_28_compute_what_opset_21_does() {
    let input = effc::Tensor::from_f32(vec![1, 4, 9, 9], noise(4 * 81, 3)).unwrap();
    let reference = run(&small_net(21), &input);
    for opset in 22..=28 {
        assert_eq!(run(&small_net(opset), &input), reference, "opset {opset}");
    }
}

/// Mod-28 gave floats a new fmod = 0 definition; effc implements Mod up to version 13 (here
/// folded at import, as exporters' shape arithmetic is).
#[test]
fn a_definition_newer_than_effc_implements_is_refused_by_name() {
    let model = |opset| {
        let mut b = GraphBuilder::new(opset);
        let x = b.input_f32("x", &[4]);
        let n = b.weight_f32("n", &[4], &[5.0, -7.5, 2.0, 1.25]);
        let d = b.weight_f32("d", &[4], &[1.5, -2.0, 3.0, 0.5]);
        let m = b.node("Mod", &[&n, &d], vec![attr_int("fmod", 1)]);
        let y = b.node("Add", &[&x, &m], vec![]);
        b.output(&y);
        b.build()
    };
    compile_ok(&model(27));
    let e = compile_err(&model(28));
    for part in ["(Mod, opset 28)", "Mod-28", "effc implements Mod up to version 13"] {
        assert!(e.contains(part), "{e:?} should mention {part:?}");
    }
    let e = compile_err(&small_net(29));
    assert!(e.contains("opset 29") && e.contains("6 to 28"), "{e}");
}

/// Gelu exists from opset 20 on; a model that uses it under an older opset is invalid.
#[test]
fn an_op_used_before_its_first_opset_is_refused() {
    let mut b = GraphBuilder::new(19);
    let x = b.input_f32("x", &[4]);
    let y = b.node("Gelu", &[&x], vec![]);
    b.output(&y);
    let e = compile_err(&b.build());
    assert!(e.contains("Gelu does not exist in opset 19"), "{e}");
}
