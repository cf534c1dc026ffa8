//! `effc check`: run effc and tract on the same inputs and compare every output.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use effc::compare::Comparison;
use serde::Serialize;

use crate::compile::parse_input_shapes;

#[derive(Args)]
pub struct CheckArgs {
    /// The ONNX model.
    pub model: PathBuf,
    /// An input case: a file per model input, comma-separated. Repeat for more cases.
    #[arg(long)]
    pub input: Vec<String>,
    /// Also check this many seeded random inputs (default 1 when no --input is given).
    #[arg(long)]
    pub random: Option<usize>,
    /// Largest accepted max |effc − tract| / max |tract|.
    #[arg(long, default_value_t = 1e-4)]
    pub tolerance: f64,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Shape for an input with symbolic dims, e.g. `input=1x3x224x224`.
    #[arg(long = "input-shape", value_name = "NAME=DIMS")]
    pub input_shapes: Vec<String>,
}

#[derive(Serialize)]
struct Report {
    pass: bool,
    cases: usize,
    tolerance: f64,
    outputs: BTreeMap<String, Comparison>,
}

pub fn run(args: &CheckArgs) -> Result<()> {
    let opts = effc::Options { input_shapes: parse_input_shapes(&args.input_shapes)?, ..Default::default() };
    let c = effc::compile_file(&args.model, &opts)?;
    let model = c.model()?;
    let shapes: Vec<Vec<usize>> = model.inputs().iter().map(|i| i.shape.clone()).collect();
    if model.inputs().iter().any(|i| i.dtype != effc::DType::F32) {
        bail!("effc check compares f32 models; {} has non-f32 inputs", args.model.display());
    }
    let reference = effc_tract::Reference::load(&args.model, &shapes, &[])?;
    let mut cases: Vec<Vec<effc::Tensor>> = Vec::new();
    for spec in &args.input {
        let files: Vec<&str> = spec.split(',').collect();
        if files.len() != shapes.len() {
            bail!("--input {spec}: the model takes {} inputs", shapes.len());
        }
        let case = files
            .iter()
            .zip(&shapes)
            .map(|(f, s)| effc::input::load(f.as_ref(), s))
            .collect::<effc::Result<Vec<_>>>()?;
        cases.push(case);
    }
    let random = args.random.unwrap_or(if args.input.is_empty() { 1 } else { 0 });
    for seed in 0..random {
        cases.push(
            shapes
                .iter()
                .enumerate()
                .map(|(i, s)| effc::input::seeded_noise(s, seed as u64 * 1000 + i as u64))
                .collect(),
        );
    }
    let bar = (cases.len() > 1 && !args.json).then(|| indicatif::ProgressBar::new(cases.len() as u64));
    let mut worst: Vec<Option<Comparison>> = vec![None; model.outputs().len()];
    for case in &cases {
        let ours = model.run(case)?;
        let data: Vec<Vec<f32>> = case.iter().map(|t| t.to_f32_vec()).collect();
        let refs: Vec<&[f32]> = data.iter().map(Vec::as_slice).collect();
        let theirs = reference.run(&refs).context("tract failed on the same input")?;
        for (k, (o, t)) in ours.iter().zip(&theirs).enumerate() {
            if o.shape() != t.shape.as_slice() {
                bail!("output {k}: effc shape {:?}, tract shape {:?}", o.shape(), t.shape);
            }
            let cmp = Comparison::new(&o.to_f32_vec(), &t.data);
            worst[k] = Some(match worst[k].take() {
                Some(w) => w.worst(cmp),
                None => cmp,
            });
        }
        if let Some(b) = &bar {
            b.inc(1);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let outputs: BTreeMap<String, Comparison> =
        model.outputs().iter().zip(worst).map(|(info, w)| (info.name.clone(), w.expect("at least one case"))).collect();
    let pass = outputs.values().all(|c| c.passes(args.tolerance));
    let report = Report { pass, cases: cases.len(), tolerance: args.tolerance, outputs };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{} vs tract on {} input(s), tolerance {:.0e}", args.model.display(), report.cases, args.tolerance);
        for (name, c) in &report.outputs {
            println!(
                "  {name}: max_abs {:.3e}  max_rel {:.3e}  cosine {:.9}  top-1 {}  top-5 {}  {}",
                c.max_abs,
                c.max_rel,
                c.cosine,
                if c.top1_agree { "same" } else { "DIFFERS" },
                if c.top5_agree { "same" } else { "DIFFERS" },
                if c.passes(args.tolerance) { "ok" } else { "FAIL" }
            );
        }
        println!("{}", if pass { "PASS" } else { "FAIL" });
    }
    if !pass {
        std::process::exit(1);
    }
    Ok(())
}
