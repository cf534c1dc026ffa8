//! One importer per ONNX op, grouped by family: the same family modules as the
//! lowering's (`effc_jit`'s `lower/`), so an op is imported and lowered in files of one name.

mod conv;
mod copy;
mod elementwise;
mod gemm;
mod qoperator;
mod reduce;

use effc_ir::{ErrorKind, Result, ValueRef};

use super::NodeCtx;

/// onnxruntime's contrib-op domain; effc reads its QOperator ops (all version 1).
pub(crate) const MICROSOFT: &str = "com.microsoft";

/// Imports one node and returns the IR values of its outputs, in order.
pub(crate) fn import(ctx: &mut NodeCtx) -> Result<Vec<ValueRef>> {
    if ctx.node.domain == MICROSOFT {
        return match ctx.node.op_type.as_str() {
            "QGemm" => qoperator::qgemm(ctx),
            "QLinearAdd" | "QLinearMul" => qoperator::qlinear_binary(ctx),
            "QLinearSigmoid" | "QLinearLeakyRelu" => qoperator::qlinear_unary(ctx),
            "QLinearGlobalAveragePool" => qoperator::qlinear_global_average_pool(ctx),
            "QLinearConcat" => qoperator::qlinear_concat(ctx),
            other => {
                Err(ErrorKind::UnsupportedOp { op_type: other.to_string(), domain: ctx.node.domain.clone() }.into())
            }
        };
    }
    match ctx.node.op_type.as_str() {
        "Conv" => conv::conv(ctx),
        "MaxPool" | "AveragePool" => conv::pool(ctx),
        "GlobalAveragePool" | "GlobalMaxPool" => reduce::global_pool(ctx),
        "BatchNormalization" => elementwise::batch_norm(ctx),

        "Gemm" => gemm::gemm(ctx),
        "MatMul" => gemm::matmul(ctx),
        "Softmax" | "LogSoftmax" => reduce::softmax(ctx),
        "ReduceMean" | "ReduceSum" | "ReduceMax" | "ReduceMin" | "ReduceProd" => reduce::reduce(ctx),

        "Add" | "Sub" | "Mul" | "Div" | "Pow" | "PRelu" | "Mod" | "Equal" | "Less" | "Greater" | "And" | "Or" => {
            elementwise::binary(ctx)
        }
        "Sum" | "Max" | "Min" | "Mean" => elementwise::variadic(ctx),
        "Clip" => elementwise::clip(ctx),
        "Cast" => copy::cast(ctx),
        "Where" => elementwise::where_(ctx),
        "QuantizeLinear" | "DequantizeLinear" => elementwise::quantization(ctx),
        "QLinearConv" => qoperator::qlinear_conv(ctx),
        "QLinearMatMul" => qoperator::qlinear_matmul(ctx),
        "ConvInteger" => qoperator::conv_integer(ctx),
        "MatMulInteger" => qoperator::matmul_integer(ctx),
        op if elementwise::unary_op(op, &ctx.attrs).is_some() => elementwise::unary(ctx),

        "Identity" | "Dropout" => copy::identity(ctx),
        "Constant" => copy::constant(ctx),
        "Shape" => copy::shape(ctx),
        "Size" => copy::size(ctx),
        "ConstantOfShape" => copy::constant_of_shape(ctx),
        "Reshape" => copy::reshape(ctx),
        "Flatten" => copy::flatten(ctx),
        "Squeeze" => copy::squeeze(ctx),
        "Unsqueeze" => copy::unsqueeze(ctx),
        "Transpose" => copy::transpose(ctx),
        "Concat" => copy::concat(ctx),
        "Split" => copy::split(ctx),
        "Slice" => copy::slice(ctx),
        "Gather" => copy::gather(ctx),
        "Tile" => copy::tile(ctx),
        "Expand" => copy::expand(ctx),
        "Pad" => copy::pad(ctx),
        "Range" => copy::range(ctx),

        other => Err(ErrorKind::UnsupportedOp { op_type: other.to_string(), domain: ctx.node.domain.clone() }.into()),
    }
}
