//! Decoding and importing arbitrary bytes: every input is either a model or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(model) = effc_onnx::load_model_bytes(data.to_vec(), None) {
        let _ = effc_onnx::import_model(&model, &Default::default());
    }
});
