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
/// compiled with the row's target features.
#[derive(Clone, Copy, Debug)]
pub struct Kernels {
    pub isa: Isa,
    /// The CPU features the row needs, as `is_x86_feature_detected!` names them.
    pub features: &'static [&'static str],
    /// f32 lanes per vector.
    pub lanes: usize,
    /// Rows of the GEMM register tile: callers split work in multiples of this.
    pub gemm_rows: usize,
    pub gemm: GemmFn,
    pub depthwise: DwFn,
    pub scale_rows: scale::ScaleRowsFn,
    pub scale_columns: scale::ScaleColumnsFn,
}

#[cfg(target_arch = "x86_64")]
const AVX512: Kernels = Kernels {
    isa: Isa::Avx512,
    features: &["avx512f"],
    lanes: <simd::avx512::Avx512 as simd::Simd>::LANES,
    gemm_rows: gemm::MR_AVX512,
    gemm: gemm::gemm_avx512,
    depthwise: depthwise::dw_row_avx512,
    scale_rows: scale::rows_avx512,
    scale_columns: scale::columns_avx512,
};

#[cfg(target_arch = "x86_64")]
const AVX2: Kernels = Kernels {
    isa: Isa::Avx2,
    features: &["avx2", "fma"],
    lanes: <simd::avx2::Avx2 as simd::Simd>::LANES,
    gemm_rows: gemm::MR_AVX2,
    gemm: gemm::gemm_avx2,
    depthwise: depthwise::dw_row_avx2,
    scale_rows: scale::rows_avx2,
    scale_columns: scale::columns_avx2,
};

const PORTABLE: Kernels = Kernels {
    isa: Isa::Portable,
    features: &[],
    lanes: <simd::portable::Portable as simd::Simd>::LANES,
    gemm_rows: gemm::MR_PORTABLE,
    gemm: gemm::gemm_portable,
    depthwise: depthwise::dw_row_portable,
    scale_rows: scale::rows_portable,
    scale_columns: scale::columns_portable,
};

impl Isa {
    /// Every variant, best first.
    pub const ALL: [Isa; 3] = [Isa::Avx512, Isa::Avx2, Isa::Portable];

    /// The best instruction set this CPU supports.
    pub fn detect() -> Isa {
        Isa::ALL.into_iter().find(|isa| isa.is_supported()).unwrap_or(Isa::Portable)
    }

    /// The variant's row of the kernel table, whether or not this CPU can run it.
    fn row(self) -> Option<&'static Kernels> {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => Some(&AVX512),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => Some(&AVX2),
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx512 | Isa::Avx2 => None,
            Isa::Portable => Some(&PORTABLE),
        }
    }

    /// The first CPU feature the variant needs that this CPU lacks (or the architecture,
    /// off x86-64), or `None` if it runs here: what a test that skips the variant says.
    pub fn missing_feature(self) -> Option<&'static str> {
        let Some(row) = self.row() else { return Some("x86_64") };
        row.features.iter().copied().find(|&f| !feature_detected(f))
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

/// Whether the CPU has the named feature (the names the kernel table uses).
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

fn feature_detected(name: &str) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        match name {
            "avx512f" => std::arch::is_x86_feature_detected!("avx512f"),
            "avx2" => std::arch::is_x86_feature_detected!("avx2"),
            "fma" => std::arch::is_x86_feature_detected!("fma"),
            _ => false,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = name;
        false
    }
}
