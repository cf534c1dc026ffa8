//! Compiling and dropping models keeps memory flat. In its own test binary so that no
//! other test's allocations move the resident set while it is measured.

mod common;

use effc_models::family::{Family, efficientnet};

fn small_model() -> Vec<u8> {
    effc_models::writer::encode(&efficientnet(&Family::lite(0).unwrap(), 1.into(), 32, 10, 3))
}

fn rss_kib() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Compiling and dropping 200 models (each run once) keeps the resident set flat: JIT code,
/// weights and arenas are all freed with the model.
#[test]
fn compile_and_drop_two_hundred_models_keeps_rss_flat() {
    let bytes = small_model();
    let x = effc::input::seeded_noise(&[1, 3, 32, 32], 1);
    let once = |bytes: &[u8]| {
        let c = effc::compile_bytes(bytes.to_vec(), None, &effc::Options::default()).unwrap();
        c.model().unwrap().run(std::slice::from_ref(&x)).unwrap();
    };
    for _ in 0..20 {
        once(&bytes);
    }
    let before = rss_kib();
    // The resident set jitters by a few MB as 2 MiB (huge-page) mappings of weights and
    // arenas come and go; a leak raises its floor. So the floor over the last 100
    // compilations is what must stay within 10 % of the start.
    let mut floor = usize::MAX;
    for i in 0..200 {
        once(&bytes);
        if i >= 100 {
            floor = floor.min(rss_kib());
        }
    }
    assert!((floor as f64) < before as f64 * 1.10, "RSS floor grew from {before} kB to {floor} kB");
}
