//! Which version of each op's ONNX definition a model's opset selects, and whether effc
//! implements it.
//!
//! A model imports one default-domain opset N; each of its nodes then follows the newest
//! definition of its op whose `since_version` is at most N. Most definitions after opset 21
//! only widened the types (bfloat16, float8, int4, int2), which effc refuses by dtype
//! anyway, so a file importing opset 26 runs wherever its ops resolve to definitions effc
//! knows. The table lists, per op, every `since_version` in the `onnx` package pinned in
//! `tools/requirements.txt` (printed by `tools/onnx_versions.py`) and the newest one effc
//! implements; a node whose opset selects a newer one is refused by name.

use effc_ir::{Error, Result};

/// The newest default-domain opset whose definitions the table below covers.
pub const NEWEST_OPSET: i64 = 28;

/// The oldest default-domain opset effc reads (ONNX's own conformance cases use 6 to 10).
pub const OLDEST_OPSET: i64 = 6;

/// One op's definitions: the opsets in which they changed, and the newest effc implements.
struct Versions {
    op: &'static str,
    since: &'static [i64],
    implemented: i64,
}

const fn v(op: &'static str, since: &'static [i64], implemented: i64) -> Versions {
    Versions { op, since, implemented }
}

/// Every op the importer reads. Where `implemented` is newer than 21, the later
/// definitions differ from the one before only in types effc does not run (or, for
/// Cast-24 and Range-27, in an attribute that only acts on such types; for the
/// quantization ops, in attributes the importer checks).
const TABLE: &[Versions] = &[
    v("Abs", &[1, 6, 13], 13),
    v("Add", &[1, 6, 7, 13, 14], 14),
    v("And", &[1, 7], 7),
    v("AveragePool", &[1, 7, 10, 11, 19, 22], 22),
    v("BatchNormalization", &[1, 6, 7, 9, 14, 15], 15),
    v("Cast", &[1, 6, 9, 13, 19, 21, 23, 24, 25, 28], 28),
    v("Ceil", &[1, 6, 13], 13),
    v("Clip", &[1, 6, 11, 12, 13], 13),
    v("Concat", &[1, 4, 11, 13], 13),
    v("Constant", &[1, 9, 11, 12, 13, 19, 21, 23, 24, 25], 25),
    v("ConstantOfShape", &[9, 20, 21, 23, 24, 25], 25),
    v("Conv", &[1, 11, 22], 22),
    v("ConvInteger", &[10], 10),
    // 23 adds QuantizeLinear's `precision` and DequantizeLinear's `output_dtype`
    // (effc reads both: f32 only); the later ones add float8/6/4 and int2 types.
    v("DequantizeLinear", &[10, 13, 19, 21, 23, 24, 25, 28], 28),
    v("Div", &[1, 6, 7, 13, 14], 14),
    v("Dropout", &[1, 6, 7, 10, 12, 13, 22], 22),
    v("Elu", &[1, 6, 22], 22),
    v("Equal", &[1, 7, 11, 13, 19], 19),
    v("Erf", &[9, 13], 13),
    v("Exp", &[1, 6, 13], 13),
    v("Expand", &[8, 13], 13),
    v("Flatten", &[1, 9, 11, 13, 21, 23, 24, 25], 25),
    v("Floor", &[1, 6, 13], 13),
    v("Gather", &[1, 11, 13], 13),
    v("Gelu", &[20], 20),
    v("Gemm", &[1, 6, 7, 9, 11, 13], 13),
    v("GlobalAveragePool", &[1, 22], 22),
    v("GlobalMaxPool", &[1, 22], 22),
    v("Greater", &[1, 7, 9, 13], 13),
    v("HardSigmoid", &[1, 6, 22], 22),
    v("HardSwish", &[14, 22], 22),
    v("Identity", &[1, 13, 14, 16, 19, 21, 23, 24, 25], 25),
    v("LeakyRelu", &[1, 6, 16], 16),
    v("Less", &[1, 7, 9, 13], 13),
    v("Log", &[1, 6, 13], 13),
    v("LogSoftmax", &[1, 11, 13], 13),
    v("MatMul", &[1, 9, 13], 13),
    v("MatMulInteger", &[10], 10),
    v("Max", &[1, 6, 8, 12, 13], 13),
    v("MaxPool", &[1, 8, 10, 11, 12, 22], 22),
    v("Mean", &[1, 6, 8, 13], 13),
    v("Min", &[1, 6, 8, 12, 13], 13),
    // Mod-28 defines fmod = 0 on floats (A − floor(A/B)·B with IEEE special cases).
    v("Mod", &[10, 13, 28], 13),
    v("Mul", &[1, 6, 7, 13, 14], 14),
    v("Neg", &[1, 6, 13], 13),
    v("Not", &[1], 1),
    v("Or", &[1, 7], 7),
    v("PRelu", &[1, 6, 7, 9, 16], 16),
    v("Pad", &[1, 2, 11, 13, 18, 19, 21, 23, 24, 25], 25),
    v("Pow", &[1, 7, 12, 13, 15], 15),
    // 21 adds float8 and float16 scales.
    v("QLinearConv", &[10], 10),
    v("QLinearMatMul", &[10, 21], 21),
    v("QuantizeLinear", &[10, 13, 19, 21, 23, 24, 25, 28], 28),
    v("Range", &[11, 27], 27),
    v("Reciprocal", &[1, 6, 13], 13),
    v("ReduceMax", &[1, 11, 12, 13, 18, 20], 20),
    v("ReduceMean", &[1, 11, 13, 18], 18),
    v("ReduceMin", &[1, 11, 12, 13, 18, 20], 20),
    v("ReduceProd", &[1, 11, 13, 18], 18),
    v("ReduceSum", &[1, 11, 13], 13),
    v("Relu", &[1, 6, 13, 14], 14),
    v("Reshape", &[1, 5, 13, 14, 19, 21, 23, 24, 25], 25),
    v("Round", &[11, 22], 22),
    v("Selu", &[1, 6, 22], 22),
    v("Shape", &[1, 13, 15, 19, 21, 23, 24, 25], 25),
    v("Sigmoid", &[1, 6, 13], 13),
    v("Size", &[1, 13, 19, 21, 23, 24, 25], 25),
    v("Slice", &[1, 10, 11, 13], 13),
    v("Softmax", &[1, 11, 13], 13),
    v("Softplus", &[1, 22], 22),
    v("Softsign", &[1, 22], 22),
    v("Split", &[1, 2, 11, 13, 18], 18),
    v("Sqrt", &[1, 6, 13], 13),
    v("Squeeze", &[1, 11, 13, 21, 23, 24, 25], 25),
    v("Sub", &[1, 6, 7, 13, 14], 14),
    v("Sum", &[1, 6, 8, 13], 13),
    v("Tanh", &[1, 6, 13], 13),
    v("Tile", &[1, 6, 13], 13),
    v("Transpose", &[1, 13, 21, 23, 24, 25], 25),
    v("Unsqueeze", &[1, 11, 13, 21, 23, 24, 25], 25),
    v("Where", &[9, 16], 16),
];

/// Refuses a model opset outside what the table covers.
pub fn check_opset(opset: i64) -> Result<()> {
    if (OLDEST_OPSET..=NEWEST_OPSET).contains(&opset) {
        return Ok(());
    }
    Err(Error::unsupported(format!(
        "default-domain opset {opset} (effc knows ONNX's definitions for opsets {OLDEST_OPSET} to {NEWEST_OPSET})"
    )))
}

/// The version of `op`'s definition that `opset` selects, or an error if effc does not
/// implement it (or the op did not exist yet). Ops the table does not list are left to
/// the importer, which refuses them as unsupported ops.
pub fn check_op(op: &str, opset: i64) -> Result<Option<i64>> {
    let Some(entry) = TABLE.iter().find(|e| e.op == op) else { return Ok(None) };
    let Some(&version) = entry.since.iter().rev().find(|&&s| s <= opset) else {
        return Err(Error::invalid(format!(
            "{op} does not exist in opset {opset} (it was added in opset {})",
            entry.since.first().copied().unwrap_or(0)
        )));
    };
    if version > entry.implemented {
        return Err(Error::unsupported(format!(
            "{op}-{version}, the definition opset {opset} selects (effc implements {op} up to version {})",
            entry.implemented
        )));
    }
    Ok(Some(version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_is_sorted_and_implements_a_listed_version() {
        for e in TABLE {
            assert!(e.since.windows(2).all(|w| w[0] < w[1]), "{}", e.op);
            assert!(e.since.contains(&e.implemented), "{}", e.op);
            assert!(e.since.iter().all(|&s| s <= NEWEST_OPSET), "{}", e.op);
        }
        assert!(TABLE.windows(2).all(|w| w[0].op < w[1].op), "the table is sorted by op");
    }

    #[test]
    fn an_opset_selects_the_newest_definition_not_after_it() {
        assert_eq!(check_op("Conv", 21).ok(), Some(Some(11)));
        assert_eq!(check_op("Conv", 26).ok(), Some(Some(22)));
        assert_eq!(check_op("Reshape", 28).ok(), Some(Some(25)));
        assert_eq!(check_op("Mod", 27).ok(), Some(Some(13)));
        assert_eq!(check_op("NoSuchOp", 20).ok(), Some(None));
    }

    #[test]
    fn a_definition_newer_than_effc_knows_is_refused_by_name() {
        let e = check_op("Mod", 28).unwrap_err().to_string();
        assert!(e.contains("Mod-28") && e.contains("up to version 13"), "{e}");
        let e = check_op("Gelu", 19).unwrap_err().to_string();
        assert!(e.contains("Gelu does not exist in opset 19"), "{e}");
        assert!(check_opset(29).is_err() && check_opset(5).is_err() && check_opset(22).is_ok());
    }
}
