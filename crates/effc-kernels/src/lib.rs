//! Micro-kernels for the compute-heavy inner tiles of a compiled model.
//!
//! Cranelift emits 128-bit vectors only, a quarter of what this class of CPU can do per
//! instruction. The JIT-emitted loops therefore call these kernels, built by LLVM for a
//! specific instruction set, once per tile (never per element: a call spills the caller's
//! live vector registers). The instruction set is picked once, when a model is compiled,
//! from what the CPU supports ([`Isa::detect`]); every variant computes the same function
//! as the portable one, which the tests check.
//!
//! Every kernel has the C ABI and takes raw pointers, because its caller is machine code.
//! The contracts on those pointers are stated on each function type.

mod act;
pub mod depthwise;
pub mod gemm;
pub mod im2col;
mod peak;
pub mod prefetch;
pub mod scale;
pub mod simd;
pub mod team;
mod window;

pub use act::{ActKind, Activation};
pub use depthwise::{DwFn, DwParams};
pub use gemm::{GemmFn, GemmParams};
pub use im2col::{Im2colParams, im2col_row};
pub use peak::peak_gflops;
pub use team::{KernelFn, Team};
pub use window::RowWindow;

/// An instruction set the kernels are built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// AVX-512F: 16 f32 lanes, masked tails, 32 vector registers.
    Avx512,
    /// AVX2 with FMA: 8 f32 lanes, 16 vector registers.
    Avx2,
    /// Plain Rust on 4-lane arrays, vectorised for the baseline target (SSE2 on x86-64).
    Portable,
}

/// One instruction set's row of the kernel table: what dispatch, the kernel tests and
/// the benches all read. Every function is the same generic body (over [`simd::Simd`])
/// compiled with the row's target features. A row exists only where its architecture is
/// compiled (its `cfg` in [`ROWS`]) and runs only where [`Kernels::missing`] finds nothing.
#[derive(Clone, Copy, Debug)]
pub struct Kernels {
    pub isa: Isa,
    /// The first CPU feature the row needs that this CPU lacks (by its architecture's
    /// runtime detection, which names them), or `None` if the row runs here.
    pub missing: fn() -> Option<&'static str>,
    /// f32 lanes per vector.
    pub lanes: usize,
    /// Rows of the GEMM register tile: callers split work in multiples of this.
    pub gemm_rows: usize,
    pub gemm: GemmFn,
    pub depthwise: DwFn,
    pub scale_rows: scale::ScaleRowsFn,
    pub scale_columns: scale::ScaleColumnsFn,
    /// The FMA loop whose speed is the row's peak ([`peak_gflops`]).
    pub peak: peak::PeakFn,
}

/// A row's CPU check: the first of its features this CPU lacks, by the runtime detection
/// of the row's architecture (an aarch64 row adds an arm with `is_aarch64_feature_detected!`).
macro_rules! first_missing {
    ("x86_64", [$($feature:tt),+]) => {{
        fn missing() -> Option<&'static str> {
            [$(($feature, std::arch::is_x86_feature_detected!($feature))),+]
                .into_iter()
                .find(|&(_, present)| !present)
                .map(|(feature, _)| feature)
        }
        missing
    }};
}

#[cfg(target_arch = "x86_64")]
const AVX512: Kernels = Kernels {
    isa: Isa::Avx512,
    missing: first_missing!("x86_64", ["avx512f"]),
    lanes: <simd::avx512::Avx512 as simd::Simd>::LANES,
    gemm_rows: gemm::MR_AVX512,
    gemm: gemm::gemm_avx512,
    depthwise: depthwise::dw_row_avx512,
    scale_rows: scale::rows_avx512,
    scale_columns: scale::columns_avx512,
    peak: peak::peak_avx512,
};

#[cfg(target_arch = "x86_64")]
const AVX2: Kernels = Kernels {
    isa: Isa::Avx2,
    missing: first_missing!("x86_64", ["avx2", "fma"]),
    lanes: <simd::avx2::Avx2 as simd::Simd>::LANES,
    gemm_rows: gemm::MR_AVX2,
    gemm: gemm::gemm_avx2,
    depthwise: depthwise::dw_row_avx2,
    scale_rows: scale::rows_avx2,
    scale_columns: scale::columns_avx2,
    peak: peak::peak_avx2,
};

const PORTABLE: Kernels = Kernels {
    isa: Isa::Portable,
    missing: || None,
    lanes: <simd::portable::Portable as simd::Simd>::LANES,
    gemm_rows: gemm::MR_PORTABLE,
    gemm: gemm::gemm_portable,
    depthwise: depthwise::dw_row_portable,
    scale_rows: scale::rows_portable,
    scale_columns: scale::columns_portable,
    peak: peak::peak_portable,
};

/// The kernel table, best first: each row compiled only for its own architecture.
const ROWS: &[Kernels] = &[
    #[cfg(target_arch = "x86_64")]
    AVX512,
    #[cfg(target_arch = "x86_64")]
    AVX2,
    PORTABLE,
];

impl Isa {
    /// Every variant, best first.
    pub const ALL: [Isa; 3] = [Isa::Avx512, Isa::Avx2, Isa::Portable];

    /// The best instruction set this CPU supports.
    pub fn detect() -> Isa {
        ROWS.iter().find(|row| (row.missing)().is_none()).map_or(Isa::Portable, |row| row.isa)
    }

    /// The variant's row of the kernel table, whether or not this CPU can run it; `None`
    /// when this build's architecture has no such row.
    fn row(self) -> Option<&'static Kernels> {
        ROWS.iter().find(|row| row.isa == self)
    }

    /// The architecture a variant is written for (`None`: every one).
    fn arch(self) -> Option<&'static str> {
        match self {
            Isa::Avx512 | Isa::Avx2 => Some("x86_64"),
            Isa::Portable => None,
        }
    }

    /// The first CPU feature the variant needs that this CPU lacks (or its architecture,
    /// when this build is for another), or `None` if it runs here: what a test that skips
    /// the variant says.
    pub fn missing_feature(self) -> Option<&'static str> {
        match self.row() {
            Some(row) => (row.missing)(),
            None => Some(self.arch().unwrap_or("its architecture")),
        }
    }

    /// Whether this CPU can run the variant.
    pub fn is_supported(self) -> bool {
        self.missing_feature().is_none()
    }

    /// The variant's kernels, or `None` if the CPU cannot run them.
    pub fn kernels(self) -> Option<&'static Kernels> {
        self.row().filter(|_| self.is_supported())
    }

    /// The lower-case name used on the command line (`--kernels avx512`).
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512",
            Isa::Avx2 => "avx2",
            Isa::Portable => "portable",
        }
    }

    /// The matrix-product kernel of this variant, or `None` if the CPU cannot run it.
    pub fn gemm(self) -> Option<GemmFn> {
        self.kernels().map(|k| k.gemm)
    }

    /// The depthwise-row kernel of this variant, or `None` if the CPU cannot run it.
    pub fn depthwise(self) -> Option<DwFn> {
        self.kernels().map(|k| k.depthwise)
    }

    /// The squeeze-excite scaling kernels of this variant (weight rows, activation
    /// columns), or `None` if the CPU cannot run them.
    pub fn scale(self) -> Option<(scale::ScaleRowsFn, scale::ScaleColumnsFn)> {
        self.kernels().map(|k| (k.scale_rows, k.scale_columns))
    }

    /// Rows of the register tile: callers split work in multiples of this.
    pub fn gemm_rows(self) -> usize {
        self.row().map_or(gemm::MR_PORTABLE, |k| k.gemm_rows)
    }
}

/// Every function JIT code calls, with the symbol it is exported under (`export_name`
/// on each; the runtime archive of artifacts, `effc-rt`, carries them): the kernel
/// table's rows and im2col. An artifact's object calls them by these names.
pub fn entry_points() -> Vec<(String, usize)> {
    let mut points = vec![("effc_rt_im2col_row".to_string(), im2col_row as *const () as usize)];
    for isa in Isa::ALL {
        let Some(k) = isa.row() else { continue };
        let n = isa.name();
        points.extend([
            (format!("effc_rt_gemm_{n}"), k.gemm as *const () as usize),
            (format!("effc_rt_dw_row_{n}"), k.depthwise as *const () as usize),
            (format!("effc_rt_scale_rows_{n}"), k.scale_rows as *const () as usize),
            (format!("effc_rt_scale_columns_{n}"), k.scale_columns as *const () as usize),
        ]);
    }
    points
}
