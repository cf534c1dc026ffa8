//! Blocks of the family quantized by onnxruntime's own `quantize_static`, in its QOperator
//! form (QLinearConv and the com.microsoft QLinear* ops, QGemm) and its QDQ form, against
//! onnxruntime's outputs (its int8 kernels): tests/ort-quant, written by
//! tools/ort_quant_cases.py.
//!
//! effc imports the QOperator ops as their QDQ equivalent, so both forms of a block must
//! compile to the same steps (no QuantizeLinear or DequantizeLinear left, the convs' snaps
//! fused, explicit pads merged), and
//! agree with onnxruntime within 2 quanta of the output's scale on every value (engines
//! round the rescaled integer sums differently), on every kernel path.

mod common;

use std::path::{Path, PathBuf};

use effc_onnx::proto::TensorProto;
use prost::Message;

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ort-quant");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()).collect();
    v.sort();
    v
}

fn read_pb(path: &Path) -> effc_ir::Tensor {
    let bytes = std::fs::read(path).unwrap();
    effc_onnx::tensor_from_proto(&TensorProto::decode(bytes.as_slice()).unwrap()).unwrap()
}

#[test]
fn onnxruntime_quantized_blocks_agree_with_onnxruntime_within_two_quanta() {
    let cases = cases();
    assert_eq!(cases.len(), 4, "{cases:?}");
    let mut steps = std::collections::BTreeMap::new();
    for dir in cases {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let x = read_pb(&dir.join("test_data_set_0/input_0.pb"));
        let want = read_pb(&dir.join("test_data_set_0/output_0.pb")).to_f32_vec();
        for kernels in common::kernel_paths() {
            // Int8 weights too: the products read the same integers.
            let opts = effc::Options { kernels, int8_weights: true, ..Default::default() };
            let c = effc::compile_file(dir.join("model.onnx"), &opts)
                .unwrap_or_else(|e| panic!("{name} on {}: {e}", kernels.name()));
            let h = &c.summary.ops_after;
            // Both forms of one block compile to the same steps.
            let block = name.trim_end_matches("_qdq").trim_end_matches("_qoperator").to_string();
            let first = steps.entry((block, kernels.name())).or_insert_with(|| h.clone());
            assert_eq!(first, h, "{name} on {}", kernels.name());
            for gone in ["QuantizeLinear", "DequantizeLinear"] {
                assert!(!h.contains_key(gone), "{name} on {}: {gone} left: {h:?}", kernels.name());
            }
            let quantum = c.output_quanta[0].unwrap_or_else(|| panic!("{name}: output not dequantized"));
            let got = c.model().unwrap().run(std::slice::from_ref(&x)).unwrap()[0].to_f32_vec();
            let q = effc::compare::Quanta::new(&got, &want, quantum);
            println!("{name} on {}: quanta off by 0/1/2/more {:?}, max {}: {h:?}", kernels.name(), q.off_by, q.max);
            assert!(q.max <= 2, "{name} on {}: {:?}", kernels.name(), q.off_by);
        }
    }
}
