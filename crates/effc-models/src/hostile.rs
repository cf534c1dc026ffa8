//! Small models of the hostile classes effc guards against, shared by its tests and its
//! fuzz seeds.

use effc_onnx::proto::ModelProto;

use crate::writer::{GraphBuilder, attr_int, attr_tensor, tensor_f32};

/// A constant-folding bomb of a few hundred bytes: `repeats` links of
/// ConstantOfShape([len]) → Add → ReduceMax added to the input `x` [1]. Each link folds to
/// one value (2 + 1 = 3 per link), after computing two tensors of `len` values.
pub fn fold_bomb(repeats: usize, len: i64) -> ModelProto {
    let mut b = GraphBuilder::new(13);
    let mut y = b.input_f32("x", &[1]);
    for _ in 0..repeats {
        let shape = b.weight_i64("shape", &[len]);
        let big = b.node("ConstantOfShape", &[&shape], vec![attr_tensor("value", tensor_f32("v", &[1], &[1.0]))]);
        let big = b.node("Add", &[&big, &big], vec![]);
        let m = b.node("ReduceMax", &[&big], vec![attr_int("keepdims", 0)]);
        let one = b.weight_i64("one", &[1]);
        let m = b.node("Reshape", &[&m, &one], vec![]);
        y = b.node("Add", &[&y, &m], vec![]);
    }
    b.output(&y);
    b.build()
}
