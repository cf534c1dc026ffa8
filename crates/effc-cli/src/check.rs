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
    /// For outputs a DequantizeLinear produces (QDQ int8 models): the largest accepted
    /// difference in steps of its scale; engines round ties and requantize differently.
    #[arg(long, default_value_t = 2)]
    pub quanta: u64,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Shape for an input with symbolic dims, e.g. `input=1x3x224x224`.
    #[arg(long = "input-shape", value_name = "NAME=DIMS")]
    pub input_shapes: Vec<String>,
    /// Also compare every tensor that survives fusion, in execution order, and name the
    /// first one beyond tolerance.
    #[arg(long)]
    pub layers: bool,
    #[command(flatten)]
    pub codegen: crate::compile::CodegenArgs,
}

#[derive(Serialize)]
struct Report {
    pass: bool,
    cases: usize,
    tolerance: f64,
    quanta: u64,
    outputs: BTreeMap<String, Comparison>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    layers: Vec<LayerReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_bad_layer: Option<String>,
}

#[derive(Serialize)]
struct LayerReport {
    name: String,
    #[serde(flatten)]
    cmp: Comparison,
}

pub fn run(args: &CheckArgs) -> Result<()> {
    // The first case's .npy shapes bind the model's symbolic dims, as in `effc run`.
    let first_case = args.input.first().map(|spec| spec.split(',').collect::<Vec<_>>()).unwrap_or_default();
    let shapes_in_order =
        first_case.iter().map(|f| effc::input::file_shape(f.as_ref())).collect::<effc::Result<Vec<_>>>()?;
    let opts = effc::Options {
        input_shapes: parse_input_shapes(&args.input_shapes)?,
        shapes_in_order,
        expose_layers: args.layers,
        ..args.codegen.options()
    };
    let c = effc::compile_file(&args.model, &opts)?;
    let model = c.model()?;
    let n_outputs = model.outputs().len() - c.layers.len();
    let shapes: Vec<Vec<usize>> = model.inputs().iter().map(|i| i.shape.clone()).collect();
    let dtypes: Vec<effc::DType> = model.inputs().iter().map(|i| i.dtype).collect();
    if let Some(i) =
        model.inputs().iter().find(|i| !matches!(i.dtype, effc::DType::F32 | effc::DType::U8 | effc::DType::I8))
    {
        bail!(
            "effc check compares models with f32, uint8 or int8 inputs; {} has a {} input '{}'",
            args.model.display(),
            i.dtype,
            i.name
        );
    }
    // tract holds what effc streams or plans into one arena: bound it by every activation
    // byte the schedule moves plus the weights twice (its own copy and its packed one), and
    // refuse before loading it rather than let it exhaust time and memory.
    let limit = args.codegen.max_memory as u64;
    let tract_bytes = c.summary.activation_bytes_moved.saturating_add(c.summary.params.saturating_mul(8));
    if tract_bytes > limit {
        bail!(
            "{}: the reference (tract) may need up to {} MiB (every activation held, weights twice), over \
             --max-memory {} MiB; raise --max-memory to compare",
            args.model.display(),
            tract_bytes >> 20,
            limit >> 20
        );
    }
    let (reference, layers) = effc_tract::Reference::load_with_layers(&args.model, &shapes, &c.layers)?;
    // Where each compared tensor sits among effc's outputs.
    let mut effc_index: Vec<usize> = (0..n_outputs).collect();
    effc_index.extend(layers.iter().map(|n| n_outputs + c.layers.iter().position(|l| l == n).unwrap()));
    let mut cases: Vec<Vec<effc::Tensor>> = Vec::new();
    for spec in &args.input {
        let files: Vec<&str> = spec.split(',').collect();
        if files.len() != shapes.len() {
            bail!("--input {spec}: the model takes {} inputs", shapes.len());
        }
        let case = files
            .iter()
            .zip(shapes.iter().zip(&dtypes))
            .map(|(f, (s, &d))| effc::input::load(f.as_ref(), s, d))
            .collect::<effc::Result<Vec<_>>>()?;
        cases.push(case);
    }
    let random = args.random.unwrap_or(if args.input.is_empty() { 1 } else { 0 });
    for seed in 0..random {
        cases.push(
            shapes
                .iter()
                .zip(&dtypes)
                .enumerate()
                .map(|(i, (s, &d))| effc::input::seeded(s, d, seed as u64 * 1000 + i as u64))
                .collect::<effc::Result<_>>()?,
        );
    }
    let bar = (cases.len() > 1 && !args.json).then(|| indicatif::ProgressBar::new(cases.len() as u64));
    let mut worst: Vec<Option<Comparison>> = vec![None; effc_index.len()];
    for case in &cases {
        let ours = model.run(case)?;
        let data: Vec<Vec<f32>> = case.iter().map(|t| t.to_f32_vec()).collect();
        let refs: Vec<&[f32]> = data.iter().map(Vec::as_slice).collect();
        let theirs = reference.run(&refs).context("tract failed on the same input")?;
        for (k, (&i, t)) in effc_index.iter().zip(&theirs).enumerate() {
            let o = &ours[i];
            if o.shape() != t.shape.as_slice() {
                bail!("output {k}: effc shape {:?}, tract shape {:?}", o.shape(), t.shape);
            }
            let got = o.to_f32_vec();
            let quantum = c.output_quanta.get(i).copied().flatten();
            let cmp = Comparison::of_output(&got, &t.data, o.shape()).with_quanta(&got, &t.data, quantum);
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
    let mut worst = worst.into_iter().map(|w| w.expect("at least one case"));
    let outputs: BTreeMap<String, Comparison> =
        model.outputs()[..n_outputs].iter().map(|info| (info.name.clone(), worst.next().unwrap())).collect();
    let layers: Vec<LayerReport> = layers.into_iter().zip(worst).map(|(name, cmp)| LayerReport { name, cmp }).collect();
    let first_bad_layer = layers.iter().find(|l| l.cmp.max_rel > args.tolerance).map(|l| l.name.clone());
    let passes = |c: &Comparison| match c.quanta {
        Some(_) => c.passes_quanta(args.quanta),
        None => c.passes(args.tolerance),
    };
    let pass = outputs.values().all(passes) && first_bad_layer.is_none();
    let report = Report {
        pass,
        cases: cases.len(),
        tolerance: args.tolerance,
        quanta: args.quanta,
        outputs,
        layers,
        first_bad_layer,
    };
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
                if passes(c) { "ok" } else { "FAIL" }
            );
            if let Some(q) = &c.quanta {
                let [d0, d1, d2, more] = q.off_by;
                println!(
                    "    in quanta of {:.4e} (tolerance {}): {d0} values off by 0, {d1} by 1, {d2} by 2, {more} by more; \
                     largest {}",
                    q.quantum, args.quanta, q.max
                );
            }
        }
        for l in &report.layers {
            let c = &l.cmp;
            let mark = if c.max_rel <= args.tolerance { "ok" } else { "FAIL" };
            println!(
                "  layer {}: max_abs {:.3e}  max_rel {:.3e}  cosine {:.9}  {mark}",
                l.name, c.max_abs, c.max_rel, c.cosine
            );
        }
        if args.layers {
            match &report.first_bad_layer {
                Some(name) => println!("first layer beyond tolerance: {name}"),
                None => println!("all {} layers within tolerance", report.layers.len()),
            }
        }
        println!("{}", if pass { "PASS" } else { "FAIL" });
    }
    if !pass {
        std::process::exit(1);
    }
    Ok(())
}
