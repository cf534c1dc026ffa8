//! IR → kernels. Each op family has its own module; this driver plans the arena, keeps
//! track of where every value lives and collects the kernels in execution order.

// The lowering reads graphs derived from untrusted files: a shape or parameter it cannot
// handle is an `Error::unsupported`, never a panic.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::unreachable, clippy::indexing_slicing)]

mod conv;
mod copy;
mod elementwise;
mod fused_mbconv;
mod gemm;
mod mbconv;
mod reduce;
mod squeeze_excite;
mod weights;

pub(crate) use weights::Weights;
use weights::{const_readers, release_weights};

use std::collections::{HashMap, HashSet};

use cranelift_codegen::ir::Value;
use cranelift_module::FuncId;
use effc_ir::op::Op;
use effc_ir::{DType, Error, Graph, NodeId, Result, Tensor, TensorData, ValueRef};

use crate::aligned::ConstPool;
use crate::emit::{Base, Kb};
use crate::layout::{Buf, activation_strides, row_major};
use crate::module::Jit;
use crate::plan::{Lifetime, assign};
use crate::strided::{self, Body, Nest, memory_order};

/// The loaded inputs a strided body receives (see [`strided::Body`]), as an array.
#[allow(
    clippy::indexing_slicing,
    reason = "strided::element passes a body one loaded value per input of its nest, and every body that \
              calls this belongs to a nest built right there with N inputs"
)]
fn loaded<const N: usize>(ins: &[Value]) -> [Value; N] {
    std::array::from_fn(|i| ins[i])
}

/// The output's current value that the body of an accumulating nest receives.
#[allow(
    clippy::expect_used,
    reason = "strided::element passes Some(current output) to the body of every nest with `accumulate: \
              true`, and only such bodies call this"
)]
fn current(old: Option<Value>) -> Value {
    old.expect("the body of an accumulating nest gets the output's value")
}

/// One kernel launch: run `kernel` over its parallel range `0..extent`.
pub(crate) struct PendingStep {
    pub func: FuncId,
    pub extent: usize,
    pub name: String,
    /// The run-order position of the node it computes (0 for input copies, the node
    /// count for output copies): checked mode verifies the canaries of the buffers alive
    /// there after it.
    pub position: usize,
}

/// Kernel parameters stored as constants: where in them the addresses of other
/// constants are, so that an object file relocates them.
pub(crate) trait KernelParams: Copy {
    const POINTERS: &'static [usize];
}

impl KernelParams for effc_kernels::GemmParams {
    const POINTERS: &'static [usize] = &[
        std::mem::offset_of!(effc_kernels::GemmParams, bias),
        std::mem::offset_of!(effc_kernels::GemmParams, b_scale),
        std::mem::offset_of!(effc_kernels::GemmParams, a_taps),
    ];
}

impl KernelParams for effc_kernels::DwParams {
    const POINTERS: &'static [usize] =
        &[std::mem::offset_of!(effc_kernels::DwParams, weights), std::mem::offset_of!(effc_kernels::DwParams, bias)];
}

impl KernelParams for effc_kernels::Im2colParams {
    const POINTERS: &'static [usize] = &[];
}

/// Bytes of canary around every buffer in checked mode.
pub(crate) const GUARD_BYTES: usize = 64;

/// A canary region in the arena (checked mode) and the value it follows or precedes.
#[derive(Clone, Debug)]
pub(crate) struct Guard {
    pub offset: usize,
    pub len: usize,
    pub value: String,
    /// Run-order positions (first, last) at which the buffer is alive.
    pub live: (usize, usize),
}

pub(crate) struct Lowered {
    /// Canary regions to verify after each kernel (checked mode only).
    pub guards: Vec<Guard>,
    pub jit: Jit,
    pub steps: Vec<PendingStep>,
    pub consts: ConstPool,
    pub arena_bytes: usize,
    pub const_bytes: usize,
    /// Activation traffic the schedule avoids beyond what the graph shows (streamed
    /// expansions that are never written out and read back).
    pub traffic_saved: u64,
    /// The micro-kernels' instruction set, or `None` for pure JIT code.
    pub micro: Option<effc_kernels::Isa>,
}

pub(crate) struct Lowering<'g> {
    pub g: &'g Graph,
    pub jit: Jit,
    consts: ConstPool,
    const_bufs: HashMap<ValueRef, Buf>,
    bufs: HashMap<ValueRef, Buf>,
    /// Arena offsets of the scratch buffers of each node.
    scratch: HashMap<NodeId, Vec<usize>>,
    steps: Vec<PendingStep>,
    /// Name of the node being lowered, for kernel names and errors.
    current: String,
    /// Its run-order position, recorded with each kernel for checked mode.
    position: usize,
    /// Which part of a fused op the next kernels compute, for profiles (`[project]`).
    pub role: &'static str,
    pub traffic_saved: u64,
    /// The micro-kernels' instruction set, or `None` for pure JIT code.
    pub micro: Option<effc_kernels::Isa>,
    /// Pack weights folded from int8 as int8 ([`crate::JitOptions::int8_weights`]).
    pub int8_weights: bool,
}

/// A [`Lowering`] between nodes, without its graph borrow, so that an owned graph can give
/// up the weights of the nodes lowered so far (see [`Lowering::run_releasing`]).
struct Detached {
    jit: Jit,
    consts: ConstPool,
    const_bufs: HashMap<ValueRef, Buf>,
    bufs: HashMap<ValueRef, Buf>,
    scratch: HashMap<NodeId, Vec<usize>>,
    steps: Vec<PendingStep>,
    traffic_saved: u64,
    micro: Option<effc_kernels::Isa>,
    int8_weights: bool,
}

impl Detached {
    fn attach(self, g: &Graph) -> Lowering<'_> {
        let Detached { jit, consts, const_bufs, bufs, scratch, steps, traffic_saved, micro, int8_weights } = self;
        Lowering {
            g,
            jit,
            consts,
            const_bufs,
            bufs,
            scratch,
            steps,
            current: String::new(),
            position: 0,
            role: "",
            traffic_saved,
            micro,
            int8_weights,
        }
    }
}

fn runtime_dtype_ok(d: DType) -> bool {
    matches!(d, DType::F32 | DType::F64 | DType::I64 | DType::I32 | DType::U8 | DType::I8)
}

/// Bytes of scratch memory a node needs while it runs. A node without the input or output
/// a buffer is sized by gets none, and its lowering fails on the missing value instead.
fn scratch_needs(g: &Graph, id: NodeId, micro: Option<effc_kernels::Isa>) -> Result<Vec<usize>> {
    let node = g.node(id);
    let f32s = |n: usize| n * 4;
    let Some(out) = node.outputs.first() else { return Ok(vec![]) };
    Ok(match &node.op {
        Op::Softmax { start, end, .. } => {
            let dims = &out.shape;
            let kept: usize = dims.iter().enumerate().filter(|(i, _)| i < start || i >= end).map(|(_, d)| d).product();
            vec![f32s(kept), f32s(kept)]
        }
        Op::MbConv(b) => {
            let Some(x) = g.input(id, 0) else { return Ok(vec![]) };
            mbconv::MbConvPlan::new(b, &g.value(x).shape, &out.shape, micro)?.scratch_bytes()
        }
        Op::FusedMbConv(b) => {
            let Some(x) = g.input(id, 0) else { return Ok(vec![]) };
            fused_mbconv::FusedMbConvPlan::new(b, &g.value(x).shape, &out.shape, micro)?.scratch_bytes()
        }
        Op::SqueezeExcite(se) => squeeze_excite::se_scratch_bytes(se, &out.shape)?,
        Op::Reshape { .. } => {
            let Some(v) = g.input(id, 0) else { return Ok(vec![]) };
            let info = g.value(v);
            if g.const_value(v).is_none() && info.shape.len() >= 3 {
                vec![info.numel() * info.dtype.size_bytes()]
            } else {
                vec![]
            }
        }
        _ => vec![],
    })
}

/// The model inputs read where the caller put them: images only dense convs read, each
/// gathering its patches from the NCHW planes itself (`conv::reads_input_in_place`), so no
/// step copies the image into channels-last first.
fn inputs_read_in_place(g: &Graph, micro: Option<effc_kernels::Isa>) -> HashSet<NodeId> {
    let read_in_place = |id: NodeId| {
        let v = ValueRef::new(id, 0);
        let info = g.value(v);
        let users = g.users(v);
        let by_convs = users.iter().all(|&(u, port)| port == 0 && conv::reads_input_in_place(g, micro, u));
        info.dtype == DType::F32 && info.shape.len() == 4 && !users.is_empty() && by_convs
    };
    g.inputs.iter().copied().filter(|&id| read_in_place(id)).collect()
}

impl<'g> Lowering<'g> {
    /// Lowers `g`, which stays as it is.
    pub fn run(g: &Graph, jit: Jit, opts: &crate::JitOptions) -> Result<Lowered> {
        Self::run_owned(g.clone(), jit, opts, false)
    }

    /// Lowers `g`, dropping each weight once the last node that needs it is lowered, so
    /// that the graph's copy and the packed copy of the weights hardly coexist: peak
    /// memory holds about one copy instead of two.
    pub fn run_releasing(g: Graph, jit: Jit, opts: &crate::JitOptions) -> Result<Lowered> {
        Self::run_owned(g, jit, opts, true)
    }

    fn run_owned(mut graph: Graph, jit: Jit, opts: &crate::JitOptions, release: bool) -> Result<Lowered> {
        let g = &graph;
        let order = g.topo_order()?;
        let runtime: Vec<NodeId> = order.into_iter().filter(|&id| !matches!(g.node(id).op, Op::Const(_))).collect();
        let position: HashMap<NodeId, usize> = runtime.iter().enumerate().map(|(i, &id)| (id, i)).collect();
        let end = runtime.len();
        // Lifetimes of every run-time value and scratch buffer.
        let micro = opts.kernels.resolve()?;
        // Refuse a buffer larger than the memory cap (or 2^48 bytes) before planning.
        let cap = opts.max_memory.unwrap_or(1 << 48).min(1 << 48);
        let mut lifetimes = Vec::new();
        // The value each lifetime holds (empty for scratch buffers), for guard messages.
        let mut names: Vec<String> = Vec::new();
        let mut values = Vec::new();
        let mut scratch_index = Vec::new();
        let in_place = inputs_read_in_place(g, micro);
        for (p, &id) in runtime.iter().enumerate() {
            let node = g.node(id);
            for (port, info) in node.outputs.iter().enumerate() {
                if in_place.contains(&id) {
                    continue;
                }
                if !runtime_dtype_ok(info.dtype) {
                    return Err(Error::unsupported(format!("{} tensors at run time ('{}')", info.dtype, info.name))
                        .at_node(&node.name, node.op.name()));
                }
                let v = ValueRef::new(id, port);
                // Readers come after the writer in the order, so the last one is at p or later.
                let mut last = if g.is_output(v) { end } else { p };
                for (u, _) in g.users(v) {
                    let &at = position.get(&u).ok_or_else(|| {
                        Error::other(format!("value '{}' is read by a node outside the run order", info.name))
                    })?;
                    last = last.max(at);
                }
                // Inputs are copied in before the first kernel runs.
                let first = if matches!(node.op, Op::Input { .. }) { 0 } else { p };
                values.push((v, lifetimes.len()));
                let bytes =
                    info.numel().checked_mul(info.dtype.size_bytes()).filter(|&b| b <= cap).ok_or_else(|| {
                        Error::limit(format!(
                            "tensor '{}' of shape {:?} is larger than {} MB",
                            info.name,
                            info.shape,
                            cap >> 20
                        ))
                    })?;
                lifetimes.push(Lifetime { bytes, first, last });
                names.push(info.name.clone());
            }
            let scratch = scratch_needs(g, id, micro).map_err(|e| e.at_node(&node.name, node.op.name()))?;
            for bytes in scratch {
                scratch_index.push((id, lifetimes.len()));
                lifetimes.push(Lifetime { bytes, first: p, last: p });
                names.push(String::new());
            }
        }
        let live: Vec<(usize, usize)> = lifetimes.iter().map(|l| (l.first, l.last)).collect();
        if opts.checked {
            // Every buffer gets its own memory (no reuse, so a canary is never a live
            // buffer's bytes) with canaries on both sides.
            for l in &mut lifetimes {
                *l = Lifetime { bytes: l.bytes + 2 * GUARD_BYTES, first: 0, last: end };
            }
        }
        let (mut offsets, arena_bytes) = assign(&lifetimes);
        if offsets.len() != lifetimes.len() {
            return Err(Error::other(format!(
                "arena plan error: {} offsets for {} buffers",
                offsets.len(),
                lifetimes.len()
            )));
        }
        let mut guards = Vec::new();
        if opts.checked {
            for (i, (((off, lifetime), name), &live)) in
                offsets.iter_mut().zip(&mut lifetimes).zip(&names).zip(&live).enumerate()
            {
                let inner = lifetime.bytes - 2 * GUARD_BYTES;
                let name = if name.is_empty() { format!("scratch buffer {i}") } else { format!("value '{name}'") };
                guards.push(Guard { offset: *off, len: GUARD_BYTES, value: name.clone(), live });
                guards.push(Guard { offset: *off + GUARD_BYTES + inner, len: GUARD_BYTES, value: name, live });
                *off += GUARD_BYTES;
                lifetime.bytes = inner;
            }
        }
        // Refuse models that would not fit before packing any weight.
        // Parameters, including those held inside fused ops, as f32.
        let weights = effc_ir::cost::params(g) as usize * 4;
        if let Some(cap) = opts.max_memory
            && arena_bytes + weights > cap
        {
            return Err(Error::limit(format!(
                "the model needs {} MB (arena {} MB + weights {} MB), over the {} MB memory cap",
                (arena_bytes + weights) >> 20,
                arena_bytes >> 20,
                weights >> 20,
                cap >> 20
            )));
        }
        // Every kernel trusts this: each planned buffer lies inside the arena.
        if let Some(i) = offsets.iter().zip(&lifetimes).position(|(&off, l)| off + l.bytes > arena_bytes) {
            return Err(Error::other(format!("arena plan error: buffer {i} ends past {arena_bytes} bytes")));
        }
        let offset =
            |i: usize| offsets.get(i).copied().ok_or_else(|| Error::other(format!("arena plan error: no buffer {i}")));
        let mut bufs = HashMap::new();
        for &(v, i) in &values {
            let info = g.value(v);
            let strides = activation_strides(&info.shape);
            bufs.insert(v, Buf::new(Base::Arena(offset(i)?), info.dtype, info.shape.clone(), strides));
        }
        let mut scratch: HashMap<NodeId, Vec<usize>> = HashMap::new();
        for (id, i) in scratch_index {
            scratch.entry(id).or_default().push(offset(i)?);
        }
        let mut l = Lowering {
            g,
            jit,
            consts: ConstPool::with_store(opts.weights.clone()),
            const_bufs: HashMap::new(),
            bufs,
            scratch,
            steps: Vec::new(),
            current: String::new(),
            position: 0,
            role: "",
            traffic_saved: 0,
            micro,
            int8_weights: opts.int8_weights,
        };
        for (i, &id) in g.inputs.iter().enumerate() {
            let node = g.node(id);
            let info =
                node.outputs.first().ok_or_else(|| Error::invalid(format!("input '{}' has no value", node.name)))?;
            l.current = format!("input_{}", info.name);
            let src = Buf::new(Base::Io(i), info.dtype, info.shape.clone(), row_major(&info.shape));
            if in_place.contains(&id) {
                l.bufs.insert(ValueRef::new(id, 0), src);
                continue;
            }
            let dst = l.output(id, 0)?;
            l.copy(&dst, &src)?;
        }
        let mut readers = const_readers(g, &runtime);
        let mut detached = l.detach();
        for (position, &id) in runtime.iter().enumerate() {
            let mut l = detached.attach(&graph);
            let node = graph.node(id);
            l.current = node.name.clone();
            l.position = position;
            l.lower(id).map_err(|e| e.at_node(&node.name, node.op.name()))?;
            detached = l.detach();
            if release {
                release_weights(&mut graph, id, &mut readers);
            }
        }
        let g = &graph;
        let mut l = detached.attach(g);
        l.position = end;
        let n_in = g.inputs.len();
        for (k, (name, v)) in g.outputs.iter().enumerate() {
            l.current = format!("output_{name}");
            let src = l.value(*v)?;
            let dst = Buf::new(Base::Io(n_in + k), src.dtype, src.dims.clone(), row_major(&src.dims));
            l.copy(&dst, &src)?;
        }
        let const_bytes = l.consts.bytes();
        Ok(Lowered {
            guards,
            jit: l.jit,
            steps: l.steps,
            consts: l.consts,
            arena_bytes,
            const_bytes,
            traffic_saved: l.traffic_saved,
            micro: l.micro,
        })
    }

    fn detach(self) -> Detached {
        let Lowering { jit, consts, const_bufs, bufs, scratch, steps, traffic_saved, micro, int8_weights, .. } = self;
        Detached { jit, consts, const_bufs, bufs, scratch, steps, traffic_saved, micro, int8_weights }
    }

    fn lower(&mut self, id: NodeId) -> Result<()> {
        let op = self.g.node(id).op.clone();
        match &op {
            Op::Input { .. } | Op::Const(_) => Ok(()),
            Op::Unary(u) => elementwise::unary(self, id, *u),
            Op::Binary(b) => elementwise::binary(self, id, *b),
            Op::BatchNorm { epsilon } => elementwise::batch_norm(self, id, *epsilon),
            Op::Conv(c) => conv::conv(self, id, c),
            Op::Pool(p) => conv::pool(self, id, p),
            Op::GlobalPool(kind) => reduce::global_pool(self, id, *kind),
            Op::Reduce(r) => reduce::reduce(self, id, r),
            Op::Softmax { start, end, log } => reduce::softmax(self, id, *start, *end, *log),
            Op::Gemm(gm) => gemm::gemm(self, id, gm),
            Op::MatMul => gemm::matmul(self, id),
            Op::Reshape { .. } => copy::reshape(self, id),
            Op::Transpose { perm } => copy::transpose(self, id, perm),
            Op::Slice { axes } => copy::slice(self, id, axes),
            Op::Concat { axis } => copy::concat(self, id, *axis),
            Op::Split { axis, sizes } => copy::split(self, id, *axis, sizes),
            Op::Pad(p) => copy::pad(self, id, p),
            Op::Gather { axis } => copy::gather(self, id, *axis),
            Op::Tile { repeats } => copy::tile(self, id, repeats),
            Op::Expand { .. } => copy::expand(self, id),
            Op::Cast { to } => copy::cast(self, id, *to),
            Op::Where => Err(Error::unsupported("Where with a run-time condition")),
            Op::Quantize(q) => elementwise::quantize(self, id, q),
            Op::Dequantize(q) => elementwise::dequantize(self, id, q),
            Op::MbConv(b) => mbconv::mbconv(self, id, b),
            Op::FusedMbConv(b) => fused_mbconv::fused_mbconv(self, id, b),
            Op::SqueezeExcite(se) => squeeze_excite::squeeze_excite(self, id, se),
            Op::Released => Err(Error::other("a node whose weights were released is lowered again")),
        }
    }

    /// Where value `v` lives: its arena slot, or constant data owned by the model.
    pub fn value(&mut self, v: ValueRef) -> Result<Buf> {
        if let Some(b) = self.bufs.get(&v) {
            return Ok(b.clone());
        }
        if let Some(b) = self.const_bufs.get(&v) {
            return Ok(b.clone());
        }
        let t = self
            .g
            .const_value(v)
            .ok_or_else(|| Error::other(format!("value '{}' has no buffer", self.g.value(v).name)))?
            .clone();
        let b = self.constant(&t)?;
        self.const_bufs.insert(v, b.clone());
        Ok(b)
    }

    /// Input `port` of node `id`.
    pub fn input(&mut self, id: NodeId, port: usize) -> Result<Buf> {
        let v = self.g.input(id, port).ok_or_else(|| Error::invalid(format!("missing input {port}")))?;
        self.value(v)
    }

    pub fn input_opt(&mut self, id: NodeId, port: usize) -> Result<Option<Buf>> {
        match self.g.input(id, port) {
            Some(v) => self.value(v).map(Some),
            None => Ok(None),
        }
    }

    /// Output `port` of node `id`: its arena slot.
    pub fn output(&self, id: NodeId, port: usize) -> Result<Buf> {
        let v = ValueRef::new(id, port);
        self.bufs.get(&v).cloned().ok_or_else(|| Error::other(format!("output {port} has no arena buffer")))
    }

    pub fn const_tensor(&self, id: NodeId, port: usize) -> Option<&'g Tensor> {
        self.g.input(id, port).and_then(|v| self.g.const_value(v))
    }

    /// Arena offset of scratch buffer `i` of node `id` (see `scratch_needs`).
    pub fn scratch(&self, id: NodeId, i: usize) -> Result<usize> {
        let offset = self.scratch.get(&id).and_then(|s| s.get(i));
        offset.copied().ok_or_else(|| Error::other(format!("scratch buffer {i} was not planned")))
    }

    /// Stores `bytes` as immutable model data and returns its address.
    pub fn const_bytes(&mut self, bytes: &[u8]) -> Base {
        Base::Const(self.consts.put(bytes.len(), |buf| buf.copy_from_slice(bytes)) as usize)
    }

    /// Stores a plain-data struct (kernel parameters) as immutable model data; returns its
    /// address, which stays fixed for the model's lifetime.
    pub fn const_struct<T: KernelParams>(&mut self, value: T) -> usize {
        const { assert!(std::mem::align_of::<T>() <= crate::aligned::ALIGN) };
        let buf = self.consts.alloc(std::mem::size_of::<T>());
        // SAFETY: the pool hands out 64-byte aligned, zeroed bytes of T's size; writing
        // (not reading) the value leaves no uninitialised byte to be read as u8.
        unsafe { std::ptr::write(buf.as_mut_ptr() as *mut T, value) };
        let at = buf.as_ptr() as usize;
        for &offset in T::POINTERS {
            self.consts.mark_pointer(at + offset);
        }
        at
    }

    /// Stores a table of addresses (e.g. of per-part kernel parameters) that kernels
    /// index at run time.
    pub fn const_addresses(&mut self, addrs: &[usize]) -> Base {
        let bytes: Vec<u8> = addrs.iter().flat_map(|a| a.to_ne_bytes()).collect();
        let table = self.const_bytes(&bytes);
        if let Base::Const(at) = table {
            for i in 0..addrs.len() {
                self.consts.mark_pointer(at + 8 * i);
            }
        }
        table
    }

    /// `len` f32s of model data written in place by `fill`, so that large weights are
    /// packed straight into the pool rather than through a temporary copy.
    pub fn const_f32_with(&mut self, len: usize, fill: impl FnOnce(&mut [f32])) -> Base {
        let at = self.consts.put(len * 4, |buf| {
            // SAFETY: every bit pattern is a valid f32; the pool hands out 64-byte aligned
            // memory, so the whole buffer is the middle part.
            let (head, floats, tail) = unsafe { buf.align_to_mut::<f32>() };
            debug_assert!(head.is_empty() && tail.is_empty());
            fill(floats);
        });
        Base::Const(at as usize)
    }

    pub fn const_f32(&mut self, data: &[f32]) -> Base {
        let at = self.consts.put(std::mem::size_of_val(data), |buf| {
            for (dst, v) in buf.chunks_exact_mut(4).zip(data) {
                dst.copy_from_slice(&v.to_ne_bytes());
            }
        });
        Base::Const(at as usize)
    }

    /// A constant tensor as a row-major buffer of its own dtype.
    pub fn constant(&mut self, t: &Tensor) -> Result<Buf> {
        let bytes: Vec<u8> = match t.data() {
            TensorData::F32(v) => v.iter().flat_map(|x| x.to_ne_bytes()).collect(),
            TensorData::F64(v) => v.iter().flat_map(|x| x.to_ne_bytes()).collect(),
            TensorData::I64(v) => v.iter().flat_map(|x| x.to_ne_bytes()).collect(),
            TensorData::I32(v) => v.iter().flat_map(|x| x.to_ne_bytes()).collect(),
            _ => return Err(Error::unsupported(format!("{} constants at run time", t.dtype()))),
        };
        let base = self.const_bytes(&bytes);
        Ok(Buf::new(base, t.dtype(), t.shape().to_vec(), row_major(t.shape())))
    }

    /// Compiles one kernel and schedules it over `0..extent`.
    pub fn kernel(&mut self, extent: usize, build: impl FnOnce(&mut Kb)) -> Result<()> {
        let name =
            if self.role.is_empty() { self.current.clone() } else { format!("{} [{}]", self.current, self.role) };
        let func = self.jit.kernel(&name, &self.consts, build)?;
        self.steps.push(PendingStep { func, extent, name, position: self.position });
        Ok(())
    }

    /// Compiles a strided nest as one kernel.
    pub fn nest(&mut self, nest: &Nest, body: Body) -> Result<()> {
        let n = nest.simplified();
        let extent = n.extent();
        self.kernel(extent, |kb| strided::emit(kb, &n, body))
    }

    /// dst = src, elementwise with broadcasting of `src` onto `dst`'s dims.
    pub fn copy(&mut self, dst: &Buf, src: &Buf) -> Result<()> {
        if dst.dtype != src.dtype {
            return Err(Error::unsupported(format!("copying {} into {}", src.dtype, dst.dtype)));
        }
        let src = src.broadcast_to(&dst.dims);
        self.nest(&Nest::in_order(dst, &[&src], &copy_order(dst, &src)), &|_, _, ins, _| {
            let [x] = loaded(ins);
            x
        })
    }

    /// dst = value everywhere.
    pub fn fill(&mut self, dst: &Buf, value: f64) -> Result<()> {
        self.nest(&Nest::over(dst, &[]), &move |kb, ty, _, _| {
            if ty.lane_type().is_float() { kb.fc(ty, value) } else { kb.int_const(ty, value as i64) }
        })
    }
}

/// The order a copy walks its elements in: the destination's memory order, unless the
/// destination's innermost run is shorter than a vector while the source (not a
/// broadcast) runs contiguously along another dim; then that source dim goes innermost,
/// right after the destination's short one. A layout change into channels-last with 3
/// channels (the model input, NCHW to NHWC) otherwise copies 3 scalars per iteration of
/// the outer loop (50176 of them for a 224×224 image: 0.38 ms of B0's 15 on Zen 3, then
/// 0.19 ms), and the rows stay the outer, parallel dim (merged with the columns, the
/// 3 channels would be the only work items).
fn copy_order(dst: &Buf, src: &Buf) -> Vec<usize> {
    let order = memory_order(dst);
    // (size, stride) of dim `d`.
    let dim = |buf: &Buf, d: usize| buf.dims.get(d).copied().zip(buf.strides.get(d).copied());
    let innermost =
        |buf: &Buf, order: &[usize]| order.iter().rev().copied().find(|&d| dim(buf, d).is_some_and(|(n, _)| n != 1));
    let Some(short) = innermost(dst, &order).filter(|&d| matches!(dim(dst, d), Some((n, 1)) if n < 4)) else {
        return order;
    };
    let not_broadcast = src.dims.iter().zip(&src.strides).all(|(&n, &x)| n == 1 || x != 0);
    match innermost(src, &memory_order(src)) {
        Some(run) if run != short && matches!(dim(src, run), Some((n, 1)) if n >= 4) && not_broadcast => {
            let mut walk: Vec<usize> = order.into_iter().filter(|&d| d != short && d != run).collect();
            walk.extend([short, run]);
            walk
        }
        _ => order,
    }
}
