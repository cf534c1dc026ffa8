//! Decoding and importing arbitrary bytes: every input is either a model or an error.
//! Under a 64 MB budget, as `compile_run` compiles: decoding, folding and weights all count
//! against it, so no input may make this allocate much more.
#![no_main]

use libfuzzer_sys::fuzz_target;

const BUDGET: usize = 64 << 20;

fuzz_target!(|data: &[u8]| {
    if let Ok(model) = effc_onnx::load_model_bytes_within(data.to_vec(), None, BUDGET) {
        let opts =
            effc_onnx::ImportOptions { max_folded_bytes: BUDGET, max_weight_bytes: BUDGET, ..Default::default() };
        let _ = effc_onnx::import_model(&model, &opts);
    }
});
