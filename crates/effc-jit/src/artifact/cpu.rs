//! The instruction-set level an artifact's code targets, and the check its `NAME_new`
//! runs before any of that code: a CPU without a feature the code may use gets a clean
//! error, never an illegal instruction. Cranelift has no CPUID instruction, so two tiny
//! helpers (CPUID, XGETBV) are defined from hand-assembled bytes; the test runs the same
//! check in JIT memory against the standard library's feature detection.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{
    AbiParam, BlockArg, InstBuilder, MemFlagsData, StackSlotData, StackSlotKind, Value, types,
};
use cranelift_codegen::isa::TargetIsa;
use cranelift_frontend::FunctionBuilder;
use cranelift_module::{FuncId, Linkage, Module};
use effc_ir::{Error, Result};

use crate::module::Jit;

/// The instruction-set level of an artifact (`effc compile --emit lib --target-cpu`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TargetCpu {
    /// Every feature this CPU has.
    #[default]
    Native,
    /// x86-64-v3: AVX2, FMA, BMI1/2 (Haswell, Zen 1 and later).
    X86_64V3,
    /// x86-64-v4: v3 plus AVX-512 F, BW, CD, DQ, VL (Skylake-X, Zen 4 and later).
    X86_64V4,
}

impl TargetCpu {
    pub const ALL: [TargetCpu; 3] = [TargetCpu::Native, TargetCpu::X86_64V3, TargetCpu::X86_64V4];

    pub fn name(self) -> &'static str {
        match self {
            TargetCpu::Native => "native",
            TargetCpu::X86_64V3 => "x86-64-v3",
            TargetCpu::X86_64V4 => "x86-64-v4",
        }
    }

    /// Cranelift's flags for the level, or `None` for this host's (all it detects).
    pub(crate) fn cranelift_features(self) -> Option<Vec<&'static str>> {
        let level = match self {
            TargetCpu::Native => return None,
            TargetCpu::X86_64V3 => Level::V3,
            TargetCpu::X86_64V4 => Level::V4,
        };
        Some(FEATURES.iter().filter(|f| f.level <= level && !f.flag.is_empty()).map(|f| f.flag).collect())
    }

    /// The features `NAME_new` checks: the level's definition (the x86-64 psABI's), or
    /// for `native` every feature the ISA's flags turn on.
    pub(crate) fn required(self, isa: &dyn TargetIsa) -> Vec<&'static Feature> {
        match self {
            TargetCpu::Native => {
                let on: Vec<String> =
                    isa.isa_flags().iter().filter(|v| v.as_bool() == Some(true)).map(|v| v.name.to_string()).collect();
                FEATURES.iter().filter(|f| !f.flag.is_empty() && on.iter().any(|n| n == f.flag)).collect()
            }
            TargetCpu::X86_64V3 => FEATURES.iter().filter(|f| f.level <= Level::V3).collect(),
            TargetCpu::X86_64V4 => FEATURES.iter().filter(|f| f.level <= Level::V4).collect(),
        }
    }
}

impl std::str::FromStr for TargetCpu {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        TargetCpu::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| format!("unknown target CPU '{s}' (expected native, x86-64-v3 or x86-64-v4)"))
    }
}

impl std::fmt::Display for TargetCpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    V3,
    V4,
    /// Not part of a level: used only when this host has it (`native`).
    Extra,
}

/// A CPU feature: where CPUID reports it, and the XCR0 bits (register state the OS must
/// save) it needs.
#[derive(Debug)]
pub(crate) struct Feature {
    /// The name printed when it is missing.
    pub name: &'static str,
    /// Cranelift's flag for it ("" if Cranelift has none).
    flag: &'static str,
    level: Level,
    leaf: u32,
    subleaf: u32,
    /// 0 = EAX, 1 = EBX, 2 = ECX, 3 = EDX.
    reg: usize,
    bit: u32,
    xcr0: u64,
}

/// XCR0 bits 1 and 2: SSE and AVX (YMM) state.
const YMM: u64 = 0x6;
/// Plus bits 5, 6, 7: opmask, ZMM_Hi256 and Hi16_ZMM state.
const ZMM: u64 = 0xE6;

const fn feature(name: &'static str, flag: &'static str, level: Level, leaf: u32, reg: usize, bit: u32) -> Feature {
    Feature { name, flag, level, leaf, subleaf: 0, reg, bit, xcr0: 0 }
}

/// CPUID bit positions from the Intel SDM, vol. 2A, CPUID.
static FEATURES: [Feature; 21] = [
    feature("SSE3", "has_sse3", Level::V3, 1, 2, 0),
    feature("SSSE3", "has_ssse3", Level::V3, 1, 2, 9),
    Feature { xcr0: YMM, ..feature("FMA", "has_fma", Level::V3, 1, 2, 12) },
    feature("CMPXCHG16B", "has_cmpxchg16b", Level::V3, 1, 2, 13),
    feature("SSE4.1", "has_sse41", Level::V3, 1, 2, 19),
    feature("SSE4.2", "has_sse42", Level::V3, 1, 2, 20),
    feature("POPCNT", "has_popcnt", Level::V3, 1, 2, 23),
    Feature { xcr0: YMM, ..feature("AVX", "has_avx", Level::V3, 1, 2, 28) },
    feature("BMI1", "has_bmi1", Level::V3, 7, 1, 3),
    Feature { xcr0: YMM, ..feature("AVX2", "has_avx2", Level::V3, 7, 1, 5) },
    feature("BMI2", "has_bmi2", Level::V3, 7, 1, 8),
    feature("LZCNT", "has_lzcnt", Level::V3, 0x8000_0001, 2, 5),
    Feature { xcr0: ZMM, ..feature("AVX-512F", "has_avx512f", Level::V4, 7, 1, 16) },
    Feature { xcr0: ZMM, ..feature("AVX-512DQ", "has_avx512dq", Level::V4, 7, 1, 17) },
    Feature { xcr0: ZMM, ..feature("AVX-512CD", "", Level::V4, 7, 1, 28) },
    Feature { xcr0: ZMM, ..feature("AVX-512BW", "", Level::V4, 7, 1, 30) },
    Feature { xcr0: ZMM, ..feature("AVX-512VL", "has_avx512vl", Level::V4, 7, 1, 31) },
    Feature { xcr0: ZMM, ..feature("AVX-512VBMI", "has_avx512vbmi", Level::Extra, 7, 2, 1) },
    Feature { xcr0: ZMM, ..feature("AVX-512VNNI", "has_avx512vnni", Level::Extra, 7, 2, 11) },
    Feature { xcr0: ZMM, ..feature("AVX-512BITALG", "has_avx512bitalg", Level::Extra, 7, 2, 12) },
    Feature { subleaf: 1, xcr0: YMM, ..feature("AVX-VNNI", "has_avx_vnni", Level::Extra, 7, 0, 4) },
];

/// `cpuid4(leaf: u32, subleaf: u32, out: *mut [u32; 4])` (System V): EAX, EBX, ECX, EDX.
const CPUID4: [u8; 27] = [
    0x53, // push rbx (CPUID writes it; callee-saved)
    0x49, 0x89, 0xd0, // mov r8, rdx
    0x89, 0xf8, // mov eax, edi
    0x89, 0xf1, // mov ecx, esi
    0x0f, 0xa2, // cpuid
    0x41, 0x89, 0x00, // mov [r8], eax
    0x41, 0x89, 0x58, 0x04, // mov [r8+4], ebx
    0x41, 0x89, 0x48, 0x08, // mov [r8+8], ecx
    0x41, 0x89, 0x50, 0x0c, // mov [r8+12], edx
    0x5b, // pop rbx
    0xc3, // ret
];

/// `xcr0() -> u64`: XGETBV with ECX = 0. Only valid when CPUID reports OSXSAVE.
const XGETBV0: [u8; 14] = [
    0x31, 0xc9, // xor ecx, ecx
    0x0f, 0x01, 0xd0, // xgetbv
    0x48, 0xc1, 0xe2, 0x20, // shl rdx, 32
    0x48, 0x09, 0xd0, // or rax, rdx
    0xc3, // ret
    0xcc, // int3 (padding)
];

/// Defines `{prefix}_cpu_missing() -> i64`: 0 when the CPU and OS have every feature of
/// `features`, else 1 + the index of the first one missing.
pub(crate) fn define_check(jit: &mut Jit, prefix: &str, features: &[&Feature]) -> Result<FuncId> {
    let declare_err = |e: cranelift_module::ModuleError| Error::other(format!("CPU check: {e}"));
    let module = jit.module();
    let mut cpuid_sig = module.make_signature();
    cpuid_sig.params.extend([AbiParam::new(types::I32), AbiParam::new(types::I32), AbiParam::new(types::I64)]);
    let cpuid =
        module.declare_function(&format!("{prefix}_cpuid4"), Linkage::Local, &cpuid_sig).map_err(declare_err)?;
    module.define_function_bytes(cpuid, 16, &CPUID4, &[]).map_err(declare_err)?;
    let mut xgetbv_sig = module.make_signature();
    xgetbv_sig.returns.push(AbiParam::new(types::I64));
    let xgetbv =
        module.declare_function(&format!("{prefix}_xcr0"), Linkage::Local, &xgetbv_sig).map_err(declare_err)?;
    module.define_function_bytes(xgetbv, 16, &XGETBV0, &[]).map_err(declare_err)?;
    let mut sig = module.make_signature();
    sig.returns.push(AbiParam::new(types::I64));
    let check = module.declare_function(&format!("{prefix}_cpu_missing"), Linkage::Local, &sig).map_err(declare_err)?;
    jit.function(check, sig, |b, module, _| {
        let cpuid = module.declare_func_in_func(cpuid, b.func);
        let xgetbv = module.declare_func_in_func(xgetbv, b.func);
        let slot = b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, 16, 2));
        let query = |b: &mut FunctionBuilder, leaf: u32, subleaf: u32| -> [Value; 4] {
            let out = b.ins().stack_addr(types::I64, slot, 0);
            let (l, s) = (b.ins().iconst(types::I32, i64::from(leaf)), b.ins().iconst(types::I32, i64::from(subleaf)));
            b.ins().call(cpuid, &[l, s, out]);
            [0, 4, 8, 12].map(|off| b.ins().load(types::I32, MemFlagsData::trusted(), out, off))
        };
        let max_basic = query(b, 0, 0)[0];
        let max_extended = query(b, 0x8000_0000, 0)[0];
        let osxsave = {
            let ecx = query(b, 1, 0)[2];
            let bit = b.ins().ushr_imm_u(ecx, 27);
            b.ins().band_imm_u(bit, 1)
        };
        // XGETBV faults without OSXSAVE: read XCR0 only when it is set, else take 0.
        let xcr0 = if features.iter().any(|f| f.xcr0 != 0) {
            let (read, join) = (b.create_block(), b.create_block());
            b.append_block_param(join, types::I64);
            let zero = b.ins().iconst(types::I64, 0);
            b.ins().brif(osxsave, read, &[], join, &[BlockArg::Value(zero)]);
            b.switch_to_block(read);
            let call = b.ins().call(xgetbv, &[]);
            let v = b.inst_results(call)[0];
            b.ins().jump(join, &[BlockArg::Value(v)]);
            b.switch_to_block(join);
            b.block_params(join)[0]
        } else {
            b.ins().iconst(types::I64, 0)
        };
        let mut leaves: Vec<((u32, u32), [Value; 4])> = Vec::new();
        let mut result = b.ins().iconst(types::I64, 0);
        for (k, f) in features.iter().enumerate().rev() {
            let words = match leaves.iter().find(|(key, _)| *key == (f.leaf, f.subleaf)) {
                Some((_, w)) => *w,
                None => {
                    let w = query(b, f.leaf, f.subleaf);
                    leaves.push(((f.leaf, f.subleaf), w));
                    w
                }
            };
            // A leaf above the CPU's maximum reports nothing (its CPUID output is junk).
            let max = if f.leaf >= 0x8000_0000 { max_extended } else { max_basic };
            let leaf_ok = b.ins().icmp_imm_u(IntCC::UnsignedGreaterThanOrEqual, max, i64::from(f.leaf));
            let bit = b.ins().ushr_imm_u(words[f.reg], i64::from(f.bit));
            let bit = b.ins().band_imm_u(bit, 1);
            let has = b.ins().icmp_imm_s(IntCC::NotEqual, bit, 0);
            let mut ok = b.ins().band(leaf_ok, has);
            if f.xcr0 != 0 {
                let state = b.ins().band_imm_u(xcr0, f.xcr0 as i64);
                let enabled = b.ins().icmp_imm_s(IntCC::Equal, state, f.xcr0 as i64);
                ok = b.ins().band(ok, enabled);
            }
            let missing = b.ins().iconst(types::I64, k as i64 + 1);
            result = b.ins().select(ok, result, missing);
        }
        b.ins().return_(&[result]);
    })?;
    Ok(check)
}

// The levels and their CPUID bits are x86-64's, and so is the detection they are checked by.
#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    /// The emitted check, run in JIT memory, finds exactly the features the standard
    /// library detects on this CPU.
    #[test]
    fn the_cpu_check_agrees_with_std_detection() {
        let detected = |name: &str| match name {
            "SSE3" => is_x86_feature_detected!("sse3"),
            "SSSE3" => is_x86_feature_detected!("ssse3"),
            "FMA" => is_x86_feature_detected!("fma"),
            "CMPXCHG16B" => is_x86_feature_detected!("cmpxchg16b"),
            "SSE4.1" => is_x86_feature_detected!("sse4.1"),
            "SSE4.2" => is_x86_feature_detected!("sse4.2"),
            "POPCNT" => is_x86_feature_detected!("popcnt"),
            "AVX" => is_x86_feature_detected!("avx"),
            "BMI1" => is_x86_feature_detected!("bmi1"),
            "AVX2" => is_x86_feature_detected!("avx2"),
            "BMI2" => is_x86_feature_detected!("bmi2"),
            "LZCNT" => is_x86_feature_detected!("lzcnt"),
            "AVX-512F" => is_x86_feature_detected!("avx512f"),
            "AVX-512DQ" => is_x86_feature_detected!("avx512dq"),
            "AVX-512CD" => is_x86_feature_detected!("avx512cd"),
            "AVX-512BW" => is_x86_feature_detected!("avx512bw"),
            "AVX-512VL" => is_x86_feature_detected!("avx512vl"),
            "AVX-512VBMI" => is_x86_feature_detected!("avx512vbmi"),
            "AVX-512VNNI" => is_x86_feature_detected!("avx512vnni"),
            "AVX-512BITALG" => is_x86_feature_detected!("avx512bitalg"),
            "AVX-VNNI" => is_x86_feature_detected!("avxvnni"),
            other => panic!("no detection for {other}"),
        };
        let mut jit = Jit::new(false).unwrap();
        // One check per feature, so each answer is seen alone.
        let checks: Vec<FuncId> =
            FEATURES.iter().enumerate().map(|(i, f)| define_check(&mut jit, &format!("f{i}"), &[f]).unwrap()).collect();
        let all: Vec<&Feature> = FEATURES.iter().collect();
        let whole = define_check(&mut jit, "all", &all).unwrap();
        let crate::module::Sink::Memory(module) = &mut jit.sink else { unreachable!() };
        module.finalize_definitions().unwrap();
        let call = |id: FuncId| {
            // SAFETY: `id` was defined above with the signature `extern "C" fn() -> i64`, and
            // the module is finalised and alive.
            unsafe { std::mem::transmute::<*const u8, extern "C" fn() -> i64>(module.get_finalized_function(id))() }
        };
        for (f, &id) in FEATURES.iter().zip(&checks) {
            assert_eq!(call(id) == 0, detected(f.name), "{}", f.name);
        }
        let first_missing = FEATURES.iter().position(|f| !detected(f.name)).map_or(0, |i| i as i64 + 1);
        assert_eq!(call(whole), first_missing);
        // The levels: what the host has is what the check of `native` requires.
        let host = crate::module::host_isa().unwrap();
        for f in TargetCpu::Native.required(host.as_ref()) {
            assert!(detected(f.name), "native requires {} but std does not detect it", f.name);
        }
        assert!(TargetCpu::X86_64V3.required(host.as_ref()).iter().all(|f| f.level == Level::V3));
        assert_eq!(TargetCpu::X86_64V4.required(host.as_ref()).len(), 17);
    }
}
