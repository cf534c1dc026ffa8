//! Compile-time evaluation of foldable ops on constant tensors.
//!
//! This is what makes the shape arithmetic that exporters emit (Shape → Gather → Div → Ceil →
//! ... → Pad) disappear: once its inputs are constant, each node is evaluated here and replaced
//! by its value. Float math runs in f64 and is rounded back to the tensor's dtype; integer
//! math runs in i64.

use crate::op::{self, Binary, Op, PadMode, Quantization, Reduce, ReduceKind, SliceAxis, Unary};
use crate::shape::broadcast;
use crate::tensor::checked_numel;
use crate::{DType, Error, Result, Tensor, TensorData, map_tensor_data};

/// Row-major strides of `shape`.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Calls `f(out_flat, out_coords)` for every element of `shape`, in row-major order.
fn for_each_index(shape: &[usize], mut f: impl FnMut(usize, &[usize])) {
    let n: usize = shape.iter().product();
    let mut coord = vec![0usize; shape.len()];
    for flat in 0..n {
        f(flat, &coord);
        for d in (0..shape.len()).rev() {
            coord[d] += 1;
            if coord[d] < shape[d] {
                break;
            }
            coord[d] = 0;
        }
    }
}

/// For each element of `out_shape`, the flat index of the element of `in_shape` that
/// broadcasts onto it.
pub fn broadcast_index(in_shape: &[usize], out_shape: &[usize]) -> Vec<usize> {
    let st = strides(in_shape);
    let off = out_shape.len() - in_shape.len();
    let mut idx = Vec::with_capacity(out_shape.iter().product());
    for_each_index(out_shape, |_, c| {
        let mut i = 0;
        for d in 0..in_shape.len() {
            if in_shape[d] != 1 {
                i += c[d + off] * st[d];
            }
        }
        idx.push(i);
    });
    idx
}

fn gather(t: &Tensor, idx: &[usize], shape: Vec<usize>) -> Result<Tensor> {
    let data = map_tensor_data!(t.data(), |s| idx.iter().map(|&i| s[i]).collect::<Vec<_>>());
    Tensor::new(shape, data)
}

/// Builds a tensor of `dtype` from f64 values (rounding/truncating as `as` does).
pub fn from_f64(dtype: DType, shape: Vec<usize>, v: Vec<f64>) -> Result<Tensor> {
    let data = match dtype {
        DType::F32 => TensorData::F32(v.iter().map(|&x| x as f32).collect()),
        DType::F64 => TensorData::F64(v.into()),
        DType::I64 => TensorData::I64(v.iter().map(|&x| x as i64).collect()),
        DType::I32 => TensorData::I32(v.iter().map(|&x| x as i32).collect()),
        DType::I8 => TensorData::I8(v.iter().map(|&x| x as i8).collect()),
        DType::U8 => TensorData::U8(v.iter().map(|&x| x as u8).collect()),
        DType::Bool => TensorData::Bool(v.iter().map(|&x| x != 0.0).collect()),
    };
    Tensor::new(shape, data)
}

/// Builds a tensor of an integer or bool `dtype` from i64 values (wrapping as `as` does).
fn from_i64(dtype: DType, shape: Vec<usize>, v: Vec<i64>) -> Result<Tensor> {
    let data = match dtype {
        DType::F32 => TensorData::F32(v.iter().map(|&x| x as f32).collect()),
        DType::F64 => TensorData::F64(v.iter().map(|&x| x as f64).collect()),
        DType::I64 => TensorData::I64(v.into()),
        DType::I32 => TensorData::I32(v.iter().map(|&x| x as i32).collect()),
        DType::I8 => TensorData::I8(v.iter().map(|&x| x as i8).collect()),
        DType::U8 => TensorData::U8(v.iter().map(|&x| x as u8).collect()),
        DType::Bool => TensorData::Bool(v.iter().map(|&x| x != 0).collect()),
    };
    Tensor::new(shape, data)
}

fn erf(x: f64) -> f64 {
    // Abramowitz–Stegun 7.1.26 is too coarse for f32 references; use the series/continued
    // fraction split, accurate to ~1e-15.
    if x.abs() < 2.5 {
        let mut sum = x;
        let mut term = x;
        let x2 = x * x;
        for n in 1..80 {
            term *= -x2 / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        let mut f = 0.0;
        for n in (1..60).rev() {
            f = (n as f64 / 2.0) / (x.abs() + f);
        }
        let erfc = (-x * x).exp() / ((x.abs() + f) * std::f64::consts::PI.sqrt());
        (1.0 - erfc).copysign(x)
    }
}

/// The float semantics of a unary op.
pub fn unary_f64(u: Unary, x: f64) -> f64 {
    match u {
        Unary::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        Unary::Relu => x.max(0.0),
        Unary::Tanh => x.tanh(),
        Unary::Exp => x.exp(),
        Unary::Log => x.ln(),
        Unary::Sqrt => x.sqrt(),
        Unary::Neg => -x,
        Unary::Abs => x.abs(),
        Unary::Ceil => x.ceil(),
        Unary::Floor => x.floor(),
        Unary::Round => x.round_ties_even(),
        Unary::Reciprocal => 1.0 / x,
        Unary::Softplus => {
            if x > 30.0 {
                x
            } else {
                x.exp().ln_1p()
            }
        }
        Unary::Softsign => x / (1.0 + x.abs()),
        Unary::Erf => erf(x),
        Unary::Not => (x == 0.0) as u8 as f64,
        Unary::Elu { alpha } => {
            if x < 0.0 {
                alpha as f64 * x.exp_m1()
            } else {
                x
            }
        }
        Unary::Selu { alpha, gamma } => {
            let y = if x <= 0.0 { alpha as f64 * x.exp_m1() } else { x };
            gamma as f64 * y
        }
        Unary::LeakyRelu { alpha } => {
            if x < 0.0 {
                alpha as f64 * x
            } else {
                x
            }
        }
        Unary::HardSigmoid { alpha, beta } => (alpha as f64 * x + beta as f64).clamp(0.0, 1.0),
        Unary::HardSwish => x * (x / 6.0 + 0.5).clamp(0.0, 1.0),
        Unary::Swish => x / (1.0 + (-x).exp()),
        // x·Φ(x) tends to 0 at −∞, where the formulas give −∞·0.
        Unary::Gelu { .. } if x == f64::NEG_INFINITY => -0.0,
        Unary::Gelu { tanh: false } => 0.5 * x * (1.0 + erf(x * std::f64::consts::FRAC_1_SQRT_2)),
        Unary::Gelu { tanh: true } => {
            let k = (2.0 / std::f64::consts::PI).sqrt();
            0.5 * x * (1.0 + (k * (x + 0.044715 * x * x * x)).tanh())
        }
        Unary::Clip { min, max } => {
            if x.is_nan() {
                x
            } else {
                x.max(min as f64).min(max as f64)
            }
        }
        // In f32, as QuantizeLinear and DequantizeLinear compute it.
        Unary::QuantizeDequantize { scale, zero_point, lo, hi } => {
            let x = x as f32;
            if x.is_nan() {
                x as f64
            } else {
                op::dequantize(op::quantize(x, scale, zero_point, (lo, hi)), scale, zero_point) as f64
            }
        }
        // Each step as the model's own ops compute it: the product in f32 (exact in f64,
        // then rounded by the snap's conversion), the sigmoid in f64 rounded to f32.
        Unary::QuantizedSwish { input, gate, output } => {
            let a = unary_f64(input.snap(), x);
            let g = unary_f64(gate.snap(), unary_f64(Unary::Sigmoid, a) as f32 as f64);
            unary_f64(output.snap(), a * g)
        }
        Unary::QuantizedSigmoid { input, output } => {
            let a = unary_f64(input.snap(), x);
            unary_f64(output.snap(), unary_f64(Unary::Sigmoid, a) as f32 as f64)
        }
    }
}

fn unary(u: Unary, x: &Tensor) -> Result<Tensor> {
    let shape = x.shape().to_vec();
    if x.dtype().is_float() {
        return from_f64(x.dtype(), shape, x.to_f64_vec().into_iter().map(|v| unary_f64(u, v)).collect());
    }
    let v = x.to_i64_vec()?;
    let out: Vec<i64> = match u {
        Unary::Neg => v.iter().map(|a| a.wrapping_neg()).collect(),
        Unary::Abs => v.iter().map(|a| a.wrapping_abs()).collect(),
        Unary::Relu => v.iter().map(|&a| a.max(0)).collect(),
        Unary::Ceil | Unary::Floor | Unary::Round => v,
        Unary::Not => v.iter().map(|&a| (a == 0) as i64).collect(),
        Unary::Clip { min, max } => v.iter().map(|&a| (a as f64).clamp(min as f64, max as f64) as i64).collect(),
        // Defined on floats only.
        Unary::Sigmoid
        | Unary::Tanh
        | Unary::Exp
        | Unary::Log
        | Unary::Sqrt
        | Unary::Reciprocal
        | Unary::Softplus
        | Unary::Softsign
        | Unary::Erf
        | Unary::Elu { .. }
        | Unary::Selu { .. }
        | Unary::LeakyRelu { .. }
        | Unary::HardSigmoid { .. }
        | Unary::HardSwish
        | Unary::Swish
        | Unary::Gelu { .. }
        | Unary::QuantizeDequantize { .. }
        | Unary::QuantizedSwish { .. }
        | Unary::QuantizedSigmoid { .. } => {
            return Err(Error::unsupported(format!("{} on {} constants", u.name(), x.dtype())));
        }
    };
    from_i64(x.dtype(), shape, out)
}

/// The float semantics of a binary op.
pub fn binary_f64(b: Binary, x: f64, y: f64) -> f64 {
    match b {
        Binary::Add => x + y,
        Binary::Sub => x - y,
        Binary::Mul => x * y,
        Binary::Div => x / y,
        Binary::Pow => x.powf(y),
        Binary::Max => {
            if x.is_nan() || y.is_nan() {
                f64::NAN
            } else {
                x.max(y)
            }
        }
        Binary::Min => {
            if x.is_nan() || y.is_nan() {
                f64::NAN
            } else {
                x.min(y)
            }
        }
        Binary::PRelu => {
            if x < 0.0 {
                x * y
            } else {
                x
            }
        }
        Binary::Mod { fmod: true } => x % y,
        Binary::Mod { fmod: false } => {
            let r = x % y;
            if r != 0.0 && (r < 0.0) != (y < 0.0) { r + y } else { r }
        }
        Binary::Equal => (x == y) as u8 as f64,
        Binary::Less => (x < y) as u8 as f64,
        Binary::Greater => (x > y) as u8 as f64,
        Binary::And => (x != 0.0 && y != 0.0) as u8 as f64,
        Binary::Or => (x != 0.0 || y != 0.0) as u8 as f64,
    }
}

fn binary_i64(b: Binary, x: i64, y: i64) -> Result<i64> {
    let div0 = || Error::invalid("integer division by zero in a constant expression");
    Ok(match b {
        Binary::Add => x.wrapping_add(y),
        Binary::Sub => x.wrapping_sub(y),
        Binary::Mul => x.wrapping_mul(y),
        Binary::Div => x.checked_div(y).ok_or_else(div0)?,
        Binary::Pow => {
            if y < 0 {
                (x as f64).powf(y as f64) as i64
            } else {
                x.wrapping_pow(y.min(u32::MAX as i64) as u32)
            }
        }
        Binary::Max => x.max(y),
        Binary::Min => x.min(y),
        Binary::PRelu => {
            if x < 0 {
                x.wrapping_mul(y)
            } else {
                x
            }
        }
        Binary::Mod { fmod: true } => x.checked_rem(y).ok_or_else(div0)?,
        Binary::Mod { fmod: false } => {
            let r = x.checked_rem(y).ok_or_else(div0)?;
            if r != 0 && (r < 0) != (y < 0) { r + y } else { r }
        }
        Binary::Equal => (x == y) as i64,
        Binary::Less => (x < y) as i64,
        Binary::Greater => (x > y) as i64,
        Binary::And => (x != 0 && y != 0) as i64,
        Binary::Or => (x != 0 || y != 0) as i64,
    })
}

fn binary(b: Binary, x: &Tensor, y: &Tensor) -> Result<Tensor> {
    let shape = broadcast(x.shape(), y.shape())?;
    let (ix, iy) = (broadcast_index(x.shape(), &shape), broadcast_index(y.shape(), &shape));
    let out_dtype = if b.yields_bool() { DType::Bool } else { x.dtype() };
    if x.dtype().is_float() {
        let (xv, yv) = (x.to_f64_vec(), y.to_f64_vec());
        let v = ix.iter().zip(&iy).map(|(&i, &j)| binary_f64(b, xv[i], yv[j])).collect();
        from_f64(out_dtype, shape, v)
    } else {
        let (xv, yv) = (x.to_i64_vec()?, y.to_i64_vec()?);
        let v = ix.iter().zip(&iy).map(|(&i, &j)| binary_i64(b, xv[i], yv[j])).collect::<Result<_>>()?;
        from_i64(out_dtype, shape, v)
    }
}

fn cast(x: &Tensor, to: DType) -> Result<Tensor> {
    let shape = x.shape().to_vec();
    if x.dtype().is_float() && !to.is_float() && to != DType::Bool {
        // Float to integer truncates toward zero; NaN becomes 0 (saturating `as`).
        from_f64(to, shape, x.to_f64_vec().into_iter().map(f64::trunc).collect())
    } else if x.dtype().is_float() {
        from_f64(to, shape, x.to_f64_vec())
    } else {
        from_i64(to, shape, x.to_i64_vec()?)
    }
}

fn transpose(x: &Tensor, perm: &[usize]) -> Result<Tensor> {
    let st = strides(x.shape());
    let out_shape: Vec<usize> = perm.iter().map(|&p| x.shape()[p]).collect();
    let mut idx = Vec::with_capacity(x.numel());
    for_each_index(&out_shape, |_, c| idx.push(c.iter().zip(perm).map(|(&ci, &p)| ci * st[p]).sum()));
    gather(x, &idx, out_shape)
}

fn slice(x: &Tensor, axes: &[SliceAxis], out_shape: Vec<usize>) -> Result<Tensor> {
    let st = strides(x.shape());
    let rank = x.shape().len();
    let mut start = vec![0isize; rank];
    let mut step = vec![1isize; rank];
    for a in axes {
        start[a.axis] = a.start as isize;
        step[a.axis] = a.step;
    }
    let mut idx = Vec::new();
    for_each_index(&out_shape, |_, c| {
        let i: isize = (0..rank).map(|d| (start[d] + c[d] as isize * step[d]) * st[d] as isize).sum();
        idx.push(i as usize);
    });
    gather(x, &idx, out_shape)
}

fn gather_op(x: &Tensor, indices: &Tensor, axis: usize) -> Result<Tensor> {
    let idx = indices.to_i64_vec()?;
    let dim = x.shape()[axis];
    let resolved = idx
        .iter()
        .map(|&i| {
            let j = if i < 0 { i + dim as i64 } else { i };
            if j < 0 || j >= dim as i64 {
                Err(Error::invalid(format!("Gather index {i} out of range for a dim of {dim}")))
            } else {
                Ok(j as usize)
            }
        })
        .collect::<Result<Vec<_>>>()?;
    let outer: usize = x.shape()[..axis].iter().product();
    let inner: usize = x.shape()[axis + 1..].iter().product();
    let mut src = Vec::with_capacity(outer * resolved.len() * inner);
    for o in 0..outer {
        for &r in &resolved {
            let base = (o * dim + r) * inner;
            src.extend(base..base + inner);
        }
    }
    let mut shape = x.shape()[..axis].to_vec();
    shape.extend_from_slice(indices.shape());
    shape.extend_from_slice(&x.shape()[axis + 1..]);
    gather(x, &src, shape)
}

fn concat(inputs: &[&Tensor], axis: usize, shape: Vec<usize>) -> Result<Tensor> {
    // Gather from a virtual tensor made of all inputs laid end to end.
    let outer: usize = shape[..axis].iter().product();
    let mut bases = Vec::new();
    let mut total = 0;
    for t in inputs {
        bases.push(total);
        total += t.numel();
    }
    let mut idx = Vec::with_capacity(total);
    for o in 0..outer {
        for (t, base) in inputs.iter().zip(&bases) {
            let chunk: usize = t.shape()[axis..].iter().product();
            idx.extend(base + o * chunk..base + (o + 1) * chunk);
        }
    }
    let joined = match inputs[0].data() {
        TensorData::F32(_) => TensorData::F32(inputs.iter().flat_map(|t| t.to_f32_vec()).collect()),
        _ if inputs[0].dtype().is_float() => TensorData::F64(inputs.iter().flat_map(|t| t.to_f64_vec()).collect()),
        _ => {
            let v: Vec<i64> = inputs.iter().map(|t| t.to_i64_vec()).collect::<Result<Vec<_>>>()?.concat();
            from_i64(inputs[0].dtype(), vec![v.len()], v)?.data().clone()
        }
    };
    let joined = cast(&Tensor::new(vec![total], joined)?, inputs[0].dtype())?;
    gather(&joined, &idx, shape)
}

fn pad(x: &Tensor, mode: PadMode, begin: &[usize], out_shape: Vec<usize>) -> Result<Tensor> {
    let st = strides(x.shape());
    let in_shape = x.shape();
    let mut idx: Vec<Option<usize>> = Vec::with_capacity(checked_numel(&out_shape)?);
    for_each_index(&out_shape, |_, c| {
        let mut flat = 0;
        for d in 0..c.len() {
            let (n, p) = (in_shape[d] as isize, c[d] as isize - begin[d] as isize);
            let src = match mode {
                PadMode::Constant(_) if p < 0 || p >= n => {
                    idx.push(None);
                    return;
                }
                PadMode::Constant(_) => p,
                PadMode::Edge => p.clamp(0, n - 1),
                PadMode::Reflect => {
                    let period = 2 * (n - 1).max(1);
                    let m = p.rem_euclid(period);
                    if m < n { m } else { period - m }
                }
            };
            flat += src as usize * st[d];
        }
        idx.push(Some(flat));
    });
    let fill = if let PadMode::Constant(v) = mode { v as f64 } else { 0.0 };
    let vals = x.to_f64_vec();
    if x.dtype().is_float() {
        from_f64(x.dtype(), out_shape, idx.iter().map(|i| i.map_or(fill, |i| vals[i])).collect())
    } else {
        let iv = x.to_i64_vec()?;
        from_i64(x.dtype(), out_shape, idx.iter().map(|i| i.map_or(fill as i64, |i| iv[i])).collect())
    }
}

fn reduce(x: &Tensor, r: &Reduce, out_shape: Vec<usize>) -> Result<Tensor> {
    let kept: Vec<usize> = (0..x.shape().len()).filter(|d| !r.axes.contains(d)).collect();
    let kept_shape: Vec<usize> = kept.iter().map(|&d| x.shape()[d]).collect();
    let kept_strides = strides(&kept_shape);
    let n_out: usize = kept_shape.iter().product();
    let count = (x.numel() / n_out.max(1)) as f64;
    let init = match r.kind {
        ReduceKind::Sum | ReduceKind::Mean => 0.0,
        ReduceKind::Prod => 1.0,
        ReduceKind::Max => f64::NEG_INFINITY,
        ReduceKind::Min => f64::INFINITY,
    };
    let mut acc = vec![init; n_out];
    let vals = x.to_f64_vec();
    for_each_index(x.shape(), |flat, c| {
        let o: usize = kept.iter().zip(&kept_strides).map(|(&d, &s)| c[d] * s).sum();
        let v = vals[flat];
        acc[o] = match r.kind {
            ReduceKind::Sum | ReduceKind::Mean => acc[o] + v,
            ReduceKind::Prod => acc[o] * v,
            ReduceKind::Max => acc[o].max(v),
            ReduceKind::Min => acc[o].min(v),
        };
    });
    if r.kind == ReduceKind::Mean {
        acc.iter_mut().for_each(|a| *a /= count);
    }
    from_f64(x.dtype(), out_shape, acc)
}

/// Per element of a tensor of `shape`, which of QuantizeLinear's (or DequantizeLinear's)
/// scales and zero points applies, with those as f32 and i32.
struct QuantParams {
    scales: Vec<f32>,
    zero_points: Vec<i32>,
    /// Elements per index of the axis (per-axis scales).
    inner: usize,
}

impl QuantParams {
    fn new(q: &Quantization, shape: &[usize], scale: &Tensor, zero_point: Option<&&Tensor>) -> Result<Self> {
        let scales = scale.to_f32_vec();
        let zero_points = match zero_point {
            Some(z) => z.to_i64_vec()?.into_iter().map(|v| v as i32).collect(),
            None => vec![0; scales.len()],
        };
        let inner = shape.get(q.axis + 1..).map_or(1, |s| s.iter().product());
        Ok(QuantParams { scales, zero_points, inner })
    }

    /// Scale and zero point of flat element `i`.
    fn at(&self, i: usize) -> (f32, i32) {
        let k = if self.scales.len() == 1 { 0 } else { (i / self.inner.max(1)) % self.scales.len() };
        (self.scales[k], self.zero_points[k])
    }
}

fn quantize_tensor(q: &Quantization, inputs: &[&Tensor]) -> Result<Tensor> {
    let x = inputs[0];
    let p = QuantParams::new(q, x.shape(), inputs[1], inputs.get(2))?;
    let range = q.dtype.quant_range().ok_or_else(|| Error::unsupported(format!("QuantizeLinear to {}", q.dtype)))?;
    let v = x
        .to_f32_vec()
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let (s, z) = p.at(i);
            op::quantize(v, s, z, range) as i64
        })
        .collect();
    from_i64(q.dtype, x.shape().to_vec(), v)
}

fn dequantize_tensor(q: &Quantization, inputs: &[&Tensor]) -> Result<Tensor> {
    let x = inputs[0];
    let p = QuantParams::new(q, x.shape(), inputs[1], inputs.get(2))?;
    let v = x
        .to_i64_vec()?
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let (s, z) = p.at(i);
            // int32 values (biases) need not fit an f32 exactly: ONNX converts, then scales.
            ((v - z as i64) as f32 * s) as f64
        })
        .collect();
    let out = from_f64(DType::F32, x.shape().to_vec(), v)?;
    // Weights quantized symmetrically (int8, zero point 0) may stay int8 in a backend.
    let zero_points_zero = inputs.get(2).is_none_or(|z| z.to_f64_vec().iter().all(|&v| v == 0.0));
    if x.dtype() == DType::I8 && zero_points_zero {
        let scales = inputs[1].to_f32_vec();
        let axis = if scales.len() == 1 { 0 } else { q.axis };
        return Ok(out.with_int8_origin(crate::tensor::Int8Origin { axis, scales }));
    }
    Ok(out)
}

/// Evaluates a foldable op. `out_shapes` are the inferred output shapes.
pub fn eval(op: &Op, inputs: &[&Tensor], out_shapes: &[Vec<usize>]) -> Result<Vec<Tensor>> {
    let x = inputs.first().copied().ok_or_else(|| Error::invalid("op has no inputs"))?;
    let shape0 = || out_shapes[0].clone();
    let out = match op {
        Op::Unary(u) => unary(*u, x)?,
        Op::Binary(b) => binary(*b, x, inputs[1])?,
        Op::Reshape { shape } => x.reshaped(shape.clone())?,
        Op::Transpose { perm } => transpose(x, perm)?,
        Op::Cast { to } => cast(x, *to)?,
        Op::Slice { axes } => slice(x, axes, shape0())?,
        Op::Gather { axis } => gather_op(x, inputs[1], *axis)?,
        Op::Concat { axis } => concat(inputs, *axis, shape0())?,
        Op::Tile { .. } | Op::Expand { .. } => {
            let out = shape0();
            let st = strides(x.shape());
            let off = out.len() - x.shape().len();
            let mut idx = Vec::new();
            for_each_index(&out, |_, c| {
                idx.push((0..x.shape().len()).map(|d| (c[d + off] % x.shape()[d]) * st[d]).sum());
            });
            gather(x, &idx, out)?
        }
        Op::Pad(p) => pad(x, p.mode, &p.begin, shape0())?,
        Op::Quantize(q) => quantize_tensor(q, inputs)?,
        Op::Dequantize(q) => dequantize_tensor(q, inputs)?,
        Op::Reduce(r) => reduce(x, r, shape0())?,
        Op::Where => {
            let (a, b) = (inputs[1], inputs[2]);
            let out = shape0();
            let (ic, ia, ib) =
                (broadcast_index(x.shape(), &out), broadcast_index(a.shape(), &out), broadcast_index(b.shape(), &out));
            let c = x.to_i64_vec()?;
            let (av, bv) = (a.to_f64_vec(), b.to_f64_vec());
            let v = (0..ic.len()).map(|k| if c[ic[k]] != 0 { av[ia[k]] } else { bv[ib[k]] }).collect();
            from_f64(a.dtype(), out, v)?
        }
        Op::Split { axis, sizes } => {
            let mut outs = Vec::new();
            let mut start = 0;
            for (k, &n) in sizes.iter().enumerate() {
                let a = SliceAxis { axis: *axis, start, step: 1, len: n };
                outs.push(slice(x, &[a], out_shapes[k].clone())?);
                start += n;
            }
            return Ok(outs);
        }
        // Not foldable (`Op::is_foldable`): the compute ops run in compiled code. Listed
        // one by one so that a new op must say which kind it is.
        Op::Input { .. }
        | Op::Const(_)
        | Op::Conv(_)
        | Op::BatchNorm { .. }
        | Op::Gemm(_)
        | Op::MatMul
        | Op::Pool(_)
        | Op::GlobalPool(_)
        | Op::Softmax { .. }
        | Op::SqueezeExcite(_)
        | Op::MbConv(_)
        | Op::FusedMbConv(_)
        | Op::Released => {
            return Err(Error::unsupported(format!("constant evaluation of {}", op.name())));
        }
    };
    Ok(vec![out])
}
