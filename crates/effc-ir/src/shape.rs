//! Static shape and dtype inference for every op.

use crate::op::{Binary, Conv, Op, Pool, Quantization, Unary};
use crate::tensor::checked_numel;
use crate::{DType, Error, Result, ValueInfo};

pub type OutType = (DType, Vec<usize>);

/// Numpy broadcasting of two shapes.
pub fn broadcast(a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let da = if i + a.len() >= rank { a[i + a.len() - rank] } else { 1 };
        let db = if i + b.len() >= rank { b[i + b.len() - rank] } else { 1 };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return Err(Error::shape(format!("shapes {a:?} and {b:?} do not broadcast")));
            }
        };
    }
    Ok(out)
}

/// Output size of a sliding window along one dim, by ONNX's formula: ⌊(padded − span) /
/// stride⌋ + 1, or ⌈…⌉ + 1 in ceil mode, where a last window that would start past the
/// input and its left padding is dropped. In ceil mode a window wider than the padded
/// input still gives one output when it overhangs by less than a stride (onnxruntime
/// averages what it covers); an empty output is an error.
pub fn window_out(
    input: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    pad_begin: usize,
    pad_end: usize,
    ceil_mode: bool,
) -> Result<usize> {
    if kernel == 0 || stride == 0 || dilation == 0 {
        return Err(Error::shape("kernel, stride and dilation must be positive"));
    }
    let span = dilation
        .checked_mul(kernel - 1)
        .and_then(|x| x.checked_add(1))
        .ok_or_else(|| Error::shape("kernel span overflows"))?;
    let padded = input
        .checked_add(pad_begin)
        .and_then(|x| x.checked_add(pad_end))
        .ok_or_else(|| Error::shape("padded size overflows"))?;
    let mut out = match padded.checked_sub(span) {
        Some(room) if ceil_mode => room.div_ceil(stride) + 1,
        Some(room) => room / stride + 1,
        // (padded − span) / stride + 1 is in (0, 1): rounds up to 1, down to 0.
        None if ceil_mode && span - padded < stride => 1,
        None => 0,
    };
    // The last window must start inside the input or its left padding.
    if ceil_mode && out > 0 && (out - 1).saturating_mul(stride) >= input + pad_begin {
        out -= 1;
    }
    if out == 0 {
        return Err(Error::shape(format!(
            "kernel span {span} is larger than the padded input {padded}: the output would be empty"
        )));
    }
    Ok(out)
}

fn need<'a>(inputs: &[Option<&'a ValueInfo>], i: usize, op: &Op) -> Result<&'a ValueInfo> {
    inputs.get(i).copied().flatten().ok_or_else(|| Error::invalid(format!("{} is missing input {i}", op.name())))
}

/// The output shape of `conv` on an input of shape `x` with weights of shape `w`.
pub fn conv_shape(conv: &Conv, x: &[usize], w: &[usize]) -> Result<Vec<usize>> {
    let info = |shape: &[usize]| ValueInfo { name: String::new(), dtype: DType::F32, shape: shape.to_vec() };
    conv_out(conv, &info(x), &info(w), None)
}

/// What a block's leading depthwise conv (if any) makes of its input `x`.
fn start_output(start: Option<&crate::op::StartDepthwise>, x: &ValueInfo) -> Result<Option<ValueInfo>> {
    let Some(s) = start else { return Ok(None) };
    if s.conv.group != x.shape.get(1).copied().unwrap_or(0) || s.b.numel() != s.conv.group {
        return Err(Error::shape(format!("a block's leading depthwise conv does not fit {:?}", x.shape)));
    }
    Ok(Some(ValueInfo { name: String::new(), dtype: x.dtype, shape: s.output_shape(&x.shape)? }))
}

fn conv_out(conv: &Conv, x: &ValueInfo, w: &ValueInfo, bias: Option<&ValueInfo>) -> Result<Vec<usize>> {
    let spatial = conv.kernel.len();
    if x.shape.len() != spatial + 2 || w.shape.len() != spatial + 2 {
        return Err(Error::shape(format!(
            "Conv with a {spatial}-D kernel needs rank-{} input and weight, got {:?} and {:?}",
            spatial + 2,
            x.shape,
            w.shape
        )));
    }
    let (c_in, m) = (x.shape[1], w.shape[0]);
    let g = conv.group;
    if g == 0 || c_in % g != 0 || m % g != 0 {
        return Err(Error::shape(format!("group {g} must divide the input channels {c_in} and output channels {m}")));
    }
    if w.shape[1] * g != c_in {
        return Err(Error::shape(format!(
            "weight {:?} expects {} input channels per group but the input has {c_in} channels in {g} groups",
            w.shape, w.shape[1]
        )));
    }
    if w.shape[2..] != conv.kernel[..] {
        return Err(Error::shape(format!("kernel_shape {:?} disagrees with weight shape {:?}", conv.kernel, w.shape)));
    }
    if let Some(b) = bias
        && b.shape != [m]
    {
        return Err(Error::shape(format!("bias shape {:?} should be [{m}]", b.shape)));
    }
    let mut out = vec![x.shape[0], m];
    for i in 0..spatial {
        out.push(window_out(
            x.shape[i + 2],
            conv.kernel[i],
            conv.strides[i],
            conv.dilations[i],
            conv.pads_begin[i],
            conv.pads_end[i],
            false,
        )?);
    }
    Ok(out)
}

fn pool_out(p: &Pool, x: &ValueInfo) -> Result<Vec<usize>> {
    let spatial = p.kernel.len();
    if x.shape.len() != spatial + 2 {
        return Err(Error::shape(format!("a {spatial}-D pool needs a rank-{} input, got {:?}", spatial + 2, x.shape)));
    }
    let mut out = x.shape[..2].to_vec();
    for i in 0..spatial {
        if p.pads_begin[i] >= p.kernel[i] || p.pads_end[i] >= p.kernel[i] {
            return Err(Error::shape("pool padding must be smaller than the kernel"));
        }
        out.push(window_out(
            x.shape[i + 2],
            p.kernel[i],
            p.strides[i],
            p.dilations[i],
            p.pads_begin[i],
            p.pads_end[i],
            p.ceil_mode,
        )?);
    }
    Ok(out)
}

fn matmul_out(a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    if a.is_empty() || b.is_empty() {
        return Err(Error::shape("MatMul operands must have rank >= 1"));
    }
    let a2: Vec<usize> = if a.len() == 1 { vec![1, a[0]] } else { a.to_vec() };
    let b2: Vec<usize> = if b.len() == 1 { vec![b[0], 1] } else { b.to_vec() };
    let (k1, k2) = (a2[a2.len() - 1], b2[b2.len() - 2]);
    if k1 != k2 {
        return Err(Error::shape(format!("MatMul inner dims differ: {a:?} x {b:?}")));
    }
    let mut out = broadcast(&a2[..a2.len() - 2], &b2[..b2.len() - 2])?;
    if a.len() > 1 {
        out.push(a2[a2.len() - 2]);
    }
    if b.len() > 1 {
        out.push(b2[b2.len() - 1]);
    }
    Ok(out)
}

/// Checks QuantizeLinear's or DequantizeLinear's scale and zero point against x (inputs 1
/// and 2): one value for the whole tensor, or one per index of `q.axis`, the zero point
/// shaped like the scale and of the quantized dtype. Returns the scale's dtype.
fn quantization_params(q: &Quantization, x: &ValueInfo, inputs: &[Option<&ValueInfo>]) -> Result<DType> {
    let scale = inputs.get(1).copied().flatten().ok_or_else(|| Error::invalid("the scale (input 1) is missing"))?;
    if scale.dtype != DType::F32 {
        return Err(Error::unsupported(format!("a {} scale (effc computes in f32)", scale.dtype)));
    }
    let n = scale.numel();
    let per_axis = scale.shape.len() == 1 && x.shape.get(q.axis) == Some(&n);
    if n != 1 && !per_axis {
        return Err(Error::shape(format!(
            "a scale of shape {:?} fits neither the whole tensor nor axis {} of {:?}",
            scale.shape, q.axis, x.shape
        )));
    }
    if let Some(zp) = inputs.get(2).copied().flatten() {
        if zp.shape != scale.shape && !(zp.numel() == 1 && n == 1) {
            return Err(Error::shape(format!("zero point {:?} and scale {:?} differ in shape", zp.shape, scale.shape)));
        }
        if zp.dtype != q.dtype {
            return Err(Error::invalid(format!("a {} zero point for {} values", zp.dtype, q.dtype)));
        }
    }
    Ok(scale.dtype)
}

/// Infers the dtype and shape of every output of `op` from its inputs.
pub fn infer(op: &Op, inputs: &[Option<&ValueInfo>]) -> Result<Vec<OutType>> {
    let x = || need(inputs, 0, op);
    let same = |x: &ValueInfo| Ok(vec![(x.dtype, x.shape.clone())]);
    let out = match op {
        Op::Input { .. } => return Err(Error::invalid("inputs have no inferred type")),
        Op::Released => return Err(Error::invalid("a released node has no inferred type")),
        Op::Const(t) => vec![(t.dtype(), t.shape().to_vec())],
        Op::Conv(c) => {
            let (x, w) = (x()?, need(inputs, 1, op)?);
            let out = conv_out(c, x, w, inputs.get(2).copied().flatten())?;
            if let Some(r) = inputs.get(3).copied().flatten()
                && r.shape != out
            {
                return Err(Error::shape(format!("residual {:?} does not match conv output {out:?}", r.shape)));
            }
            vec![(x.dtype, out)]
        }
        Op::BatchNorm { .. } => {
            let x = x()?;
            if x.shape.len() < 2 {
                return Err(Error::shape(format!("BatchNormalization input {:?} has no channel dim", x.shape)));
            }
            for i in 1..5 {
                let p = need(inputs, i, op)?;
                if p.shape != [x.shape[1]] {
                    return Err(Error::shape(format!(
                        "BatchNormalization parameter {i} has shape {:?}, expected [{}]",
                        p.shape, x.shape[1]
                    )));
                }
            }
            return same(x);
        }
        Op::Unary(Unary::Not) => {
            let x = x()?;
            vec![(DType::Bool, x.shape.clone())]
        }
        Op::Unary(_) => return same(x()?),
        Op::Binary(b) => {
            let (x, y) = (x()?, need(inputs, 1, op)?);
            if x.dtype != y.dtype {
                return Err(Error::invalid(format!("{} mixes {} and {}", b.name(), x.dtype, y.dtype)));
            }
            let shape = if *b == Binary::PRelu {
                let s = broadcast(&x.shape, &y.shape)?;
                if s != x.shape {
                    return Err(Error::shape(format!(
                        "PRelu slope {:?} does not broadcast onto {:?}",
                        y.shape, x.shape
                    )));
                }
                s
            } else {
                broadcast(&x.shape, &y.shape)?
            };
            vec![(if b.yields_bool() { DType::Bool } else { x.dtype }, shape)]
        }
        Op::Gemm(g) => {
            let (a, b) = (x()?, need(inputs, 1, op)?);
            if a.shape.len() != 2 || b.shape.len() != 2 {
                return Err(Error::shape(format!("Gemm needs 2-D operands, got {:?} and {:?}", a.shape, b.shape)));
            }
            let (m, k) = if g.trans_a { (a.shape[1], a.shape[0]) } else { (a.shape[0], a.shape[1]) };
            let (k2, n) = if g.trans_b { (b.shape[1], b.shape[0]) } else { (b.shape[0], b.shape[1]) };
            if k != k2 {
                return Err(Error::shape(format!("Gemm inner dims differ: {:?} x {:?}", a.shape, b.shape)));
            }
            if let Some(c) = inputs.get(2).copied().flatten()
                && broadcast(&c.shape, &[m, n])? != [m, n]
            {
                return Err(Error::shape(format!("Gemm C {:?} does not broadcast to [{m}, {n}]", c.shape)));
            }
            vec![(a.dtype, vec![m, n])]
        }
        Op::MatMul => {
            let (a, b) = (x()?, need(inputs, 1, op)?);
            vec![(a.dtype, matmul_out(&a.shape, &b.shape)?)]
        }
        Op::Pool(p) => {
            let x = x()?;
            vec![(x.dtype, pool_out(p, x)?)]
        }
        Op::GlobalPool(_) => {
            let x = x()?;
            if x.shape.len() < 3 {
                return Err(Error::shape(format!("global pool needs spatial dims, got {:?}", x.shape)));
            }
            let mut s = x.shape[..2].to_vec();
            s.resize(x.shape.len(), 1);
            vec![(x.dtype, s)]
        }
        Op::Reduce(r) => {
            let x = x()?;
            if let Some(&a) = r.axes.iter().find(|&&a| a >= x.shape.len()) {
                return Err(Error::shape(format!("reduce axis {a} out of range for {:?}", x.shape)));
            }
            let mut s = Vec::new();
            for (i, &d) in x.shape.iter().enumerate() {
                if !r.axes.contains(&i) {
                    s.push(d);
                } else if r.keepdims {
                    s.push(1);
                }
            }
            vec![(x.dtype, s)]
        }
        Op::Reshape { shape } => {
            let x = x()?;
            if checked_numel(shape)? != x.numel() {
                return Err(Error::shape(format!("cannot reshape {:?} into {shape:?}", x.shape)));
            }
            vec![(x.dtype, shape.clone())]
        }
        Op::Transpose { perm } => {
            let x = x()?;
            let mut seen = vec![false; x.shape.len()];
            if perm.len() != x.shape.len()
                || perm.iter().any(|&p| p >= seen.len() || std::mem::replace(&mut seen[p], true))
            {
                return Err(Error::shape(format!("perm {perm:?} is not a permutation of {:?}", x.shape)));
            }
            vec![(x.dtype, perm.iter().map(|&p| x.shape[p]).collect())]
        }
        Op::Softmax { start, end, .. } => {
            let x = x()?;
            if start >= end || *end > x.shape.len() {
                return Err(Error::shape(format!("softmax axes {start}..{end} out of range for {:?}", x.shape)));
            }
            return same(x);
        }
        Op::Pad(p) => {
            let x = x()?;
            if p.begin.len() != x.shape.len() || p.end.len() != x.shape.len() {
                return Err(Error::shape(format!("pads for rank {} given for {:?}", p.begin.len(), x.shape)));
            }
            let mut s = Vec::with_capacity(x.shape.len());
            for i in 0..x.shape.len() {
                if !matches!(p.mode, crate::op::PadMode::Constant(_)) && x.shape[i] == 0 && p.begin[i] + p.end[i] > 0 {
                    return Err(Error::shape("cannot reflect or extend an empty dim"));
                }
                if matches!(p.mode, crate::op::PadMode::Reflect)
                    && (p.begin[i] >= x.shape[i] || p.end[i] >= x.shape[i])
                    && p.begin[i] + p.end[i] > 0
                {
                    return Err(Error::shape(format!(
                        "reflect pads {}/{} too large for dim {}",
                        p.begin[i], p.end[i], x.shape[i]
                    )));
                }
                s.push(
                    x.shape[i]
                        .checked_add(p.begin[i])
                        .and_then(|v| v.checked_add(p.end[i]))
                        .ok_or_else(|| Error::shape("padded size overflows"))?,
                );
            }
            vec![(x.dtype, s)]
        }
        Op::Concat { axis } => {
            let first = x()?;
            let mut s = first.shape.clone();
            if *axis >= s.len() {
                return Err(Error::shape(format!("concat axis {axis} out of range for {:?}", s)));
            }
            s[*axis] = 0;
            for i in 0..inputs.len() {
                let v = need(inputs, i, op)?;
                let ok = v.dtype == first.dtype
                    && v.shape.len() == first.shape.len()
                    && (0..s.len()).all(|d| d == *axis || v.shape[d] == first.shape[d]);
                if !ok {
                    return Err(Error::shape(format!(
                        "cannot concat {:?} with {:?} on axis {axis}",
                        first.shape, v.shape
                    )));
                }
                s[*axis] += v.shape[*axis];
            }
            vec![(first.dtype, s)]
        }
        Op::Split { axis, sizes } => {
            let x = x()?;
            if *axis >= x.shape.len() || sizes.iter().sum::<usize>() != x.shape[*axis] {
                return Err(Error::shape(format!("cannot split {:?} into {sizes:?} on axis {axis}", x.shape)));
            }
            sizes
                .iter()
                .map(|&n| {
                    let mut s = x.shape.clone();
                    s[*axis] = n;
                    (x.dtype, s)
                })
                .collect()
        }
        Op::Slice { axes } => {
            let x = x()?;
            let mut s = x.shape.clone();
            for a in axes {
                if a.axis >= s.len() {
                    return Err(Error::shape(format!("slice axis {} out of range", a.axis)));
                }
                if a.len > 0 {
                    let last = a.start as isize + a.step * (a.len as isize - 1);
                    if a.start >= s[a.axis] || last < 0 || last as usize >= s[a.axis] {
                        return Err(Error::shape("slice reads outside its input"));
                    }
                }
                s[a.axis] = a.len;
            }
            vec![(x.dtype, s)]
        }
        Op::Gather { axis } => {
            let (x, idx) = (x()?, need(inputs, 1, op)?);
            if *axis >= x.shape.len() {
                return Err(Error::shape(format!("gather axis {axis} out of range for {:?}", x.shape)));
            }
            if !matches!(idx.dtype, DType::I64 | DType::I32) {
                return Err(Error::invalid(format!("Gather indices must be integers, got {}", idx.dtype)));
            }
            let mut s = x.shape[..*axis].to_vec();
            s.extend_from_slice(&idx.shape);
            s.extend_from_slice(&x.shape[axis + 1..]);
            vec![(x.dtype, s)]
        }
        Op::Tile { repeats } => {
            let x = x()?;
            if repeats.len() != x.shape.len() {
                return Err(Error::shape(format!("Tile repeats {repeats:?} for rank {}", x.shape.len())));
            }
            let s = x
                .shape
                .iter()
                .zip(repeats)
                .map(|(&d, &r)| d.checked_mul(r).ok_or_else(|| Error::shape("tiled size overflows")))
                .collect::<Result<Vec<_>>>()?;
            checked_numel(&s)?;
            vec![(x.dtype, s)]
        }
        Op::Expand { shape } => {
            let x = x()?;
            vec![(x.dtype, broadcast(&x.shape, shape)?)]
        }
        Op::Cast { to } => vec![(*to, x()?.shape.clone())],
        Op::Quantize(q) => {
            let x = x()?;
            if !x.dtype.is_float() || q.dtype.quant_range().is_none() {
                return Err(Error::unsupported(format!(
                    "QuantizeLinear from {} to {} (effc quantizes f32 to uint8 and int8)",
                    x.dtype, q.dtype
                )));
            }
            quantization_params(q, x, inputs)?;
            vec![(q.dtype, x.shape.clone())]
        }
        Op::Dequantize(q) => {
            let x = x()?;
            if x.dtype != q.dtype || !matches!(x.dtype, DType::U8 | DType::I8 | DType::I32) {
                return Err(Error::unsupported(format!(
                    "DequantizeLinear of {} values (effc dequantizes uint8, int8 and int32)",
                    x.dtype
                )));
            }
            let scale = quantization_params(q, x, inputs)?;
            vec![(scale, x.shape.clone())]
        }
        Op::SqueezeExcite(se) => {
            let x = x()?;
            if x.shape.len() != 4 || se.reduce.inputs() != x.shape[1] || se.expand.outputs() != x.shape[1] {
                return Err(Error::shape(format!("squeeze-excite does not fit {:?}", x.shape)));
            }
            return same(x);
        }
        Op::MbConv(m) => {
            let block_input = x()?;
            let started = start_output(m.start.as_ref(), block_input)?;
            let x = started.as_ref().unwrap_or(block_input);
            let c_exp = m.dw_w.shape()[0];
            let in_ok = match &m.expand {
                Some(e) => e.inputs() == x.shape[1] && e.outputs() == c_exp,
                None => x.shape[1] == c_exp,
            };
            if x.shape.len() != 4 || !in_ok || m.project.inputs() != c_exp {
                return Err(Error::shape(format!("MBConv block does not fit {:?}", x.shape)));
            }
            let dw_in = ValueInfo {
                name: String::new(),
                dtype: x.dtype,
                shape: vec![x.shape[0], c_exp, x.shape[2], x.shape[3]],
            };
            let w = ValueInfo { name: String::new(), dtype: x.dtype, shape: m.dw_w.shape().to_vec() };
            let mut out = conv_out(&m.dw, &dw_in, &w, None)?;
            out[1] = m.project.outputs();
            if m.residual && out != block_input.shape {
                return Err(Error::shape("MBConv residual needs equal input and output shapes"));
            }
            vec![(x.dtype, out)]
        }
        Op::FusedMbConv(m) => {
            let block_input = x()?;
            let started = start_output(m.start.as_ref(), block_input)?;
            let x = started.as_ref().unwrap_or(block_input);
            let w = ValueInfo { name: String::new(), dtype: x.dtype, shape: m.expand_w.shape().to_vec() };
            let mut out = conv_out(&m.expand, x, &w, None)?;
            if m.expand.group != 1 || m.project.inputs() != m.expanded() || m.expand_b.numel() != m.expanded() {
                return Err(Error::shape(format!("Fused-MBConv block does not fit {:?}", x.shape)));
            }
            if let Some(c) = out.get_mut(1) {
                *c = m.project.outputs();
            }
            if m.residual && out != block_input.shape {
                return Err(Error::shape("Fused-MBConv residual needs equal input and output shapes"));
            }
            vec![(x.dtype, out)]
        }
        Op::Where => {
            let (c, a, b) = (x()?, need(inputs, 1, op)?, need(inputs, 2, op)?);
            if c.dtype != DType::Bool || a.dtype != b.dtype {
                return Err(Error::invalid("Where needs a bool condition and two values of one dtype"));
            }
            vec![(a.dtype, broadcast(&broadcast(&c.shape, &a.shape)?, &b.shape)?)]
        }
    };
    for (_, s) in &out {
        checked_numel(s)?;
    }
    Ok(out)
}
