//! Which code runs the compute-heavy tiles: the micro-kernels of `effc-kernels` built for
//! one instruction set, or Cranelift's own f32x4 loops (the pure-JIT path).

use effc_ir::{Error, Result};
pub use effc_kernels::Isa;

/// The kernel choice of a compilation (`--kernels`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Kernels {
    /// The best instruction set this CPU supports.
    #[default]
    Auto,
    /// Cranelift code only, no calls out of the JIT.
    Jit,
    /// The micro-kernels of one instruction set.
    Isa(Isa),
}

impl Kernels {
    /// Every explicit choice, for tests and benchmarks that cover them all.
    pub const EXPLICIT: [Kernels; 4] =
        [Kernels::Isa(Isa::Avx512), Kernels::Isa(Isa::Avx2), Kernels::Isa(Isa::Portable), Kernels::Jit];

    pub fn name(self) -> &'static str {
        match self {
            Kernels::Auto => "auto",
            Kernels::Jit => "jit",
            Kernels::Isa(isa) => isa.name(),
        }
    }

    /// Whether this CPU can run the choice.
    pub fn is_supported(self) -> bool {
        match self {
            Kernels::Isa(isa) => isa.is_supported(),
            _ => true,
        }
    }

    /// The instruction set whose kernels the model calls, or `None` for pure JIT code.
    pub fn resolve(self) -> Result<Option<Isa>> {
        match self {
            Kernels::Auto => Ok(Some(Isa::detect())),
            Kernels::Jit => Ok(None),
            Kernels::Isa(isa) if isa.is_supported() => Ok(Some(isa)),
            Kernels::Isa(isa) => {
                Err(Error::unsupported(format!("--kernels {}: this CPU does not support it", isa.name())))
            }
        }
    }
}

impl std::str::FromStr for Kernels {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(Kernels::Auto),
            "jit" => Ok(Kernels::Jit),
            _ => Isa::ALL
                .into_iter()
                .find(|i| i.name() == s)
                .map(Kernels::Isa)
                .ok_or_else(|| format!("unknown kernels '{s}' (expected auto, jit, avx512, avx2 or portable)")),
        }
    }
}

impl std::fmt::Display for Kernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The fusion passes' question, answered for this kernel choice: JIT code computes every
/// float activation in any epilogue; with micro-kernels, a conv or MBConv epilogue keeps
/// its op on the micro-kernel only with an activation the kernel table has (any other
/// would move the op to JIT code, slower than the op plus a separate activation). The
/// squeeze-excite FCs are a few hundred multiply-adds, so there any emitted activation
/// is worth fusing.
impl effc_ir::fusion::Fusion for Kernels {
    fn can_fuse(&self, site: effc_ir::fusion::Site, act: effc_ir::op::Unary) -> bool {
        use effc_ir::fusion::Site;
        if !crate::emit::activation::support(act).jit {
            return false;
        }
        match (site, self.resolve()) {
            (_, Err(_)) => false,
            (Site::SqueezeExcite, Ok(_)) | (_, Ok(None)) => true,
            (Site::Conv | Site::MbConv, Ok(Some(_))) => crate::emit::activation::support(act).kernel.is_some(),
        }
    }
}
