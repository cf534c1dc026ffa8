//! One importer per ONNX op, grouped by family.

mod conv;
mod elementwise;
mod layout;
mod nn;

use effc_ir::{ErrorKind, Result, ValueRef};

use super::NodeCtx;

/// Imports one node and returns the IR values of its outputs, in order.
pub(crate) fn import(ctx: &mut NodeCtx) -> Result<Vec<ValueRef>> {
    match ctx.node.op_type.as_str() {
        "Conv" => conv::conv(ctx),
        "MaxPool" | "AveragePool" => conv::pool(ctx),
        "GlobalAveragePool" | "GlobalMaxPool" => conv::global_pool(ctx),
        "BatchNormalization" => conv::batch_norm(ctx),

        "Gemm" => nn::gemm(ctx),
        "MatMul" => nn::matmul(ctx),
        "Softmax" | "LogSoftmax" => nn::softmax(ctx),
        "ReduceMean" | "ReduceSum" | "ReduceMax" | "ReduceMin" | "ReduceProd" => nn::reduce(ctx),

        "Add" | "Sub" | "Mul" | "Div" | "Pow" | "PRelu" | "Mod" | "Equal" | "Less" | "Greater" | "And" | "Or" => {
            elementwise::binary(ctx)
        }
        "Sum" | "Max" | "Min" | "Mean" => elementwise::variadic(ctx),
        "Clip" => elementwise::clip(ctx),
        "Cast" => elementwise::cast(ctx),
        "Where" => elementwise::where_(ctx),
        op if elementwise::unary_op(op, &ctx.attrs).is_some() => elementwise::unary(ctx),

        "Identity" | "Dropout" => layout::identity(ctx),
        "Constant" => layout::constant(ctx),
        "Shape" => layout::shape(ctx),
        "Size" => layout::size(ctx),
        "ConstantOfShape" => layout::constant_of_shape(ctx),
        "Reshape" => layout::reshape(ctx),
        "Flatten" => layout::flatten(ctx),
        "Squeeze" => layout::squeeze(ctx),
        "Unsqueeze" => layout::unsqueeze(ctx),
        "Transpose" => layout::transpose(ctx),
        "Concat" => layout::concat(ctx),
        "Split" => layout::split(ctx),
        "Slice" => layout::slice(ctx),
        "Gather" => layout::gather(ctx),
        "Tile" => layout::tile(ctx),
        "Expand" => layout::expand(ctx),
        "Pad" => layout::pad(ctx),
        "Range" => layout::range(ctx),

        other => Err(ErrorKind::UnsupportedOp { op_type: other.to_string(), domain: ctx.node.domain.clone() }.into()),
    }
}
