//! `effc run`: compile a model and run it on inputs from files.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use clap::Args;

use crate::compile::parse_input_shapes;

#[derive(Args)]
pub struct RunArgs {
    /// The ONNX model.
    pub model: PathBuf,
    /// An input file (.npy, or a PNG/JPEG for an N×3×H×W input), one per model input.
    #[arg(long, required = true)]
    pub input: Vec<PathBuf>,
    /// Write the first output as .npy.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// How many top-scoring classes to print.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// Threads for one run.
    #[arg(long, default_value_t = 1, value_parser = crate::thread_count)]
    pub threads: usize,
    /// Shape for an input with symbolic dims, e.g. `input=1x3x224x224`.
    #[arg(long = "input-shape", value_name = "NAME=DIMS")]
    pub input_shapes: Vec<String>,
    /// Feed a graph input that also has an initializer (its default otherwise): it then
    /// takes its place among the --input files, in the model's input order.
    #[arg(long = "override", value_name = "NAME")]
    pub overridden: Vec<String>,
    #[command(flatten)]
    pub codegen: crate::compile::CodegenArgs,
}

pub fn run(args: &RunArgs) -> Result<()> {
    // The inputs' own shapes bind the model's symbolic dims (`--input-shape` first).
    let shapes_in_order = args.input.iter().map(|p| effc::input::file_shape(p)).collect::<effc::Result<Vec<_>>>()?;
    let opts = effc::Options {
        input_shapes: parse_input_shapes(&args.input_shapes)?,
        shapes_in_order,
        overridden: args.overridden.clone(),
        ..args.codegen.options()
    };
    let c = effc::compile_file(&args.model, &opts)?;
    let model = c.model()?;
    if args.input.len() != model.inputs().len() {
        let names: Vec<&str> = model.inputs().iter().map(|i| i.name.as_str()).collect();
        let defaulted = &c.summary.defaulted_inputs;
        let hint = match defaulted.as_slice() {
            [] => String::new(),
            names => format!(
                "; {} also {} an initializer, compiled in as {} value (--override NAME feeds it)",
                names.join(", "),
                if names.len() == 1 { "has" } else { "have" },
                if names.len() == 1 { "its" } else { "their" }
            ),
        };
        bail!(
            "{} takes {} inputs ({}), {} given with --input{hint}",
            args.model.display(),
            model.inputs().len(),
            names.join(", "),
            args.input.len()
        );
    }
    let inputs = args
        .input
        .iter()
        .zip(model.inputs())
        .map(|(p, info)| effc::input::load(p, &info.shape))
        .collect::<effc::Result<Vec<_>>>()?;
    let session = effc::Session::new(model, args.threads)?;
    let t = Instant::now();
    let outputs = session.run(&inputs)?;
    let run_ms = t.elapsed().as_secs_f64() * 1e3;
    // The requested file first: a reader that closes stdout early (`| head`) ends the
    // process at the next print.
    if let Some(path) = &args.output {
        effc::input::save_npy(path, &outputs[0])?;
    }
    println!("compiled in {:.1} ms, ran in {run_ms:.2} ms on {} thread(s)", c.summary.compile_ms, args.threads);
    for (o, info) in outputs.iter().zip(model.outputs()) {
        println!("output {} {}{:?}", info.name, info.dtype, info.shape);
        let v = o.to_f32_vec();
        if args.top > 0 && v.len() >= 2 {
            let max = v.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
            let z: f64 = v.iter().map(|&x| ((x - max) as f64).exp()).sum();
            for (rank, i) in effc::compare::top_k(&v, args.top).into_iter().enumerate() {
                let p = ((v[i] - max) as f64).exp() / z;
                println!("  #{:<2} index {i:<5} score {:>9.4}  p {p:.4}", rank + 1, v[i]);
            }
        }
    }
    if let Some(path) = &args.output {
        println!("wrote {}", path.display());
    }
    Ok(())
}
