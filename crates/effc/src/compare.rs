//! How close two outputs are: the numbers `effc check` reports.

use serde::Serialize;

/// Agreement between an effc output and a reference output.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Comparison {
    /// Largest |effc − reference|.
    pub max_abs: f64,
    /// `max_abs` divided by the largest |reference|.
    pub max_rel: f64,
    /// Cosine similarity of the two outputs as vectors.
    pub cosine: f64,
    /// Same arg-max.
    pub top1_agree: bool,
    /// Same five largest elements, in the same order.
    pub top5_agree: bool,
    /// For an output a DequantizeLinear of one scale produces (an int8 model's): the
    /// difference in steps of that scale.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quanta: Option<Quanta>,
}

/// How far a quantized model's dequantized output is from the reference in quanta (its
/// DequantizeLinear's scale): engines round ties and requantize differently, so such an
/// output is judged in steps of its scale, not by relative error.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Quanta {
    pub quantum: f32,
    /// How many values are off by 0, 1, 2 and more than 2 quanta.
    pub off_by: [usize; 4],
    /// The largest difference, in quanta.
    pub max: u64,
}

impl Quanta {
    pub fn new(got: &[f32], want: &[f32], quantum: f32) -> Self {
        let (mut off_by, mut max) = ([0; 4], 0u64);
        for (&g, &w) in got.iter().zip(want) {
            let d = ((g as f64 - w as f64).abs() / quantum as f64).round();
            // NaN on one side counts as the largest difference.
            let steps = if d.is_nan() { u64::MAX } else { d as u64 };
            off_by[steps.min(3) as usize] += 1;
            max = max.max(steps);
        }
        Quanta { quantum, off_by, max }
    }

    /// Both sets of cases together.
    fn merge(self, other: Quanta) -> Quanta {
        let mut off_by = self.off_by;
        off_by.iter_mut().zip(other.off_by).for_each(|(a, b)| *a += b);
        Quanta { quantum: self.quantum, off_by, max: self.max.max(other.max) }
    }
}

/// Indices of the `k` largest values, largest first.
pub fn top_k(v: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&i, &j| v[j].total_cmp(&v[i]).then(i.cmp(&j)));
    idx.truncate(k);
    idx
}

/// How many images an output of `shape` holds: its first dim (the batch) when it has two
/// or more; one otherwise. Class rankings are per image.
pub fn images(shape: &[usize]) -> usize {
    if shape.len() >= 2 { shape[0] } else { 1 }
}

/// Whether `got` and `want` have the same arg-max and the same five largest, in order.
fn tops_agree(got: &[f32], want: &[f32]) -> (bool, bool) {
    let k = 5.min(got.len());
    (top_k(got, 1) == top_k(want, 1), top_k(got, k) == top_k(want, k))
}

impl Comparison {
    /// Like [`new`](Self::new) for an output of `shape`: top-1 and top-5 must agree for each
    /// image of the batch (see [`images`]), not over the whole flattened output, where the
    /// ranking mixes images.
    pub fn of_output(got: &[f32], want: &[f32], shape: &[usize]) -> Self {
        let mut c = Self::new(got, want);
        let images = images(shape);
        if images > 1 && got.len().is_multiple_of(images) {
            let per_image = got.len() / images;
            let each = got.chunks(per_image).zip(want.chunks(per_image)).map(|(g, w)| tops_agree(g, w));
            (c.top1_agree, c.top5_agree) = each.fold((true, true), |(a1, a5), (t1, t5)| (a1 && t1, a5 && t5));
        }
        c
    }

    pub fn new(got: &[f32], want: &[f32]) -> Self {
        assert_eq!(got.len(), want.len(), "compared outputs differ in size");
        let (mut max_abs, mut max_ref, mut dot, mut ng, mut nw) = (0f64, 0f64, 0f64, 0f64, 0f64);
        for (&g, &w) in got.iter().zip(want) {
            let (g, w) = (g as f64, w as f64);
            // The same NaN or infinity on both sides is agreement, and stays out of the
            // norms (where it would make every figure NaN).
            if !w.is_finite() && (g == w || (g.is_nan() && w.is_nan())) {
                continue;
            }
            let d = (g - w).abs();
            // NaN anywhere is a total mismatch.
            max_abs = if d.is_nan() { f64::INFINITY } else { max_abs.max(d) };
            max_ref = max_ref.max(w.abs());
            dot += g * w;
            ng += g * g;
            nw += w * w;
        }
        let max_rel = if max_ref > 0.0 { max_abs / max_ref } else { max_abs };
        let cosine = if ng > 0.0 && nw > 0.0 {
            dot / (ng.sqrt() * nw.sqrt())
        } else if ng == nw {
            1.0
        } else {
            0.0
        };
        let (top1_agree, top5_agree) = tops_agree(got, want);
        Comparison { max_abs, max_rel, cosine, top1_agree, top5_agree, quanta: None }
    }

    /// Adds the difference in quanta of `quantum` (an output's DequantizeLinear scale).
    pub fn with_quanta(mut self, got: &[f32], want: &[f32], quantum: Option<f32>) -> Self {
        self.quanta = quantum.map(|q| Quanta::new(got, want, q));
        self
    }

    /// The acceptance rule for a quantized output: within `max_quanta` everywhere and the
    /// same top-1 (quantized scores tie, so the order below it may differ).
    pub fn passes_quanta(&self, max_quanta: u64) -> bool {
        self.quanta.is_some_and(|q| q.max <= max_quanta) && self.top1_agree
    }

    /// The default acceptance rule: relative max error within `tolerance` and the same top-5.
    pub fn passes(&self, tolerance: f64) -> bool {
        self.max_rel <= tolerance && self.top5_agree
    }

    /// Keeps the worse of two comparisons, field by field.
    pub fn worst(self, other: Comparison) -> Comparison {
        Comparison {
            max_abs: self.max_abs.max(other.max_abs),
            max_rel: self.max_rel.max(other.max_rel),
            cosine: self.cosine.min(other.cosine),
            top1_agree: self.top1_agree && other.top1_agree,
            top5_agree: self.top5_agree && other.top5_agree,
            quanta: match (self.quanta, other.quanta) {
                (Some(a), Some(b)) => Some(a.merge(b)),
                (a, b) => a.or(b),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_comparison() {
        let want = [1.0, 4.0, 2.0, 8.0, 0.5, 3.0];
        let got = [1.0, 4.0, 2.5, 8.0, 0.5, 3.0];
        let c = Comparison::new(&got, &want);
        assert_eq!(c.max_abs, 0.5);
        assert_eq!(c.max_rel, 0.5 / 8.0);
        assert!(c.top1_agree && c.top5_agree);
        let swapped = [1.0, 2.0, 4.0, 8.0, 0.5, 3.0];
        let c = Comparison::new(&swapped, &want);
        assert!(c.top1_agree && !c.top5_agree);
        assert!(!c.passes(1e-4));
        assert_eq!(top_k(&want, 3), [3, 1, 5]);
        let same = Comparison::new(&want, &want);
        assert!((same.cosine - 1.0).abs() < 1e-12 && same.passes(0.0));
    }

    #[test]
    fn quanta_count_steps_of_the_scale() {
        let want = [0.0, 0.5, 1.0, 1.5, 2.0];
        let got = [0.0, 1.0, 1.0, 0.5, 4.0];
        let c = Comparison::new(&got, &want).with_quanta(&got, &want, Some(0.5));
        let q = c.quanta.unwrap();
        assert_eq!((q.off_by, q.max), ([2, 1, 1, 1], 4));
        assert!(c.passes_quanta(4) && !c.passes_quanta(3));
        let merged = c.clone().worst(c).quanta.unwrap();
        assert_eq!((merged.off_by, merged.max), ([4, 2, 2, 2], 4));
        assert_eq!(Quanta::new(&[f32::NAN], &[1.0], 0.5).max, u64::MAX);
    }

    /// A batch's rankings are compared per image: two images whose flattened arg-max
    /// agrees can still disagree inside the second image, and two that agree per image
    /// can have their flattened ranking differ where the images' scores interleave.
    #[test]
    fn batched_outputs_rank_per_image() {
        let want = [9.0, 1.0, 2.0, /* image 1 */ 3.0, 2.0, 1.0];
        let got = [9.0, 1.0, 2.0, /* image 1 */ 2.0, 3.0, 1.0];
        assert!(Comparison::new(&got, &want).top1_agree);
        assert!(!Comparison::of_output(&got, &want, &[2, 3]).top1_agree);
        let want = [5.0, 1.0, /* image 1 */ 5.0, 4.0];
        let got = [5.0, 1.0, /* image 1 */ 5.0001, 4.0];
        assert!(!Comparison::new(&got, &want).top1_agree, "the two images' maxima interleave");
        let c = Comparison::of_output(&got, &want, &[2, 2]);
        assert!(c.top1_agree && c.top5_agree);
        assert_eq!(c.max_abs, Comparison::new(&got, &want).max_abs);
        assert_eq!(images(&[1000]), 1);
    }

    /// The same NaN or infinity on both sides agrees (a negative BatchNorm variance gives
    /// NaN in every runtime); a NaN on one side only is a total mismatch.
    #[test]
    fn identical_non_finite_values_agree() {
        let want = [f32::NAN, 2.0, f32::INFINITY, 1.0];
        let c = Comparison::new(&[f32::NAN, 2.0, f32::INFINITY, 1.0], &want);
        assert_eq!((c.max_abs, c.max_rel), (0.0, 0.0));
        assert!((c.cosine - 1.0).abs() < 1e-12 && c.passes(0.0), "{c:?}");
        let c = Comparison::new(&[1.0, 2.0, f32::INFINITY, 1.0], &want);
        assert_eq!(c.max_abs, f64::INFINITY);
        let c = Comparison::new(&[f32::NAN, 2.0, f32::NEG_INFINITY, 1.0], &want);
        assert!(!c.passes(1e-4), "{c:?}");
    }
}
