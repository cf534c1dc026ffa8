//! The shared EfficientNet-B0 exports against onnxruntime's stored outputs.

mod common;

use common::shared_models;
use ndarray::ArrayD;
use ndarray_npy::read_npy;

fn npy(path: &std::path::Path) -> ArrayD<f32> {
    read_npy(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Max |a-b| relative to max |b|, and whether the top-5 classes agree.
fn compare(got: &[f32], want: &[f32]) -> (f64, bool) {
    let max_ref = want.iter().fold(0f64, |m, &v| m.max(v.abs() as f64));
    let max_abs = got.iter().zip(want).fold(0f64, |m, (&a, &b)| m.max((a as f64 - b as f64).abs()));
    let top5 = |v: &[f32]| {
        let mut idx: Vec<usize> = (0..v.len()).collect();
        idx.sort_by(|&i, &j| v[j].total_cmp(&v[i]));
        idx.truncate(5);
        idx
    };
    (max_abs / max_ref, top5(got) == top5(want))
}

#[test]
fn shared_b0_models_match_onnxruntime() {
    let models = shared_models();
    for name in ["tv_b0_legacy", "tv_b0_bn", "tv_b0_dynamo"] {
        let c = effc::compile_file(models.join(format!("{name}.onnx")), &effc::Options::default())
            .unwrap_or_else(|e| panic!("{e}"));
        let model = c.model().unwrap();
        for input in ["cat", "noise"] {
            let x = npy(&models.join(format!("inputs/{input}_1x3x224x224.npy")));
            let want = npy(&models.join(format!("ref/{name}.{input}.ort.npy")));
            let mut out = vec![0f32; 1000];
            model
                .run_into(&[effc::TensorRef::F32(x.as_slice().unwrap())], &mut [effc::TensorMut::F32(&mut out)])
                .unwrap();
            let (rel, top5) = compare(&out, want.as_slice().unwrap());
            println!("{name} {input}: max_rel {rel:.2e}, top-5 {}", if top5 { "same" } else { "DIFFERENT" });
            assert!(rel <= 1e-4, "{name} on {input}: relative max abs error {rel:.3e}");
            assert!(top5, "{name} on {input}: top-5 differs");
        }
    }
}
