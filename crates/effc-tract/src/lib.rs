//! tract as effc's reference: load a model with tract-onnx (pinned version), run it on the
//! same inputs, and return plain row-major f32 outputs. Inputs and outputs cross as f32
//! whatever the model declares (uint8 and int8 values are exact in f32).

use std::path::Path;

use anyhow::{Context, Result};
use tract_onnx::prelude::*;

/// A model loaded and optimised by tract, ready to run.
pub struct Reference {
    plan: std::sync::Arc<TypedRunnableModel>,
    input_shapes: Vec<Vec<usize>>,
    /// The model's declared input types, which `run` casts its f32 data to.
    input_types: Vec<DatumType>,
    /// Names of the outputs, in the order `run` returns them.
    pub output_names: Vec<String>,
}

/// A row-major f32 tensor as tract returns it.
#[derive(Clone, Debug)]
pub struct Output {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Reference {
    /// Loads `path` with the given (static) input shapes. `extra_outputs` names intermediate
    /// values to return after the model's own outputs, for layer-by-layer comparison.
    pub fn load(path: &Path, input_shapes: &[Vec<usize>], extra_outputs: &[String]) -> Result<Self> {
        let mut model =
            tract_onnx::onnx().model_for_path(path).with_context(|| format!("tract cannot load {}", path.display()))?;
        let mut input_types = Vec::new();
        for (i, shape) in input_shapes.iter().enumerate() {
            let declared = tract_onnx::tract_hir::infer::Factoid::concretize(&model.input_fact(i)?.datum_type)
                .unwrap_or(f32::datum_type());
            input_types.push(declared);
            // A static input fact: with a symbolic batch tract picks slower kernels.
            model = model.with_input_fact(i, declared.fact(shape).into())?;
        }
        let mut output_names: Vec<String> = model
            .output_outlets()?
            .iter()
            .map(|o| model.outlet_label(*o).map(str::to_string).unwrap_or_else(|| model.node(o.node).name.clone()))
            .collect();
        if !extra_outputs.is_empty() {
            output_names.extend(extra_outputs.iter().cloned());
            model.select_outputs_by_name(&output_names)?;
        }
        let plan = model.into_optimized()?.into_runnable()?;
        Ok(Reference { plan, input_shapes: input_shapes.to_vec(), input_types, output_names })
    }

    /// Like [`load`](Self::load), keeping only the `layers` tract knows by name (fusion in
    /// tract or effc may leave some names on one side only). Returns the kept names.
    pub fn load_with_layers(
        path: &Path,
        input_shapes: &[Vec<usize>],
        layers: &[String],
    ) -> Result<(Self, Vec<String>)> {
        let probe =
            tract_onnx::onnx().model_for_path(path).with_context(|| format!("tract cannot load {}", path.display()))?;
        let known: Vec<String> = layers
            .iter()
            .filter(|n| probe.find_outlet_label(n).is_some() || probe.node_by_name(n).is_ok())
            .cloned()
            .collect();
        Ok((Self::load(path, input_shapes, &known)?, known))
    }

    /// Runs tract on row-major inputs given as f32, cast to the declared types.
    pub fn run(&self, inputs: &[&[f32]]) -> Result<Vec<Output>> {
        let mut tv = TVec::new();
        for ((data, shape), &dt) in inputs.iter().zip(&self.input_shapes).zip(&self.input_types) {
            let t = Tensor::from_shape(shape, data)?.cast_to_dt(dt)?.into_owned();
            tv.push(t.into_tvalue());
        }
        let outs = self.plan.run(tv)?;
        outs.iter()
            .map(|o| {
                let o = o.cast_to::<f32>()?;
                let view = o.to_plain_array_view::<f32>()?;
                Ok(Output { shape: view.shape().to_vec(), data: view.iter().copied().collect() })
            })
            .collect()
    }
}
