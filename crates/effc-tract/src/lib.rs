//! tract as effc's reference: load a model with tract-onnx (pinned version), run it on the
//! same inputs, and return plain row-major f32 outputs.

use std::path::Path;

use anyhow::{Context, Result};
use tract_onnx::prelude::*;

/// A model loaded and optimised by tract, ready to run.
pub struct Reference {
    plan: std::sync::Arc<TypedRunnableModel>,
    input_shapes: Vec<Vec<usize>>,
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
        for (i, shape) in input_shapes.iter().enumerate() {
            // A static input fact: with a symbolic batch tract picks slower kernels.
            model = model.with_input_fact(i, f32::fact(shape).into())?;
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
        Ok(Reference { plan, input_shapes: input_shapes.to_vec(), output_names })
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

    /// Runs tract on row-major f32 inputs.
    pub fn run(&self, inputs: &[&[f32]]) -> Result<Vec<Output>> {
        let mut tv = TVec::new();
        for (data, shape) in inputs.iter().zip(&self.input_shapes) {
            let t = Tensor::from_shape(shape, data)?;
            tv.push(t.into_tvalue());
        }
        let outs = self.plan.run(tv)?;
        outs.iter()
            .map(|o| {
                let view = o.to_plain_array_view::<f32>()?;
                Ok(Output { shape: view.shape().to_vec(), data: view.iter().copied().collect() })
            })
            .collect()
    }
}
