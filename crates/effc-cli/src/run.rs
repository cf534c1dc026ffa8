//! `effc run`: compile a model and run it on inputs from files.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use clap::Args;

use crate::compile::parse_input_shapes;
use crate::labels::{Labels, printable};

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
    /// Class names, one per line, printed beside the top classes of an output with that many
    /// classes; `none` prints indices only. Default: ImageNet's names for 1000 or 1001 classes.
    #[arg(long, value_name = "FILE|none")]
    pub labels: Option<PathBuf>,
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
    let labels = Labels::from_arg(args.labels.as_deref())?;
    let model = effc::Model::load(&args.model, &opts)?;
    if args.input.len() != model.inputs().len() {
        let names: Vec<&str> = model.inputs().iter().map(|i| i.name.as_str()).collect();
        let hint = match model.defaulted_inputs() {
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
    // An .npy file's own shape; an image takes the shape bound at load (batch 1).
    let at_load = model.cached_shapes().into_iter().next().unwrap_or_default();
    let shapes: Vec<&[usize]> =
        (opts.shapes_in_order.iter().zip(&at_load)).map(|(file, bound)| file.as_deref().unwrap_or(bound)).collect();
    let spec = model.specialise(&shapes)?;
    let inputs = args
        .input
        .iter()
        .zip(spec.compiled.inputs())
        .map(|(p, info)| effc::input::load(p, &info.shape, info.dtype))
        .collect::<effc::Result<Vec<_>>>()?;
    let session = effc::Session::new(&model, args.threads)?;
    let t = Instant::now();
    let outputs = session.run(&inputs)?;
    let run_ms = t.elapsed().as_secs_f64() * 1e3;
    // The requested file first: a reader that closes stdout early (`| head`) ends the
    // process at the next print.
    if let Some(path) = &args.output {
        effc::input::save_npy(path, &outputs[0])?;
    }
    println!("compiled in {:.1} ms, ran in {run_ms:.2} ms on {} thread(s)", spec.summary.compile_ms, args.threads);
    if args.top > 0 {
        let class_counts: Vec<usize> = outputs.iter().map(|o| Scores::of(o.shape()).classes).collect();
        labels.check_fits(&class_counts)?;
    }
    for (o, info) in outputs.iter().zip(spec.compiled.outputs()) {
        println!("output {} {}{:?}", info.name, info.dtype, info.shape);
        let scores = Scores::of(o.shape());
        if args.top == 0 || scores.classes < 2 {
            continue;
        }
        let v = o.to_f32_vec();
        for (image, row) in v.chunks_exact(scores.classes).enumerate() {
            if scores.images > 1 {
                println!("  image {image}");
            }
            print_top(row, args.top, &labels);
        }
    }
    if let Some(path) = &args.output {
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// How an output splits into per-image score rows: the first dim is the batch.
struct Scores {
    images: usize,
    classes: usize,
}

impl Scores {
    fn of(shape: &[usize]) -> Self {
        let numel: usize = shape.iter().product();
        let images = effc::compare::images(shape);
        Scores { images, classes: numel.checked_div(images).unwrap_or(0) }
    }
}

/// The `top` best classes of one image's scores, with softmax probabilities and names.
fn print_top(row: &[f32], top: usize, labels: &Labels) {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    let z: f64 = row.iter().map(|&x| ((x - max) as f64).exp()).sum();
    for (rank, i) in effc::compare::top_k(row, top).into_iter().enumerate() {
        let p = ((row[i] - max) as f64).exp() / z;
        let name = labels.name(i, row.len()).map(|n| format!("  {}", printable(n))).unwrap_or_default();
        println!("  #{:<2} index {i:<5} score {:>9.4}  p {p:.4}{name}", rank + 1, row[i]);
    }
}
