//! Concurrency and lifetime: many threads on one model, and compile/drop loops.

mod common;

use effc_models::family::{Family, efficientnet};

fn small_model() -> Vec<u8> {
    effc_models::writer::encode(&efficientnet(&Family::lite(0).unwrap(), 1.into(), 32, 10, 3))
}

/// 4 threads × 200 runs sharing one CompiledModel on random inputs: every output equals the
/// single-threaded result for the same input, bit for bit.
#[test]
fn four_threads_two_hundred_runs_each() {
    let c = effc::compile_bytes(small_model(), None, &effc::Options::default()).unwrap();
    let model = c.model().unwrap();
    let inputs: Vec<effc::Tensor> = (0..16).map(|s| effc::input::seeded_noise(&[1, 3, 32, 32], s)).collect();
    let expected: Vec<Vec<u32>> = inputs
        .iter()
        .map(|x| model.run(std::slice::from_ref(x)).unwrap()[0].to_f32_vec().iter().map(|v| v.to_bits()).collect())
        .collect();
    std::thread::scope(|s| {
        for t in 0..4 {
            let (inputs, expected) = (&inputs, &expected);
            s.spawn(move || {
                for r in 0..200 {
                    let k = (t * 7 + r * 3) % inputs.len();
                    let got: Vec<u32> = model.run(std::slice::from_ref(&inputs[k])).unwrap()[0]
                        .to_f32_vec()
                        .iter()
                        .map(|v| v.to_bits())
                        .collect();
                    assert_eq!(got, expected[k], "thread {t} run {r}");
                }
            });
        }
    });
}
