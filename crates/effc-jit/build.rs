//! Builds the runtime that artifacts with micro-kernels link (`effc compile --emit lib`):
//! effc-kernels and effc-rt compiled by rustc as one static library, merged into one
//! relocatable object (`ld -r`, unused sections dropped) in which every symbol but
//! `effc_rt_*` is made local (`objcopy`), so that no Rust standard library symbol is
//! exported. effc embeds the object and writes it as `libeffc_rt.a` beside an artifact.
//! Without `ld`, `nm` and `objcopy` (binutils) it embeds nothing and says why; effc then
//! refuses artifacts that need the runtime with that reason.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let crates = manifest.parent().expect("crates/").to_path_buf();
    for dir in ["effc-kernels/src", "effc-rt/src"] {
        println!("cargo:rerun-if-changed={}", crates.join(dir).display());
    }
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it")).join("rt");
    std::fs::create_dir_all(&out).expect("OUT_DIR is writable");
    let (object, symbols, libs, missing) = match build(&crates, &out) {
        Ok((symbols, libs)) => (out.join("effc_rt.o"), symbols, libs, String::new()),
        Err(why) => {
            println!("cargo:warning=effc-jit: no runtime archive for artifacts: {why}");
            std::fs::write(out.join("empty.o"), b"").expect("OUT_DIR is writable");
            (out.join("empty.o"), Vec::new(), String::new(), why)
        }
    };
    let rust = format!(
        "/// The runtime object (empty if it could not be built).\n\
         pub(crate) static OBJECT: &[u8] = include_bytes!({object:?});\n\
         /// Its global symbols.\n\
         pub(crate) const SYMBOLS: &[&str] = &{symbols:?};\n\
         /// What a program linking it needs besides (rustc's native-static-libs).\n\
         pub(crate) const LIBS: &str = {libs:?};\n\
         /// Why it is missing (empty if it is there).\n\
         pub(crate) const MISSING: &str = {missing:?};\n",
    );
    std::fs::write(out.join("runtime.rs"), rust).expect("OUT_DIR is writable");
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let o = cmd.output().map_err(|e| format!("{:?}: {e}", cmd.get_program()))?;
    if !o.status.success() {
        let err = String::from_utf8_lossy(&o.stderr);
        return Err(format!("{:?} failed: {}", cmd.get_program(), err.lines().take(3).collect::<Vec<_>>().join(" ")));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr))
}

/// The object's exported symbols and the native libraries it needs.
fn build(crates: &Path, out: &Path) -> Result<(Vec<String>, String), String> {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return Err("artifacts are built for Linux only".into());
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let common = ["--edition", "2024", "-C", "opt-level=3", "-C", "codegen-units=1", "-C", "panic=abort"];
    let common: Vec<&str> = common.into_iter().chain(["-C", "embed-bitcode=no", "-C", "debuginfo=0"]).collect();
    run(Command::new(&rustc)
        .args(&common)
        .args(["--crate-type", "rlib", "--crate-name", "effc_kernels", "--out-dir"])
        .arg(out)
        .arg(crates.join("effc-kernels/src/lib.rs")))?;
    let full = out.join("libeffc_rt_full.a");
    let said = run(Command::new(&rustc)
        .args(&common)
        .args(["--crate-type", "staticlib", "--crate-name", "effc_rt", "--print", "native-static-libs", "--extern"])
        .arg(format!("effc_kernels={}", out.join("libeffc_kernels.rlib").display()))
        .arg("-o")
        .arg(&full)
        .arg(crates.join("effc-rt/src/lib.rs")))?;
    let libs = said
        .lines()
        .find_map(|l| l.split("native-static-libs:").nth(1))
        .map(|l| l.split_whitespace().filter(|&f| f != "-lc").collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    // One object; the standard library's embedded bitcode sections are dropped too (the
    // system's binutils may not read them).
    let all = out.join("all.o");
    run(Command::new("ld").args(["-r", "--whole-archive"]).arg(&full).arg("-o").arg(&all))?;
    let clean = out.join("clean.o");
    run(Command::new("objcopy")
        .args(["--strip-debug", "--remove-section=.llvmbc", "--remove-section=.llvmcmd"])
        .arg(&all)
        .arg(&clean))?;
    let listed = run(Command::new("nm").args(["-g", "--defined-only", "--format=posix"]).arg(&clean))?;
    let symbols: Vec<String> = listed
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|s| s.starts_with("effc_rt_"))
        .map(str::to_string)
        .collect();
    if symbols.is_empty() {
        return Err("the runtime defines no effc_rt_ symbol".into());
    }
    // Only what the exported symbols reach.
    let kept = out.join("kept.o");
    let mut ld = Command::new("ld");
    ld.args(["-r", "--gc-sections"]);
    for s in &symbols {
        ld.args(["-u", s]);
    }
    run(ld.arg(&clean).arg("-o").arg(&kept))?;
    run(Command::new("objcopy")
        .args(["--wildcard", "--keep-global-symbol=effc_rt_*"])
        .arg(&kept)
        .arg(out.join("effc_rt.o")))?;
    Ok((symbols, libs))
}
