use effc_ir::op::{Conv, Op};
use effc_ir::{Graph, NodeId, Result, Tensor, ValueRef};

use super::squeeze_excite::conv_params;
use super::util::{nodes_in_order, single_use};
use crate::Pass;

/// Merges a Split along channels → one conv per part → Concat of their outputs in order
/// into one conv, the way MixNet's exporters write its blocks:
/// - MixConv: each part a depthwise conv with its own odd kernel size (3×3, 5×5, 7×7,
///   9×9) and "same" padding. The merged depthwise conv takes the largest kernel, each
///   part's weights centred in it with zeros around (the zero taps read exactly the
///   pixels the smaller window would not);
/// - grouped 1×1 convs: each part maps its channels to its share of the output. The
///   merged weights are block-diagonal.
///
/// The merged conv computes the same values (the zero taps add exact zeros), loses the
/// Split and Concat copies, takes a BatchNorm after the Concat into its weights, and can
/// join an MBConv block like any depthwise or 1×1 conv.
pub struct MergeSplitConvs;

/// A part's conv, checked to be mergeable.
struct Part {
    conv: Conv,
    w: Tensor,
    b: Tensor,
    node: NodeId,
}

impl Pass for MergeSplitConvs {
    fn name(&self) -> &'static str {
        "merge-split-convs"
    }

    fn run(&self, g: &mut Graph) -> Result<usize> {
        let mut changes = 0;
        for id in nodes_in_order(g) {
            if !g.contains(id) || !matches!(g.node(id).op, Op::Concat { axis: 1 }) {
                continue;
            }
            let Some((split, parts)) = match_parts(g, id) else { continue };
            let Some(x) = g.input(split, 0) else { continue };
            let Some((conv, w, b)) = merge(&parts) else { continue };
            let out = ValueRef::new(id, 0);
            let info = g.value(out).clone();
            let name = g.node(id).name.clone();
            let w = g.add_const(format!("{name}::merged_w"), w);
            let b = g.add_const(format!("{name}::merged_b"), b);
            let merged = g.add_node(name, Op::Conv(conv), &[Some(x), Some(w), Some(b)], vec![info]);
            g.replace_uses(out, ValueRef::new(merged, 0));
            g.remove_node(id);
            for p in &parts {
                g.remove_node(p.node);
            }
            g.remove_node(split);
            changes += 1;
        }
        Ok(changes)
    }
}

/// The Split and the parts' convs behind Concat `concat`, if every Concat input is the
/// single-use output of a conv of constant weights without residual, reading Split output
/// i (single-use) for input i.
fn match_parts(g: &Graph, concat: NodeId) -> Option<(NodeId, Vec<Part>)> {
    let inputs = g.inputs(concat);
    let mut split = None;
    let mut parts = Vec::with_capacity(inputs.len());
    for (i, v) in inputs.iter().enumerate() {
        let v = (*v)?;
        let Op::Conv(conv) = &g.node(v.node).op else { return None };
        if !single_use(g, v) || g.input(v.node, 3).is_some() || conv.kernel.len() != 2 {
            return None;
        }
        let x = g.input(v.node, 0)?;
        let Op::Split { axis: 1, sizes } = &g.node(x.node).op else { return None };
        if x.port != i || sizes.len() != inputs.len() || !single_use(g, x) || *split.get_or_insert(x.node) != x.node {
            return None;
        }
        let (w, b) = conv_params(g, v.node)?;
        parts.push(Part { conv: conv.clone(), w, b, node: v.node });
    }
    Some((split?, parts))
}

/// The merged conv, weights and bias of `parts`, if they merge: all depthwise with odd
/// kernels whose padding is "same" up to one common offset, or all 1×1 dense; the same
/// strides, unit dilations and the same activation.
fn merge(parts: &[Part]) -> Option<(Conv, Tensor, Tensor)> {
    let first = &parts.first()?.conv;
    let alike = |c: &Conv| c.strides == first.strides && c.act == first.act && c.dilations.iter().all(|&d| d == 1);
    if !parts.iter().all(|p| alike(&p.conv)) {
        return None;
    }
    // (out channels, in channels) of each part.
    let dims: Vec<(usize, usize)> =
        parts.iter().map(|p| Some((*p.w.shape().first()?, *p.w.shape().get(1)?))).collect::<Option<_>>()?;
    let depthwise = parts.iter().zip(&dims).all(|(p, &(m, ic))| ic == 1 && p.conv.group == m);
    let pointwise =
        parts.iter().all(|p| p.conv.group == 1 && p.conv.kernel == [1, 1] && p.conv.pads_begin.iter().all(|&x| x == 0));
    let (m_total, c_total) = dims.iter().fold((0, 0), |(m, c), &(pm, pc)| (m + pm, c + pc));
    let bias: Vec<f32> = parts.iter().flat_map(|p| p.b.to_f32_vec()).collect();
    if bias.len() != m_total {
        return None;
    }
    let bias = Tensor::from_f32(vec![m_total], bias).ok()?;
    if depthwise {
        merge_depthwise(parts, m_total, first).map(|(conv, w)| (conv, w, bias))
    } else if pointwise && parts.iter().all(|p| p.conv.pads_end.iter().all(|&x| x == 0)) {
        // Block-diagonal [M, C, 1, 1]: part i maps its input channels to its outputs.
        let mut w = vec![0.0f32; m_total * c_total];
        let (mut m0, mut c0) = (0, 0);
        for (p, &(m, c)) in parts.iter().zip(&dims) {
            let pw = p.w.to_f32_vec();
            for o in 0..m {
                let row = (m0 + o) * c_total + c0;
                w.get_mut(row..row + c)?.copy_from_slice(pw.get(o * c..(o + 1) * c)?);
            }
            (m0, c0) = (m0 + m, c0 + c);
        }
        let w = Tensor::from_f32(vec![m_total, c_total, 1, 1], w).ok()?;
        Some((Conv { group: 1, ..first.clone() }, w, bias))
    } else {
        None
    }
}

/// Depthwise parts as one depthwise conv of the largest kernel: part i's k×k weights sit
/// at offset ((K − k)/2, …) of each channel's K×K window. That reads the pixels part i
/// reads when each part's padding exceeds half its kernel by the same amount in every
/// part (symmetric "same" padding, or TF's "same" padding of a strided conv).
fn merge_depthwise(parts: &[Part], channels: usize, first: &Conv) -> Option<(Conv, Tensor)> {
    let kernel = |p: &Part, d: usize| p.conv.kernel.get(d).copied();
    let big: Vec<usize> =
        (0..2).map(|d| parts.iter().filter_map(|p| kernel(p, d)).max()).collect::<Option<Vec<_>>>()?;
    // The padding beyond half the kernel, per dim and side, must agree across parts.
    let excess = |p: &Part, d: usize, pads: &[usize]| -> Option<isize> {
        let k = kernel(p, d)?;
        (k % 2 == 1).then_some(*pads.get(d)? as isize - (k / 2) as isize)
    };
    let mut pads_begin = vec![0; 2];
    let mut pads_end = vec![0; 2];
    for d in 0..2 {
        let begin: Vec<isize> = parts.iter().map(|p| excess(p, d, &p.conv.pads_begin)).collect::<Option<_>>()?;
        let end: Vec<isize> = parts.iter().map(|p| excess(p, d, &p.conv.pads_end)).collect::<Option<_>>()?;
        let (&b0, &e0) = (begin.first()?, end.first()?);
        if begin.iter().any(|&b| b != b0) || end.iter().any(|&e| e != e0) {
            return None;
        }
        let half = (*big.get(d)? / 2) as isize;
        *pads_begin.get_mut(d)? = usize::try_from(half + b0).ok()?;
        *pads_end.get_mut(d)? = usize::try_from(half + e0).ok()?;
    }
    let (kh, kw) = (*big.first()?, *big.get(1)?);
    let mut w = vec![0.0f32; channels * kh * kw];
    let mut c0 = 0;
    for p in parts {
        let (ph, pw) = (kernel(p, 0)?, kernel(p, 1)?);
        let (oh, ow) = ((kh - ph) / 2, (kw - pw) / 2);
        let pwv = p.w.to_f32_vec();
        let m = *p.w.shape().first()?;
        for c in 0..m {
            for i in 0..ph {
                let src = (c * ph + i) * pw;
                let dst = ((c0 + c) * kh + oh + i) * kw + ow;
                w.get_mut(dst..dst + pw)?.copy_from_slice(pwv.get(src..src + pw)?);
            }
        }
        c0 += m;
    }
    let conv = Conv { kernel: big, pads_begin, pads_end, group: channels, ..first.clone() };
    Some((conv, Tensor::from_f32(vec![channels, 1, kh, kw], w).ok()?))
}
