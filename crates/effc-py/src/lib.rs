//! `effc` for Python: onnxruntime's `InferenceSession` API over [`effc::Model`], so trying
//! effc is a one-line change. A session compiles once, feeds any shapes that bind the
//! model's symbolic dims (each new binding compiled on first sight and cached), and
//! releases the GIL while it compiles and runs, so one session serves many Python threads.

use std::path::PathBuf;
use std::sync::Arc;

use effc::{DType, DeclaredDim, DeclaredTensor, Tensor, TensorData, TensorMut, TensorRef};
use numpy::{
    PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyReadwriteArrayDyn, PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

create_exception!(
    effc,
    EffcError,
    PyException,
    "An error from effc; its message is effc's one-line error (file, node, op and opset where known)."
);

fn effc_err(e: impl std::fmt::Display) -> PyErr {
    EffcError::new_err(e.to_string())
}

/// Options for an [`InferenceSession`], named as onnxruntime names them where it has them.
#[pyclass(module = "effc", from_py_object)]
#[derive(Clone)]
struct SessionOptions {
    /// Threads one run is split over; 0 (the default) means one, the caller's.
    #[pyo3(get, set)]
    intra_op_num_threads: usize,
    /// "auto" (the best this CPU has), "avx512", "avx2", "portable" or "jit".
    #[pyo3(get, set)]
    kernels: String,
    /// Bytes the session may hold (weights, compiled shapes, arenas); None: 4 GiB.
    #[pyo3(get, set)]
    max_memory: Option<usize>,
    /// Input shapes kept compiled at once (least recently used out first).
    #[pyo3(get, set)]
    shape_cache: usize,
}

#[pymethods]
impl SessionOptions {
    #[new]
    fn new() -> Self {
        SessionOptions { intra_op_num_threads: 0, kernels: "auto".into(), max_memory: None, shape_cache: 4 }
    }

    fn __repr__(&self) -> String {
        format!(
            "SessionOptions(intra_op_num_threads={}, kernels={:?}, max_memory={:?}, shape_cache={})",
            self.intra_op_num_threads, self.kernels, self.max_memory, self.shape_cache
        )
    }
}

impl SessionOptions {
    fn options(&self) -> PyResult<effc::Options> {
        Ok(effc::Options {
            kernels: self.kernels.parse().map_err(effc_err)?,
            max_memory: Some(self.max_memory.unwrap_or(effc::DEFAULT_MAX_MEMORY)),
            shape_cache: self.shape_cache.max(1),
            keep_graph: false,
            ..Default::default()
        })
    }
}

/// A model input or output as onnxruntime describes it: name, shape (symbolic dims as
/// their names, None where unnamed) and type ("tensor(float)").
#[pyclass(module = "effc", frozen)]
struct NodeArg {
    #[pyo3(get)]
    name: String,
    dims: Option<Vec<DeclaredDim>>,
    #[pyo3(get, name = "type")]
    type_name: String,
}

#[pymethods]
impl NodeArg {
    #[getter]
    fn shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let dims = self.dims.as_deref().unwrap_or_default();
        let items: Vec<Bound<'py, PyAny>> = dims
            .iter()
            .map(|d| match d {
                DeclaredDim::Fixed(v) => Ok(v.into_pyobject(py)?.into_any()),
                DeclaredDim::Symbol(Some(name)) => Ok(name.into_pyobject(py)?.into_any()),
                DeclaredDim::Symbol(None) => Ok(py.None().into_bound(py)),
            })
            .collect::<PyResult<_>>()?;
        PyList::new(py, items)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!("NodeArg(name={:?}, type={:?}, shape={})", self.name, self.type_name, self.shape(py)?.repr()?))
    }
}

impl NodeArg {
    fn of(t: &DeclaredTensor) -> Self {
        NodeArg { name: t.name.clone(), dims: t.dims.clone(), type_name: onnx_type(t.dtype) }
    }
}

/// onnxruntime's type string for a dtype.
fn onnx_type(dtype: DType) -> String {
    let name = match dtype {
        DType::F32 => "float",
        DType::F64 => "double",
        DType::I64 => "int64",
        DType::I32 => "int32",
        DType::U8 => "uint8",
        DType::I8 => "int8",
        other => return format!("tensor({other})"),
    };
    format!("tensor({name})")
}

/// A fed array, borrowed read-only for the run.
enum Fed<'py> {
    F32(PyReadonlyArrayDyn<'py, f32>),
    F64(PyReadonlyArrayDyn<'py, f64>),
    I64(PyReadonlyArrayDyn<'py, i64>),
    I32(PyReadonlyArrayDyn<'py, i32>),
    U8(PyReadonlyArrayDyn<'py, u8>),
    I8(PyReadonlyArrayDyn<'py, i8>),
}

impl Fed<'_> {
    fn tensor_ref(&self) -> PyResult<TensorRef<'_>> {
        let contiguous = |e| effc_err(format!("an input is not contiguous after copying: {e}"));
        Ok(match self {
            Fed::F32(a) => TensorRef::F32(a.as_slice().map_err(contiguous)?),
            Fed::F64(a) => TensorRef::F64(a.as_slice().map_err(contiguous)?),
            Fed::I64(a) => TensorRef::I64(a.as_slice().map_err(contiguous)?),
            Fed::I32(a) => TensorRef::I32(a.as_slice().map_err(contiguous)?),
            Fed::U8(a) => TensorRef::U8(a.as_slice().map_err(contiguous)?),
            Fed::I8(a) => TensorRef::I8(a.as_slice().map_err(contiguous)?),
        })
    }

    fn to_tensor(&self, shape: &[usize]) -> PyResult<Tensor> {
        let data = match self {
            Fed::F32(a) => TensorData::F32(a.as_array().iter().copied().collect()),
            Fed::F64(a) => TensorData::F64(a.as_array().iter().copied().collect()),
            Fed::I64(a) => TensorData::I64(a.as_array().iter().copied().collect()),
            Fed::I32(a) => TensorData::I32(a.as_array().iter().copied().collect()),
            Fed::U8(a) => TensorData::U8(a.as_array().iter().copied().collect()),
            Fed::I8(a) => TensorData::I8(a.as_array().iter().copied().collect()),
        };
        Tensor::new(shape.to_vec(), data).map_err(effc_err)
    }
}

/// An output array, borrowed writable for the run.
enum Out<'py> {
    F32(PyReadwriteArrayDyn<'py, f32>),
    F64(PyReadwriteArrayDyn<'py, f64>),
    I64(PyReadwriteArrayDyn<'py, i64>),
    I32(PyReadwriteArrayDyn<'py, i32>),
    U8(PyReadwriteArrayDyn<'py, u8>),
    I8(PyReadwriteArrayDyn<'py, i8>),
}

impl<'py> Out<'py> {
    fn new(py: Python<'py>, info: &effc::IoInfo) -> PyResult<Self> {
        let shape = info.shape.as_slice();
        Ok(match info.dtype {
            DType::F32 => Out::F32(PyArrayDyn::<f32>::zeros(py, shape, false).readwrite()),
            DType::F64 => Out::F64(PyArrayDyn::<f64>::zeros(py, shape, false).readwrite()),
            DType::I64 => Out::I64(PyArrayDyn::<i64>::zeros(py, shape, false).readwrite()),
            DType::I32 => Out::I32(PyArrayDyn::<i32>::zeros(py, shape, false).readwrite()),
            DType::U8 => Out::U8(PyArrayDyn::<u8>::zeros(py, shape, false).readwrite()),
            DType::I8 => Out::I8(PyArrayDyn::<i8>::zeros(py, shape, false).readwrite()),
            other => return Err(effc_err(format!("output '{}': {other} outputs are not supported", info.name))),
        })
    }

    fn tensor_mut(&mut self) -> PyResult<TensorMut<'_>> {
        let fresh = |e| effc_err(format!("a new output array is not contiguous: {e}"));
        Ok(match self {
            Out::F32(a) => TensorMut::F32(a.as_slice_mut().map_err(fresh)?),
            Out::F64(a) => TensorMut::F64(a.as_slice_mut().map_err(fresh)?),
            Out::I64(a) => TensorMut::I64(a.as_slice_mut().map_err(fresh)?),
            Out::I32(a) => TensorMut::I32(a.as_slice_mut().map_err(fresh)?),
            Out::U8(a) => TensorMut::U8(a.as_slice_mut().map_err(fresh)?),
            Out::I8(a) => TensorMut::I8(a.as_slice_mut().map_err(fresh)?),
        })
    }

    fn array(&self) -> Bound<'py, PyAny> {
        match self {
            Out::F32(a) => a.as_any().clone(),
            Out::F64(a) => a.as_any().clone(),
            Out::I64(a) => a.as_any().clone(),
            Out::I32(a) => a.as_any().clone(),
            Out::U8(a) => a.as_any().clone(),
            Out::I8(a) => a.as_any().clone(),
        }
    }
}

/// onnxruntime's `InferenceSession`, running effc.
#[pyclass(module = "effc", frozen)]
struct InferenceSession {
    model: Arc<effc::Model>,
    team: Option<effc::Team>,
}

#[pymethods]
impl InferenceSession {
    /// Loads and compiles a model from a path or from bytes. `providers` and
    /// `provider_options` are accepted for onnxruntime's signature and ignored.
    #[new]
    #[pyo3(signature = (path_or_bytes, sess_options=None, providers=None, provider_options=None, **kwargs))]
    fn new(
        py: Python<'_>,
        path_or_bytes: &Bound<'_, PyAny>,
        sess_options: Option<SessionOptions>,
        providers: Option<&Bound<'_, PyAny>>,
        provider_options: Option<&Bound<'_, PyAny>>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let _ = (providers, provider_options, kwargs);
        let so = sess_options.unwrap_or_else(SessionOptions::new);
        let opts = so.options()?;
        let model = if let Ok(bytes) = path_or_bytes.cast::<PyBytes>() {
            let bytes = bytes.as_bytes().to_vec();
            py.detach(|| effc::Model::from_bytes(bytes, None, &opts))
        } else {
            let path: PathBuf = path_or_bytes.extract().map_err(|_| {
                EffcError::new_err(format!(
                    "InferenceSession takes a path or bytes, not {}",
                    path_or_bytes.get_type().name().map(|n| n.to_string()).unwrap_or_default()
                ))
            })?;
            py.detach(|| effc::Model::load(&path, &opts))
        }
        .map_err(effc_err)?;
        let threads = so.intra_op_num_threads.max(1);
        Ok(InferenceSession { model: Arc::new(model), team: (threads > 1).then(|| effc::Team::new(threads)) })
    }

    fn get_inputs(&self) -> Vec<NodeArg> {
        self.model.inputs().iter().map(NodeArg::of).collect()
    }

    fn get_outputs(&self) -> Vec<NodeArg> {
        self.model.outputs().iter().map(NodeArg::of).collect()
    }

    fn get_providers(&self) -> Vec<String> {
        vec!["effc".into()]
    }

    /// Runs on `input_feed` ({name: numpy array}); returns the outputs `output_names` names
    /// (all of them for None), in that order. The GIL is released while it runs.
    #[pyo3(signature = (output_names, input_feed, run_options=None))]
    fn run<'py>(
        &self,
        py: Python<'py>,
        output_names: Option<Vec<String>>,
        input_feed: &Bound<'py, PyDict>,
        run_options: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let _ = run_options;
        let picked = self.output_indices(output_names.as_deref())?;
        let (fed, shapes) = self.feed(py, input_feed)?;
        let shape_refs: Vec<&[usize]> = shapes.iter().map(Vec::as_slice).collect();
        let model = &self.model;
        let spec = py.detach(|| model.specialise(&shape_refs)).map_err(effc_err)?;
        let mut outs = spec.compiled.outputs().iter().map(|info| Out::new(py, info)).collect::<PyResult<Vec<_>>>()?;
        let inputs = fed.iter().map(Fed::tensor_ref).collect::<PyResult<Vec<_>>>()?;
        let mut outputs = outs.iter_mut().map(Out::tensor_mut).collect::<PyResult<Vec<_>>>()?;
        let team = self.team.as_ref();
        py.detach(|| spec.compiled.run_into_with(team, &inputs, &mut outputs)).map_err(effc_err)?;
        drop(outputs);
        Ok(picked.into_iter().map(|i| outs[i].array()).collect())
    }

    /// Runs `runs` times on `input_feed` and returns each fused op's time per run in
    /// milliseconds, slowest first: `[(name, ms), ...]` (what `effc bench --profile` prints).
    #[pyo3(signature = (input_feed, runs=10))]
    fn profile<'py>(
        &self,
        py: Python<'py>,
        input_feed: &Bound<'py, PyDict>,
        runs: usize,
    ) -> PyResult<Vec<(String, f64)>> {
        let (fed, shapes) = self.feed(py, input_feed)?;
        let tensors = fed.iter().zip(&shapes).map(|(f, s)| f.to_tensor(s)).collect::<PyResult<Vec<_>>>()?;
        let shape_refs: Vec<&[usize]> = shapes.iter().map(Vec::as_slice).collect();
        let (model, team, runs) = (&self.model, self.team.as_ref(), runs.max(1));
        let per_kernel = py
            .detach(|| model.specialise(&shape_refs).and_then(|s| s.compiled.profile_with(team, &tensors, runs)))
            .map_err(effc_err)?;
        let mut by_op: Vec<(String, f64)> = Vec::new();
        for (name, ms) in per_kernel {
            match by_op.iter_mut().find(|(n, _)| *n == name) {
                Some(e) => e.1 += ms / runs as f64,
                None => by_op.push((name, ms / runs as f64)),
            }
        }
        by_op.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(by_op)
    }
}

impl InferenceSession {
    /// Indices of the outputs named (all for None), refusing unknown names.
    fn output_indices(&self, names: Option<&[String]>) -> PyResult<Vec<usize>> {
        let outputs = self.model.outputs();
        let Some(names) = names.filter(|n| !n.is_empty()) else { return Ok((0..outputs.len()).collect()) };
        names
            .iter()
            .map(|name| {
                outputs.iter().position(|o| &o.name == name).ok_or_else(|| {
                    let all: Vec<&str> = outputs.iter().map(|o| o.name.as_str()).collect();
                    effc_err(format!("'{name}' is not an output of the model (outputs: {})", all.join(", ")))
                })
            })
            .collect()
    }

    /// The fed arrays in the model's input order, each checked for name and dtype and
    /// made C-contiguous (copied only if it was not), with their shapes.
    fn feed<'py>(
        &self,
        py: Python<'py>,
        input_feed: &Bound<'py, PyDict>,
    ) -> PyResult<(Vec<Fed<'py>>, Vec<Vec<usize>>)> {
        let inputs = self.model.inputs();
        let names = || inputs.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(", ");
        for key in input_feed.keys() {
            let key: String = key.extract()?;
            if !inputs.iter().any(|i| i.name == key) {
                return Err(effc_err(format!("'{key}' is not an input of the model (inputs: {})", names())));
            }
        }
        let numpy = py.import("numpy")?;
        let mut fed = Vec::with_capacity(inputs.len());
        let mut shapes = Vec::with_capacity(inputs.len());
        for input in inputs {
            let name = &input.name;
            let value = input_feed
                .get_item(name)?
                .ok_or_else(|| effc_err(format!("input '{name}' is missing (inputs: {})", names())))?;
            let array = value.cast::<PyUntypedArray>().map_err(|_| {
                let ty = value.get_type().name().map(|n| n.to_string()).unwrap_or_default();
                effc_err(format!("input '{name}': expected a numpy array, got {ty}"))
            })?;
            let array = if array.is_c_contiguous() {
                array.clone()
            } else {
                numpy.call_method1("ascontiguousarray", (array,))?.cast_into::<PyUntypedArray>()?
            };
            let wrong_dtype = || {
                let got = array.dtype().str().map(|s| s.to_string()).unwrap_or_default();
                effc_err(format!(
                    "input '{name}': expected {} data, got a numpy array of {got}",
                    onnx_type(input.dtype)
                ))
            };
            shapes.push(array.shape().to_vec());
            fed.push(match input.dtype {
                DType::F32 => Fed::F32(array.cast::<PyArrayDyn<f32>>().map_err(|_| wrong_dtype())?.readonly()),
                DType::F64 => Fed::F64(array.cast::<PyArrayDyn<f64>>().map_err(|_| wrong_dtype())?.readonly()),
                DType::I64 => Fed::I64(array.cast::<PyArrayDyn<i64>>().map_err(|_| wrong_dtype())?.readonly()),
                DType::I32 => Fed::I32(array.cast::<PyArrayDyn<i32>>().map_err(|_| wrong_dtype())?.readonly()),
                DType::U8 => Fed::U8(array.cast::<PyArrayDyn<u8>>().map_err(|_| wrong_dtype())?.readonly()),
                DType::I8 => Fed::I8(array.cast::<PyArrayDyn<i8>>().map_err(|_| wrong_dtype())?.readonly()),
                other => return Err(effc_err(format!("input '{name}': {other} inputs are not supported"))),
            });
        }
        Ok((fed, shapes))
    }
}

/// What `effc compile --json` prints for a model, as a dict.
#[pyfunction]
#[pyo3(signature = (path, kernels="auto"))]
fn compile_report<'py>(py: Python<'py>, path: PathBuf, kernels: &str) -> PyResult<Bound<'py, PyAny>> {
    let opts = effc::Options { kernels: kernels.parse().map_err(effc_err)?, keep_graph: false, ..Default::default() };
    let summary = py.detach(|| effc::compile_file(&path, &opts).map(|c| c.summary)).map_err(effc_err)?;
    let json = serde_json::to_string(&summary).map_err(effc_err)?;
    py.import("json")?.call_method1("loads", (json,))
}

#[pymodule]
fn _effc(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("EffcError", m.py().get_type::<EffcError>())?;
    m.add_class::<SessionOptions>()?;
    m.add_class::<NodeArg>()?;
    m.add_class::<InferenceSession>()?;
    m.add_function(wrap_pyfunction!(compile_report, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
