//! A model that runs whatever input shapes bind its symbolic dims: effc's code is
//! specialised to shapes, so each new binding is compiled once, on first sight, and kept in
//! a small least-recently-used cache. The packed weights live in one [`WeightStore`] that
//! every specialisation shares.
//!
//! What is kept to specialise again is the decoded file, not an imported graph: import
//! folds shape arithmetic (the padding chains of lukemelas and timm `tf_` exports) for the
//! shapes at hand, so each binding is imported anew. A model whose run-time inputs are all
//! static keeps nothing but its one compiled specialisation, as lean as a [`Compilation`].

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use effc_onnx::{DeclaredDim, DeclaredTensor, OnnxModel};

use crate::{CompiledModel, Error, Options, Result, Runnable, Summary, Team, Tensor, WeightStore};

/// Code for one binding of a model's input shapes.
pub struct Specialised {
    /// The run-time inputs' shapes it was compiled for.
    pub shapes: Vec<Vec<usize>>,
    pub compiled: CompiledModel,
    pub summary: Summary,
}

impl Specialised {
    /// Memory of its own: the arena and the constants not shared through the store.
    fn own_bytes(&self) -> usize {
        let c = &self.compiled;
        c.arena_bytes() + c.const_bytes() - c.shared_const_bytes()
    }
}

/// A compiled model that accepts any input shapes fitting its declared dims (see the module
/// doc). Share it between threads by reference or in an `Arc`: callers with different
/// shapes run at once, and the first caller of a new shape compiles it while the others
/// keep running theirs.
pub struct Model {
    opts: Options,
    /// The run-time inputs as the file declares them.
    inputs: Vec<DeclaredTensor>,
    /// The graph outputs as declared.
    outputs: Vec<DeclaredTensor>,
    /// Graph inputs compiled with their initializer as value (not fed at run time).
    defaulted_inputs: Vec<String>,
    /// The file, for errors; `None` for a model read from memory.
    path: Option<std::path::PathBuf>,
    /// The decoded file, kept while some input dim is left free; behind a mutex because
    /// import reads external data through per-model state.
    source: Option<Mutex<OnnxModel>>,
    weights: Arc<WeightStore>,
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    entries: Vec<Entry>,
    clock: u64,
}

/// A cached binding. Its cell is filled once by the caller that compiles it; callers of the
/// same shapes wait on it, callers of other shapes do not.
struct Entry {
    shapes: Vec<Vec<usize>>,
    cell: Arc<OnceLock<Option<Arc<Specialised>>>>,
    last_used: u64,
}

impl Model {
    /// Loads `path` and compiles it for the shapes `opts` gives (`input_shapes`,
    /// `shapes_in_order`), or with a symbolic leading dim bound to 1 when none is given;
    /// a model whose dims cannot be so defaulted compiles at its first run.
    pub fn load(path: impl AsRef<Path>, opts: &Options) -> Result<Self> {
        let max = opts.max_memory.unwrap_or(usize::MAX);
        Self::new(effc_onnx::load_model_within(path.as_ref(), max)?, opts)
    }

    /// Like [`load`](Self::load), for a model held in memory (external data relative to `dir`).
    pub fn from_bytes(bytes: Vec<u8>, dir: Option<&Path>, opts: &Options) -> Result<Self> {
        let max = opts.max_memory.unwrap_or(usize::MAX);
        Self::new(effc_onnx::load_model_bytes_within(bytes, dir.map(Path::to_path_buf), max)?, opts)
    }

    fn new(source: OnnxModel, opts: &Options) -> Result<Self> {
        let locate = |e: Error| match &source.path {
            Some(p) => e.in_file(p),
            None => e,
        };
        let inputs = effc_onnx::declared_inputs(&source, &opts.overridden).map_err(locate)?;
        let outputs = effc_onnx::declared_outputs(&source).map_err(locate)?;
        let defaulted_inputs = effc_onnx::defaulted_inputs(&source, &opts.overridden);
        let opts = Options {
            keep_graph: false,
            analyze_only: false,
            expose_layers: false,
            artifact: None,
            shape_cache: opts.shape_cache.max(1),
            ..opts.clone()
        };
        let free = inputs.iter().any(|i| {
            let symbolic = i.dims.as_ref().is_none_or(|d| d.iter().any(|d| d.fixed().is_none()));
            symbolic && !opts.input_shapes.contains_key(&i.name)
        });
        let initial = initial_binding(&inputs, &opts);
        let mut model = Model {
            inputs,
            outputs,
            defaulted_inputs,
            path: source.path.clone(),
            source: None,
            weights: Arc::new(WeightStore::default()),
            cache: Mutex::new(Cache::default()),
            opts,
        };
        if let Some(shapes) = initial {
            let given: Vec<&[usize]> = shapes.iter().map(Vec::as_slice).collect();
            let shapes = model.bind(&given).map_err(locate)?;
            let first = model.compile(&source, shapes)?;
            model.cache().insert(first);
        }
        if free {
            model.source = Some(Mutex::new(source));
        }
        Ok(model)
    }

    /// The run-time inputs as declared, symbolic dims included.
    pub fn inputs(&self) -> &[DeclaredTensor] {
        &self.inputs
    }

    /// The graph outputs as declared (dims as the file gives them, possibly none).
    pub fn outputs(&self) -> &[DeclaredTensor] {
        &self.outputs
    }

    /// Graph inputs that also have an initializer and take it as their value (see
    /// [`Options::overridden`]).
    pub fn defaulted_inputs(&self) -> &[String] {
        &self.defaulted_inputs
    }

    /// Whether some input dim is left for the data to bind.
    pub fn has_free_dims(&self) -> bool {
        self.source.is_some()
    }

    /// The input shapes compiled and cached, most recently used first.
    pub fn cached_shapes(&self) -> Vec<Vec<Vec<usize>>> {
        let cache = self.cache();
        let mut ready: Vec<&Entry> = cache.entries.iter().filter(|e| matches!(e.cell.get(), Some(Some(_)))).collect();
        ready.sort_by_key(|e| std::cmp::Reverse(e.last_used));
        ready.into_iter().map(|e| e.shapes.clone()).collect()
    }

    /// Bytes the model holds: the shared weights once, plus each cached specialisation's
    /// arena and own constants. [`Options::max_memory`] bounds it.
    pub fn memory_bytes(&self) -> usize {
        let cache = self.cache();
        self.weights.bytes() + cache.ready().map(|s| s.own_bytes()).sum::<usize>()
    }

    /// The code for input shapes `shapes` (one per run-time input, in order), compiled on
    /// first sight of them.
    pub fn specialise(&self, shapes: &[&[usize]]) -> Result<Arc<Specialised>> {
        self.specialise_unlocated(shapes).map_err(|e| match &self.path {
            Some(p) => e.in_file(p),
            None => e,
        })
    }

    fn specialise_unlocated(&self, shapes: &[&[usize]]) -> Result<Arc<Specialised>> {
        let shapes = self.bind(shapes)?;
        loop {
            let cell = self.cache().cell_for(&shapes, self.opts.shape_cache);
            let mut failure = None;
            let mut compiled_here = false;
            let got = cell.get_or_init(|| {
                compiled_here = true;
                let source = self.source.as_ref().map(|s| s.lock().unwrap_or_else(|p| p.into_inner()));
                let compiled = match source {
                    Some(source) => self.compile(&source, shapes.clone()).map_err(|e| e.for_input_shapes(&shapes)),
                    None => Err(Error::other("a model with static inputs has no other shapes to compile")),
                };
                compiled.map_err(|e| failure = Some(e)).ok().map(Arc::new)
            });
            match got.clone() {
                Some(s) if compiled_here => return self.admit(&cell, s),
                Some(s) => return Ok(s),
                None => {
                    self.cache().remove(&cell);
                    // The caller that compiled reports the error; one that waited compiles
                    // again itself (and meets the same error, or the memory it needed).
                    if let Some(e) = failure {
                        return Err(e);
                    }
                }
            }
        }
    }

    /// Runs on inputs of any shapes that fit the declared dims.
    pub fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        self.run_with(None, inputs)
    }

    /// Compiles `source` for `shapes` into the shared weight store.
    fn compile(&self, source: &OnnxModel, shapes: Vec<Vec<usize>>) -> Result<Specialised> {
        let t0 = Instant::now();
        let named: HashMap<String, Vec<usize>> =
            self.inputs.iter().zip(&shapes).map(|(i, s)| (i.name.clone(), s.clone())).collect();
        let opts = Options {
            input_shapes: named,
            shapes_in_order: Vec::new(),
            weights: Some(self.weights.clone()),
            ..self.opts.clone()
        };
        let imported = crate::import(source, &opts, t0)?;
        let c = crate::optimize_and_compile(imported, &opts, t0)?;
        let compiled = c.model.ok_or_else(|| Error::other("compilation stopped at analysis"))?;
        Ok(Specialised { shapes, compiled, summary: c.summary })
    }

    /// Keeps a specialisation just compiled within the memory budget: least recently used
    /// others go first; if it still does not fit, it is not kept and the call fails.
    fn admit(&self, cell: &Arc<OnceLock<Option<Arc<Specialised>>>>, s: Arc<Specialised>) -> Result<Arc<Specialised>> {
        let Some(cap) = self.opts.max_memory else { return Ok(s) };
        let mut cache = self.cache();
        loop {
            let used = self.weights.bytes() + cache.ready().map(|s| s.own_bytes()).sum::<usize>();
            if used <= cap {
                return Ok(s);
            }
            if !cache.evict_oldest(Some(cell)) {
                cache.remove(cell);
                drop(cache);
                let mib = |b: usize| b.div_ceil(1 << 20);
                let own = s.own_bytes();
                drop(s);
                let e = Error::limit(format!(
                    "compiled, the model would hold {} MiB ({} MiB of its own for these shapes, {} MiB of shared \
                     weights), over the {} MiB memory cap",
                    mib(used),
                    mib(own),
                    mib(self.weights.bytes()),
                    mib(cap)
                ));
                return Err(e.for_input_shapes(&shapes_of(cell)));
            }
        }
    }

    /// Checks `shapes` against the declared dims: ranks, static dims, one value per symbol.
    fn bind(&self, shapes: &[&[usize]]) -> Result<Vec<Vec<usize>>> {
        if shapes.len() != self.inputs.len() {
            let names: Vec<&str> = self.inputs.iter().map(|i| i.name.as_str()).collect();
            return Err(Error::invalid(format!(
                "the model takes {} inputs ({}), {} given",
                self.inputs.len(),
                names.join(", "),
                shapes.len()
            )));
        }
        let mut symbols: HashMap<&str, (usize, &str)> = HashMap::new();
        for (input, &shape) in self.inputs.iter().zip(shapes) {
            let misfit = || {
                Error::invalid(format!(
                    "input '{}': the data's shape {shape:?} does not fit the declared dims {}",
                    input.name,
                    input.dims_text()
                ))
            };
            if let Some(fixed) = self.opts.input_shapes.get(&input.name) {
                if fixed.as_slice() != shape {
                    return Err(Error::invalid(format!(
                        "input '{}': the data's shape {shape:?} is not the shape {fixed:?} given ahead of time",
                        input.name
                    )));
                }
                continue;
            }
            let Some(dims) = &input.dims else { return Err(misfit()) };
            if dims.len() != shape.len() {
                return Err(misfit());
            }
            for (d, &n) in dims.iter().zip(shape) {
                match d {
                    DeclaredDim::Fixed(v) if usize::try_from(*v).ok() != Some(n) => return Err(misfit()),
                    DeclaredDim::Symbol(Some(name)) => match symbols.get(name.as_str()) {
                        Some(&(bound, by)) if bound != n => {
                            return Err(Error::invalid(format!(
                                "input '{}': dim '{name}' is {n} here but {bound} in input '{by}'",
                                input.name
                            )));
                        }
                        Some(_) => {}
                        None => {
                            symbols.insert(name, (n, &input.name));
                        }
                    },
                    _ => {}
                }
            }
        }
        Ok(shapes.iter().map(|s| s.to_vec()).collect())
    }

    fn cache(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Runnable for Model {
    fn run_with(&self, team: Option<&Team>, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let shapes: Vec<&[usize]> = inputs.iter().map(Tensor::shape).collect();
        self.specialise(&shapes)?.compiled.run_with(team, inputs)
    }
}

impl Cache {
    /// The specialisations compiled and held.
    fn ready(&self) -> impl Iterator<Item = &Arc<Specialised>> {
        self.entries.iter().filter_map(|e| e.cell.get().and_then(Option::as_ref))
    }

    /// Holds a specialisation compiled outside the cache.
    fn insert(&mut self, s: Specialised) {
        let cell = Arc::new(OnceLock::new());
        let shapes = s.shapes.clone();
        let _ = cell.set(Some(Arc::new(s)));
        self.clock += 1;
        self.entries.push(Entry { shapes, cell, last_used: self.clock });
    }

    /// The cell of `shapes`, marked as just used; a new one (to be compiled by the caller)
    /// if they are not cached, making room under `bound` by evicting the least recently
    /// used compiled ones.
    fn cell_for(&mut self, shapes: &[Vec<usize>], bound: usize) -> Arc<OnceLock<Option<Arc<Specialised>>>> {
        self.clock += 1;
        let now = self.clock;
        if let Some(e) = self.entries.iter_mut().find(|e| e.shapes == shapes) {
            e.last_used = now;
            return e.cell.clone();
        }
        while self.entries.len() >= bound && self.evict_oldest(None) {}
        let cell = Arc::new(OnceLock::new());
        self.entries.push(Entry { shapes: shapes.to_vec(), cell: cell.clone(), last_used: now });
        cell
    }

    /// Drops the least recently used compiled entry other than `keep`; false if none.
    /// Callers running it keep their `Arc` until they finish.
    fn evict_oldest(&mut self, keep: Option<&Arc<OnceLock<Option<Arc<Specialised>>>>>) -> bool {
        let oldest = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.cell.get().is_some() && keep.is_none_or(|k| !Arc::ptr_eq(k, &e.cell)))
            .min_by_key(|(_, e)| e.last_used)
            .map(|(i, _)| i);
        oldest.map(|i| self.entries.remove(i)).is_some()
    }

    fn remove(&mut self, cell: &Arc<OnceLock<Option<Arc<Specialised>>>>) {
        self.entries.retain(|e| !Arc::ptr_eq(&e.cell, cell));
    }
}

/// The shapes to compile at load: those `opts` gives, else each input's default shape
/// (see [`DeclaredTensor::default_shape`]); `None` if some dim is still free.
fn initial_binding(inputs: &[DeclaredTensor], opts: &Options) -> Option<Vec<Vec<usize>>> {
    (inputs.iter().enumerate())
        .map(|(i, input)| match (opts.input_shapes.get(&input.name), opts.shapes_in_order.get(i)) {
            (Some(s), _) | (None, Some(Some(s))) => Some(s.clone()),
            _ => input.default_shape(),
        })
        .collect()
}

fn shapes_of(cell: &OnceLock<Option<Arc<Specialised>>>) -> Vec<Vec<usize>> {
    cell.get().and_then(Option::as_ref).map(|s| s.shapes.clone()).unwrap_or_default()
}
