//! Classifies one input with a compiled model: an .npy tensor or a PNG/JPEG image.
//!
//! ```sh
//! cargo run --release --example classify -- ../shared/models/tv_b0_legacy.onnx \
//!     ../shared/models/inputs/cat_1x3x224x224.npy
//! ```

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(model_path), Some(input_path)) = (args.next(), args.next()) else {
        eprintln!("usage: classify MODEL.onnx INPUT.(npy|png|jpg)");
        std::process::exit(2);
    };
    // Compile once...
    let compiled = effc::compile_file(&model_path, &effc::Options::default())?;
    let model = compiled.model()?;
    let input = effc::input::load(&PathBuf::from(&input_path), &model.inputs()[0].shape, model.inputs()[0].dtype)?;
    // ...run as often as needed, from any thread.
    let logits = model.run(&[input])?.remove(0).to_f32_vec();
    for (rank, class) in effc::compare::top_k(&logits, 5).into_iter().enumerate() {
        println!("#{} class {class} logit {:.4}", rank + 1, logits[class]);
    }
    Ok(())
}
