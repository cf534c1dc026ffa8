//! The compiled model: kernels, their schedule, owned weights and a pool of arenas.
//!
//! This module is the whole `unsafe` boundary between Rust and JIT code: the kernels are
//! only ever called from [`CompiledModel::run_into`], after every caller buffer has been
//! checked against the dtype and element count the kernels were compiled for.

use std::sync::Mutex;

use cranelift_jit::JITModule;
use effc_ir::{DType, Error, Graph, Result, Tensor, TensorData};

use crate::aligned::AlignedBuf;
use crate::lower::Lowering;
use crate::module::{Jit, KernelFn};
use effc_kernels::Team;

#[derive(Clone, Debug, Default)]
pub struct JitOptions {
    /// Keep the CLIF text of every kernel (`effc compile --emit clif`).
    pub keep_clif: bool,
    /// Checked mode: every buffer gets its own memory with canaries around it, verified
    /// after every kernel; a kernel that writes outside its buffers is an error.
    pub checked: bool,
    /// Refuse models whose arena plus weights exceed this many bytes.
    pub max_memory: Option<usize>,
    /// Which code runs matrix products: micro-kernels of an instruction set or pure JIT.
    pub kernels: crate::Kernels,
    /// Keep weights folded from int8 values int8 in memory (a quarter of the bytes), where
    /// the micro-kernels compute their products: each B vector is converted as it is
    /// loaded, which costs time where the weights stay cached (on an AVX2-only Zen 1 QDQ
    /// Lite0 ran 25 → 30 ms), so it is for memory-bound deployments.
    pub int8_weights: bool,
    /// Where packed weights are held, shared with every model compiled with the same
    /// store (the specialisations of one model to several input shapes); `None`: the
    /// model holds its own.
    pub weights: Option<std::sync::Arc<crate::WeightStore>>,
}

/// Name, dtype and shape of a model input or output.
#[derive(Clone, Debug, PartialEq)]
pub struct IoInfo {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
}

/// A caller's input buffer, row-major in the model's logical (ONNX) layout.
#[derive(Clone, Copy, Debug)]
pub enum TensorRef<'a> {
    F32(&'a [f32]),
    F64(&'a [f64]),
    I64(&'a [i64]),
    I32(&'a [i32]),
    U8(&'a [u8]),
    I8(&'a [i8]),
}

/// A caller's output buffer, row-major in the model's logical (ONNX) layout.
#[derive(Debug)]
pub enum TensorMut<'a> {
    F32(&'a mut [f32]),
    F64(&'a mut [f64]),
    I64(&'a mut [i64]),
    I32(&'a mut [i32]),
    U8(&'a mut [u8]),
    I8(&'a mut [i8]),
}

impl TensorRef<'_> {
    fn describe(&self) -> (DType, usize, *mut u8) {
        match self {
            TensorRef::F32(s) => (DType::F32, s.len(), s.as_ptr() as *mut u8),
            TensorRef::F64(s) => (DType::F64, s.len(), s.as_ptr() as *mut u8),
            TensorRef::I64(s) => (DType::I64, s.len(), s.as_ptr() as *mut u8),
            TensorRef::I32(s) => (DType::I32, s.len(), s.as_ptr() as *mut u8),
            TensorRef::U8(s) => (DType::U8, s.len(), s.as_ptr().cast_mut()),
            TensorRef::I8(s) => (DType::I8, s.len(), s.as_ptr() as *mut u8),
        }
    }
}

impl TensorMut<'_> {
    fn describe(&mut self) -> (DType, usize, *mut u8) {
        match self {
            TensorMut::F32(s) => (DType::F32, s.len(), s.as_mut_ptr() as *mut u8),
            TensorMut::F64(s) => (DType::F64, s.len(), s.as_mut_ptr() as *mut u8),
            TensorMut::I64(s) => (DType::I64, s.len(), s.as_mut_ptr() as *mut u8),
            TensorMut::I32(s) => (DType::I32, s.len(), s.as_mut_ptr() as *mut u8),
            TensorMut::U8(s) => (DType::U8, s.len(), s.as_mut_ptr()),
            TensorMut::I8(s) => (DType::I8, s.len(), s.as_mut_ptr() as *mut u8),
        }
    }
}

/// Owns the JIT code memory; freed when the model is dropped.
struct Code(Option<JITModule>);

// SAFETY: after finalisation the module is never used again except to free its memory in
// Drop (which needs `&mut self`); the code it owns is immutable and position-fixed.
unsafe impl Send for Code {}
// SAFETY: see above; shared access never touches the module.
unsafe impl Sync for Code {}

impl Drop for Code {
    fn drop(&mut self) {
        if let Some(m) = self.0.take() {
            // SAFETY: no kernel can run any more: the CompiledModel that owned the function
            // pointers is being dropped, and runs borrow it.
            unsafe { m.free_memory() }
        }
    }
}

struct Step {
    kernel: KernelFn,
    extent: u64,
    /// The run-order position of the node it computes (see `PendingStep::position`).
    position: usize,
}

impl Step {
    /// Runs the kernel over its whole range, split across `team` if there is one.
    ///
    /// # Safety
    /// `arena` and `io` are what the kernel was compiled for (see `run_into_with`).
    unsafe fn run(&self, team: Option<&Team>, arena: *mut u8, io: *const *mut u8) {
        // SAFETY: forwarded; a team only splits `0..extent` into disjoint sub-ranges.
        unsafe {
            match team {
                Some(t) => t.run_step(self.kernel, self.extent, arena, io),
                None => (self.kernel)(arena, io, 0, self.extent),
            }
        }
    }
}

/// The graph's inputs and outputs.
pub(crate) fn io_of(graph: &Graph) -> (Vec<IoInfo>, Vec<IoInfo>) {
    let info = |name: &str, v: effc_ir::ValueRef| {
        let i = graph.value(v);
        IoInfo { name: name.to_string(), dtype: i.dtype, shape: i.shape.clone() }
    };
    let inputs =
        graph.inputs.iter().map(|&id| info(&graph.node(id).outputs[0].name, effc_ir::ValueRef::new(id, 0))).collect();
    (inputs, graph.outputs.iter().map(|(n, v)| info(n, *v)).collect())
}

/// A model compiled to machine code: compile once, run many times from many threads.
pub struct CompiledModel {
    steps: Vec<Step>,
    kernel_names: Vec<String>,
    inputs: Vec<IoInfo>,
    outputs: Vec<IoInfo>,
    arena_bytes: usize,
    const_bytes: usize,
    shared_const_bytes: usize,
    traffic_saved: u64,
    micro: Option<effc_kernels::Isa>,
    arenas: Mutex<Vec<AlignedBuf>>,
    clif: Option<Vec<(String, String)>>,
    guards: Vec<crate::lower::Guard>,
    /// Per run-order position, the guards of the buffers alive there (checked mode).
    live_guards: Vec<Vec<usize>>,
    // Field order matters: the weights and code outlive nothing that uses them.
    _consts: crate::aligned::ConstPool,
    _code: Code,
}

impl CompiledModel {
    /// Lowers `graph` (shapes static, passes done) to machine code.
    pub fn compile(graph: &Graph, opts: &JitOptions) -> Result<Self> {
        let io = io_of(graph);
        let jit = Jit::new(opts.keep_clif)?;
        Self::finish(Lowering::run(graph, jit, opts)?, io)
    }

    /// Like [`compile`](Self::compile), consuming the graph: each weight is dropped as
    /// soon as the last kernel that needs it has packed its own copy, so compiling holds
    /// about one copy of the weights at a time instead of two.
    pub fn compile_owned(graph: Graph, opts: &JitOptions) -> Result<Self> {
        let io = io_of(&graph);
        let jit = Jit::new(opts.keep_clif)?;
        Self::finish(Lowering::run_releasing(graph, jit, opts)?, io)
    }

    fn finish(lowered: crate::lower::Lowered, (inputs, outputs): (Vec<IoInfo>, Vec<IoInfo>)) -> Result<Self> {
        let mut jit = lowered.jit;
        let ids: Vec<_> = lowered.steps.iter().map(|s| s.func).collect();
        let fns = jit.finish(&ids)?;
        Ok(CompiledModel {
            steps: fns
                .iter()
                .zip(&lowered.steps)
                .map(|(&kernel, s)| Step { kernel, extent: s.extent as u64, position: s.position })
                .collect(),
            kernel_names: lowered.steps.iter().map(|s| s.name.clone()).collect(),
            inputs,
            outputs,
            arena_bytes: lowered.arena_bytes,
            const_bytes: lowered.const_bytes,
            shared_const_bytes: lowered.consts.shared_bytes(),
            traffic_saved: lowered.traffic_saved,
            micro: lowered.micro,
            arenas: Mutex::new(Vec::new()),
            clif: jit.clif.take(),
            live_guards: live_guards(&lowered.guards),
            guards: lowered.guards,
            _consts: lowered.consts,
            _code: Code(match jit.sink {
                crate::module::Sink::Memory(m) => Some(*m),
                crate::module::Sink::Object(_) => None,
            }),
        })
    }

    /// The micro-kernels' instruction set the code calls, or `None` for pure JIT code.
    pub fn kernels(&self) -> Option<effc_kernels::Isa> {
        self.micro
    }

    pub fn inputs(&self) -> &[IoInfo] {
        &self.inputs
    }

    pub fn outputs(&self) -> &[IoInfo] {
        &self.outputs
    }

    /// Bytes of scratch memory one run needs.
    pub fn arena_bytes(&self) -> usize {
        self.arena_bytes
    }

    /// Bytes of packed weights and constants the model uses, its own and shared ones.
    pub fn const_bytes(&self) -> usize {
        self.const_bytes
    }

    /// Of [`const_bytes`](Self::const_bytes), those held in the [`JitOptions::weights`]
    /// store, shared with the other models compiled with it.
    pub fn shared_const_bytes(&self) -> usize {
        self.shared_const_bytes
    }

    /// Activation bytes per run that the schedule avoids moving beyond what the graph
    /// shows (expansions streamed through ring buffers).
    pub fn traffic_saved(&self) -> u64 {
        self.traffic_saved
    }

    /// Number of kernel launches per run.
    pub fn kernel_count(&self) -> usize {
        self.steps.len()
    }

    /// CLIF text per kernel, if compiled with `keep_clif`.
    pub fn clif(&self) -> Option<&[(String, String)]> {
        self.clif.as_deref()
    }

    pub fn kernel_names(&self) -> &[String] {
        &self.kernel_names
    }

    /// Runs the model on caller buffers on the calling thread. Allocates nothing once an
    /// arena is pooled. Inputs and outputs are row-major in ONNX's logical layout.
    pub fn run_into(&self, inputs: &[TensorRef], outputs: &mut [TensorMut]) -> Result<()> {
        self.run_into_with(None, inputs, outputs)
    }

    /// Like [`run_into`](Self::run_into), splitting each kernel across `team`.
    pub fn run_into_with(&self, team: Option<&Team>, inputs: &[TensorRef], outputs: &mut [TensorMut]) -> Result<()> {
        if inputs.len() != self.inputs.len() || outputs.len() != self.outputs.len() {
            return Err(Error::invalid(format!(
                "the model takes {} inputs and {} outputs, got {} and {}",
                self.inputs.len(),
                self.outputs.len(),
                inputs.len(),
                outputs.len()
            )));
        }
        const INLINE: usize = 16;
        let mut inline = [std::ptr::null_mut::<u8>(); INLINE];
        let mut heap = Vec::new();
        let io: &mut [*mut u8] = if inputs.len() + outputs.len() <= INLINE {
            &mut inline[..inputs.len() + outputs.len()]
        } else {
            heap.resize(inputs.len() + outputs.len(), std::ptr::null_mut());
            &mut heap
        };
        for (i, (t, info)) in inputs.iter().zip(&self.inputs).enumerate() {
            let (dtype, len, ptr) = t.describe();
            check(info, dtype, len, "input")?;
            io[i] = ptr;
        }
        for (k, (t, info)) in outputs.iter_mut().zip(&self.outputs).enumerate() {
            let (dtype, len, ptr) = t.describe();
            check(info, dtype, len, "output")?;
            io[inputs.len() + k] = ptr;
        }
        let mut arena = self
            .arenas
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .unwrap_or_else(|| AlignedBuf::zeroed(self.arena_bytes + GUARD));
        arena.as_mut_slice()[self.arena_bytes..].fill(GUARD_BYTE);
        for g in &self.guards {
            arena.as_mut_slice()[g.offset..g.offset + g.len].fill(GUARD_BYTE);
        }
        let io_ptr = io.as_ptr();
        let trace = cfg!(debug_assertions) && std::env::var_os("EFFC_TRACE_KERNELS").is_some();
        for (k, s) in self.steps.iter().enumerate() {
            if trace {
                eprintln!(
                    "kernel {k} {} extent {} arena {:p}+{}",
                    self.kernel_names[k],
                    s.extent,
                    arena.as_ptr(),
                    self.arena_bytes
                );
            }
            // SAFETY: every kernel was compiled for this model's arena layout, which fits in
            // `arena_bytes`; the io table holds one pointer per input and output whose dtype
            // and element count were checked above; constants live in `self._consts` and the
            // code in `self._code`, both alive for `&self`. `0..extent` is the kernel's full
            // parallel range, and a team only splits it into disjoint sub-ranges.
            unsafe { s.run(team, arena.as_mut_ptr(), io_ptr) };
            // The canaries of the buffers alive at this kernel's node (its inputs, outputs and
            // scratch): a kernel that overruns its buffers is named at once, and the check
            // stays linear in the graph's size (checking every canary after every kernel
            // took 101 s on a 20k-node chain). The end of the run checks them all.
            let live = self.live_guards.get(s.position).into_iter().flatten().filter_map(|&i| self.guards.get(i));
            if (cfg!(debug_assertions) || !self.guards.is_empty())
                && let Some(what) = corrupted_guard(arena.as_mut_slice(), self.arena_bytes, live)
            {
                self.arenas.lock().unwrap_or_else(|p| p.into_inner()).push(arena);
                return Err(Error::other(format!(
                    "checked mode: kernel {k} (from node '{}') wrote outside its buffers, into the canary of {what}",
                    self.kernel_names[k]
                )));
            }
        }
        // Checked mode only: a normal run does no work here.
        let leftover = match self.guards.is_empty() {
            true => None,
            false => corrupted_guard(arena.as_mut_slice(), self.arena_bytes, self.guards.iter()),
        };
        self.arenas.lock().unwrap_or_else(|p| p.into_inner()).push(arena);
        match leftover {
            Some(what) => Err(Error::other(format!(
                "checked mode: a kernel wrote outside its buffers, into the canary of {what} (a buffer not alive \
                 at that kernel, found at the end of the run)"
            ))),
            _ => Ok(()),
        }
    }

    /// Runs the model `runs` times on `inputs` (single-threaded) and returns the total
    /// milliseconds spent in each kernel, in execution order, named after the IR node it
    /// came from.
    pub fn profile(&self, inputs: &[Tensor], runs: usize) -> Result<Vec<(String, f64)>> {
        self.profile_with(None, inputs, runs)
    }

    /// Like [`profile`](Self::profile), splitting each kernel across `team` as
    /// [`run_with`](Self::run_with) does, so the times show what limits that many threads
    /// (serial kernels, too few work items).
    pub fn profile_with(&self, team: Option<&Team>, inputs: &[Tensor], runs: usize) -> Result<Vec<(String, f64)>> {
        let mut totals = vec![0f64; self.steps.len()];
        // A first run checks the inputs and fills the arena pool.
        self.run(inputs)?;
        let mut outputs: Vec<Vec<u8>> =
            self.outputs.iter().map(|o| vec![0u8; o.shape.iter().product::<usize>() * o.dtype.size_bytes()]).collect();
        let mut io: Vec<*mut u8> = inputs
            .iter()
            .map(|t| match t.data() {
                TensorData::F32(v) => v.as_ptr() as *mut u8,
                TensorData::F64(v) => v.as_ptr() as *mut u8,
                TensorData::I64(v) => v.as_ptr() as *mut u8,
                TensorData::I32(v) => v.as_ptr() as *mut u8,
                _ => std::ptr::null_mut(),
            })
            .collect();
        io.extend(outputs.iter_mut().map(|o| o.as_mut_ptr()));
        let mut arena = AlignedBuf::zeroed(self.arena_bytes + GUARD);
        for _ in 0..runs {
            for (k, s) in self.steps.iter().enumerate() {
                let t = std::time::Instant::now();
                // SAFETY: as in run_into_with; `run` above validated the inputs' dtypes and
                // shapes, and the output buffers are sized from the model's outputs.
                unsafe { s.run(team, arena.as_mut_ptr(), io.as_ptr()) };
                totals[k] += t.elapsed().as_secs_f64() * 1e3;
            }
        }
        // The work items of each kernel, which bound how many threads it can use.
        Ok(self
            .kernel_names
            .iter()
            .zip(&self.steps)
            .zip(totals)
            .map(|((name, s), t)| (format!("{name} ({} items)", s.extent), t))
            .collect())
    }

    /// Runs the model on tensors and returns new output tensors.
    pub fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        self.run_with(None, inputs)
    }

    /// Like [`run`](Self::run), splitting each kernel across `team`.
    pub fn run_with(&self, team: Option<&Team>, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        if inputs.len() != self.inputs.len() {
            return Err(Error::invalid(format!("the model takes {} inputs, got {}", self.inputs.len(), inputs.len())));
        }
        let mut refs = Vec::with_capacity(inputs.len());
        for (t, info) in inputs.iter().zip(&self.inputs) {
            if t.shape() != info.shape.as_slice() || t.dtype() != info.dtype {
                return Err(Error::invalid(format!(
                    "input '{}' must be {}{:?}, got {}{:?}",
                    info.name,
                    info.dtype,
                    info.shape,
                    t.dtype(),
                    t.shape()
                )));
            }
            refs.push(match t.data() {
                TensorData::F32(v) => TensorRef::F32(v),
                TensorData::F64(v) => TensorRef::F64(v),
                TensorData::I64(v) => TensorRef::I64(v),
                TensorData::I32(v) => TensorRef::I32(v),
                TensorData::U8(v) => TensorRef::U8(v),
                TensorData::I8(v) => TensorRef::I8(v),
                _ => return Err(Error::unsupported(format!("{} inputs", t.dtype()))),
            });
        }
        let mut bufs: Vec<TensorData> = self
            .outputs
            .iter()
            .map(|o| {
                let n: usize = o.shape.iter().product();
                match o.dtype {
                    DType::F64 => TensorData::F64(vec![0.0; n].into()),
                    DType::I64 => TensorData::I64(vec![0; n].into()),
                    DType::I32 => TensorData::I32(vec![0; n].into()),
                    DType::U8 => TensorData::U8(vec![0; n].into()),
                    DType::I8 => TensorData::I8(vec![0; n].into()),
                    _ => TensorData::F32(vec![0.0; n].into()),
                }
            })
            .collect();
        {
            let mut outs: Vec<TensorMut> = bufs
                .iter_mut()
                .map(|d| match d {
                    TensorData::F32(v) => TensorMut::F32(std::sync::Arc::get_mut(v).unwrap()),
                    TensorData::F64(v) => TensorMut::F64(std::sync::Arc::get_mut(v).unwrap()),
                    TensorData::I64(v) => TensorMut::I64(std::sync::Arc::get_mut(v).unwrap()),
                    TensorData::I32(v) => TensorMut::I32(std::sync::Arc::get_mut(v).unwrap()),
                    TensorData::U8(v) => TensorMut::U8(std::sync::Arc::get_mut(v).unwrap()),
                    TensorData::I8(v) => TensorMut::I8(std::sync::Arc::get_mut(v).unwrap()),
                    _ => unreachable!(),
                })
                .collect();
            self.run_into_with(team, &refs, &mut outs)?;
        }
        bufs.into_iter().zip(&self.outputs).map(|(d, o)| Tensor::new(o.shape.clone(), d)).collect()
    }
}

/// Which canary (if any) no longer holds its pattern: the one past the arena's end, or one
/// around a buffer (checked mode).
/// For each run-order position, the indices of the guards alive there: the per-kernel
/// check reads only those (linear in the graph, where every guard after every kernel was
/// quadratic).
fn live_guards(guards: &[crate::lower::Guard]) -> Vec<Vec<usize>> {
    let end = guards.iter().map(|g| g.live.1).max().map_or(0, |e| e + 1);
    let mut at = vec![Vec::new(); end];
    for (i, g) in guards.iter().enumerate() {
        for slot in at.iter_mut().take(g.live.1 + 1).skip(g.live.0) {
            slot.push(i);
        }
    }
    at
}

fn corrupted_guard<'a>(
    arena: &[u8],
    arena_bytes: usize,
    mut guards: impl Iterator<Item = &'a crate::lower::Guard>,
) -> Option<String> {
    if arena[arena_bytes..].iter().any(|&b| b != GUARD_BYTE) {
        return Some("the arena's end".into());
    }
    guards.find(|g| arena[g.offset..g.offset + g.len].iter().any(|&b| b != GUARD_BYTE)).map(|g| g.value.clone())
}

/// Bytes after the planned arena that no kernel may touch; checked after every kernel in
/// debug builds and in checked mode.
const GUARD: usize = 256;
const GUARD_BYTE: u8 = 0xA5;

fn check(info: &IoInfo, dtype: DType, len: usize, what: &str) -> Result<()> {
    let n: usize = info.shape.iter().product();
    if dtype != info.dtype || len != n {
        return Err(Error::invalid(format!(
            "{what} '{}' must be {} {}{:?} ({n} elements), got {len} {dtype} elements",
            info.name, info.dtype, info.dtype, info.shape
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lower::Guard;

    #[test]
    fn a_write_into_any_canary_is_found() {
        let guards = vec![
            Guard { offset: 0, len: 64, value: "value 'a'".into(), live: (0, 1) },
            Guard { offset: 192, len: 64, value: "value 'a'".into(), live: (0, 1) },
            Guard { offset: 256, len: 64, value: "value 'b'".into(), live: (1, 2) },
        ];
        let mut arena = vec![0u8; 512 + GUARD];
        for g in &guards {
            arena[g.offset..g.offset + g.len].fill(GUARD_BYTE);
        }
        arena[512..].fill(GUARD_BYTE);
        assert_eq!(corrupted_guard(&arena, 512, guards.iter()), None);
        arena[100] = 1; // inside buffer 'a': allowed
        assert_eq!(corrupted_guard(&arena, 512, guards.iter()), None);
        arena[257] = 0;
        assert_eq!(corrupted_guard(&arena, 512, guards.iter()).as_deref(), Some("value 'b'"));
        arena[257] = GUARD_BYTE;
        arena[512 + 3] = 0;
        assert_eq!(corrupted_guard(&arena, 512, guards.iter()).as_deref(), Some("the arena's end"));
    }

    /// Each position lists the guards of the buffers alive there, and only those.
    #[test]
    fn live_guards_follow_lifetimes() {
        let guard = |live| Guard { offset: 0, len: 64, value: String::new(), live };
        let guards = [guard((0, 1)), guard((0, 1)), guard((1, 3)), guard((3, 3))];
        assert_eq!(live_guards(&guards), [vec![0, 1], vec![0, 1, 2], vec![2], vec![2, 3]]);
    }
}
