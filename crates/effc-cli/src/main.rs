//! The `effc` command line.

mod bench;
mod check;
mod compile;
mod demo;
mod labels;
mod run;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "effc", version, about = "An ONNX compiler for the EfficientNet family")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load, import, optimise and compile a model; print what was read and made.
    Compile(compile::CompileArgs),
    /// Compile a model and run it on inputs (.npy or images); print the top classes.
    Run(run::RunArgs),
    /// Run effc and tract on the same inputs and compare every output.
    Check(check::CheckArgs),
    /// Time effc (and tract with --vs tract) on seeded inputs.
    Bench(bench::BenchArgs),
    /// Write a built-in EfficientNet-B0, compile it, check it against tract and time both.
    Demo(demo::DemoArgs),
}

/// The most threads one run may use: far beyond any machine effc targets, and small
/// enough that a typo (`--threads 100000`) is refused at once instead of spawning them.
const MAX_THREADS: usize = 1024;

/// `--threads`: a whole number from 1 to [`MAX_THREADS`].
fn thread_count(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n @ 1..=MAX_THREADS) => Ok(n),
        _ => Err(format!("expected a whole number from 1 to {MAX_THREADS}")),
    }
}

fn main() -> ExitCode {
    // Output piped into `head` and the like: end quietly when the reader goes away, as
    // other command-line tools do, instead of panicking on the failed write (Rust
    // ignores SIGPIPE by default).
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of a signal, before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Compile(args) => compile::run(&args),
        Command::Run(args) => run::run(&args),
        Command::Check(args) => check::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Demo(args) => demo::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // effc's errors already end with their cause; anyhow's chain would repeat it.
            match e.downcast_ref::<effc::Error>() {
                Some(effc_error) => eprintln!("error: {effc_error}"),
                None => eprintln!("error: {e:#}"),
            }
            ExitCode::from(1)
        }
    }
}
