//! `effc demo`: the whole pipeline on a built-in EfficientNet-B0, with no files needed.

use std::time::Instant;

use anyhow::Result;
use clap::Args;
use effc::compare::Comparison;
use effc_models::family::{Family, efficientnet};

use crate::bench::time;

#[derive(Args)]
pub struct DemoArgs {
    /// Timed runs per runtime.
    #[arg(long, default_value_t = 20)]
    pub runs: usize,
    /// Threads for effc's runs.
    #[arg(long, default_value_t = 1, value_parser = crate::thread_count)]
    pub threads: usize,
}

pub fn run(args: &DemoArgs) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("efficientnet_b0.onnx");
    let family = Family::efficientnet(0).expect("B0 exists");
    let t = Instant::now();
    effc_models::writer::save(&efficientnet(&family, 1.into(), 224, 1000, 2026), &path)?;
    println!("1. wrote a torchvision-style EfficientNet-B0 (seeded weights) to {} in {:.0} ms", path.display(), ms(t));

    let c = effc::compile_file(&path, &effc::Options { keep_graph: false, ..Default::default() })?;
    let s = &c.summary;
    let model = c.model()?;
    println!("2. compiled in {:.1} ms through the ONNX frontend, passes and Cranelift", s.compile_ms);

    let shape = model.inputs()[0].shape.clone();
    let t = Instant::now();
    let reference = effc_tract::Reference::load(&path, std::slice::from_ref(&shape), &[])?;
    let tract_load_ms = ms(t);
    let inputs: Vec<effc::Tensor> = (0..3).map(|seed| effc::input::seeded_noise(&shape, seed)).collect();
    let mut worst: Option<Comparison> = None;
    for x in &inputs {
        let ours = model.run(std::slice::from_ref(x))?;
        let theirs = reference.run(&[&x.to_f32_vec()])?;
        let cmp = Comparison::new(&ours[0].to_f32_vec(), &theirs[0].data);
        worst = Some(match worst {
            Some(w) => w.worst(cmp),
            None => cmp,
        });
    }
    let acc = worst.expect("three inputs");
    println!("3. checked against tract on {} seeded inputs", inputs.len());

    let session = effc::Session::new(model, args.threads)?;
    let x = &inputs[0];
    let data = x.to_f32_vec();
    let ours = time(args.runs, 3, || {
        session.run(std::slice::from_ref(x))?;
        Ok(())
    })?;
    let theirs = time(args.runs, 3, || {
        reference.run(&[&data])?;
        Ok(())
    })?;
    println!("4. timed {} runs each\n", args.runs);

    let hist = |h: &std::collections::BTreeMap<String, usize>| {
        let mut v: Vec<_> = h.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1));
        v.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ")
    };
    println!("| | |");
    println!("|---|---|");
    println!("| ops in the file | {} |", hist(&s.ops_before));
    println!("| ops after fusion | {} |", hist(&s.ops_after));
    println!("| work | {:.1} M MACs, {:.2} M parameters |", s.macs as f64 / 1e6, s.params as f64 / 1e6);
    println!("| arena | {:.2} MB ({} kernels) |", s.arena_bytes as f64 / 1e6, s.kernels);
    println!(
        "| accuracy vs tract | max_rel {:.2e}, cosine {:.9}, top-5 {} → {} |",
        acc.max_rel,
        acc.cosine,
        if acc.top5_agree { "same" } else { "differs" },
        if acc.passes(1e-4) { "PASS" } else { "FAIL" }
    );
    println!("| compile | effc {:.0} ms, tract load+optimise {:.0} ms |", s.compile_ms, tract_load_ms);
    println!(
        "| latency (median) | effc {:.2} ms ({} thread{}), tract {:.2} ms (1 thread): effc/tract = {:.2} |",
        ours.median_ms,
        args.threads,
        if args.threads == 1 { "" } else { "s" },
        theirs.median_ms,
        ours.median_ms / theirs.median_ms
    );
    if !acc.passes(1e-4) {
        anyhow::bail!("effc and tract disagree beyond 1e-4");
    }
    Ok(())
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}
