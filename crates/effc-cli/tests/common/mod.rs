//! What the `effc` binary's tests share: running it, the shared models, one-line failures.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn effc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_effc")).args(args).output().expect("effc runs")
}

pub fn shared(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/models").join(name)
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A failure is exit code 1 with exactly one line on stderr (so: no panic, no backtrace).
pub fn assert_clean_failure(o: &Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line expected: {err}");
    assert!(err.contains(needle), "{err:?} should contain {needle:?}");
}

/// Reads a little-endian f32 .npy (version 1 header) without extra dependencies.
pub fn read_f32_npy(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = String::from_utf8_lossy(&bytes[10..10 + header_len]);
    assert!(header.contains("'<f4'"), "{header}");
    bytes[10 + header_len..].chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

/// The writer's B0 at 32×32 with 8 classes and a symbolic batch `N`, at `path`.
pub fn write_b0_with_symbolic_batch(path: &Path) {
    use effc_models::family::{Exporter, Family, efficientnet_styled};
    use effc_models::writer::{Dim, save};
    let f = Family::efficientnet(0).unwrap();
    save(&efficientnet_styled(&f, Dim::Symbolic("N".into()), 32, 8, 5, Exporter::ExplicitBn), path).unwrap();
}

/// The writer's Lite0 (lukemelas spelling, BN folded, 48×48, 10 classes) in onnxruntime's
/// QDQ spelling, every tensor quantized over −6…6 (no calibration needed to compare two
/// engines), at `path`.
pub fn write_lite0_qdq(path: &Path) {
    use effc_models::family::{Exporter, Family, efficientnet_styled};
    use effc_models::quantize;
    let float = quantize::fold_batch_norms(&efficientnet_styled(
        &Family::lite(0).unwrap(),
        1.into(),
        48,
        10,
        3,
        Exporter::Lukemelas,
    ));
    let ranges: quantize::Ranges =
        quantize::calibration_outputs(&float).into_iter().map(|n| (n, (-6.0, 6.0))).collect();
    effc_models::writer::save(&quantize::qdq(&float, &ranges), path).unwrap();
}
