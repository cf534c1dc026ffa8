//! The whole path on arbitrary bytes: decode → IR → passes → JIT → run, in checked mode and
//! under a small memory cap. Any panic, crash or canary hit is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Half the inputs compile as the CLI does, consuming the graph and dropping weights
    // as they are packed.
    let keep_graph = data.len() % 2 == 0;
    let opts = effc::Options { checked: true, max_memory: Some(64 << 20), keep_graph, ..Default::default() };
    let Ok(c) = effc::compile_bytes(data.to_vec(), None, &opts) else { return };
    let Some(model) = c.model.as_ref() else { return };
    // Only run small f32 models; a canary hit is reported as an error, which must not happen.
    let small = model.inputs().iter().all(|i| i.dtype == effc::DType::F32 && i.shape.iter().product::<usize>() <= 1 << 16);
    if small {
        let inputs: Vec<effc::Tensor> =
            model.inputs().iter().enumerate().map(|(k, i)| effc::input::seeded_noise(&i.shape, k as u64)).collect();
        if let Err(e) = model.run(&inputs) {
            assert!(!e.to_string().contains("checked mode"), "{e}");
        }
    }
});
