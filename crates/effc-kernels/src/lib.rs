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
mod vector;
mod window;

pub use act::{ActKind, Activation};
pub use depthwise::{DwFn, DwParams};
pub use gemm::{GemmFn, GemmParams};
pub use im2col::{Im2colParams, im2col_row};
pub use peak::peak_gflops;
pub use window::RowWindow;

/// An instruction set the kernels are built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// AVX-512F: 16 f32 lanes, masked tails, 32 vector registers.
    Avx512,
    /// AVX2 with FMA: 8 f32 lanes, 16 vector registers.
    Avx2,
    /// Plain Rust, auto-vectorised for the baseline target (SSE2 on x86-64).
    Portable,
}

impl Isa {
    /// Every variant, best first.
    pub const ALL: [Isa; 3] = [Isa::Avx512, Isa::Avx2, Isa::Portable];

    /// The best instruction set this CPU supports.
    pub fn detect() -> Isa {
        Isa::ALL.into_iter().find(|isa| isa.is_supported()).unwrap_or(Isa::Portable)
    }

    /// Whether this CPU can run the variant.
    pub fn is_supported(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"),
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx512 | Isa::Avx2 => false,
            Isa::Portable => true,
        }
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
        if !self.is_supported() {
            return None;
        }
        Some(match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => gemm::avx512::gemm,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => gemm::avx2::gemm,
            _ => gemm::portable::gemm,
        })
    }

    /// The depthwise-row kernel of this variant, or `None` if the CPU cannot run it.
    pub fn depthwise(self) -> Option<DwFn> {
        if !self.is_supported() {
            return None;
        }
        Some(match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => depthwise::avx512::dw_row,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => depthwise::avx2::dw_row,
            _ => depthwise::portable::dw_row,
        })
    }

    /// The squeeze-excite scaling kernels of this variant (weight rows, activation
    /// columns), or `None` if the CPU cannot run them.
    pub fn scale(self) -> Option<(scale::ScaleRowsFn, scale::ScaleColumnsFn)> {
        if !self.is_supported() {
            return None;
        }
        Some(match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => (scale::rows_avx512, scale::columns_avx512),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => (scale::rows_avx2, scale::columns_avx2),
            _ => (scale::rows_portable, scale::columns_portable),
        })
    }

    /// Rows of the register tile: callers split work in multiples of this.
    pub fn gemm_rows(self) -> usize {
        match self {
            Isa::Avx512 => gemm::avx512::MR,
            Isa::Avx2 => gemm::avx2::MR,
            Isa::Portable => gemm::portable::MR,
        }
    }
}
