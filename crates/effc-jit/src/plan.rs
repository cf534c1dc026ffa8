//! Arena planning: every intermediate tensor gets a byte offset in one arena, and tensors
//! whose lifetimes do not overlap share memory.

use crate::aligned::ALIGN;

/// A buffer needed from step `first` through step `last` (inclusive).
#[derive(Clone, Copy, Debug)]
pub struct Lifetime {
    pub bytes: usize,
    pub first: usize,
    pub last: usize,
}

/// Assigns offsets (greedy by size: largest first, each at the lowest offset that does not
/// collide with a placed buffer alive at the same time). Returns offsets and arena size.
pub fn assign(buffers: &[Lifetime]) -> (Vec<usize>, usize) {
    let mut order: Vec<usize> = (0..buffers.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(buffers[i].bytes), buffers[i].first));
    let mut offsets = vec![0usize; buffers.len()];
    let mut placed: Vec<usize> = Vec::new();
    let mut total = 0;
    for i in order {
        let b = buffers[i];
        let size = b.bytes.next_multiple_of(ALIGN).max(ALIGN);
        let mut busy: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&j| buffers[j].first <= b.last && b.first <= buffers[j].last)
            .map(|&j| (offsets[j], offsets[j] + buffers[j].bytes.next_multiple_of(ALIGN).max(ALIGN)))
            .collect();
        busy.sort_unstable();
        let mut at = 0;
        for (s, e) in busy {
            if at + size <= s {
                break;
            }
            at = at.max(e);
        }
        offsets[i] = at;
        total = total.max(at + size);
        placed.push(i);
    }
    (offsets, total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlaps(a: (usize, usize), b: (usize, usize)) -> bool {
        a.0 < b.1 && b.0 < a.1
    }

    #[test]
    fn live_buffers_never_share_bytes_and_dead_ones_do() {
        let bufs = [
            Lifetime { bytes: 1000, first: 0, last: 1 },
            Lifetime { bytes: 1000, first: 1, last: 2 },
            Lifetime { bytes: 1000, first: 2, last: 3 },
            Lifetime { bytes: 64, first: 0, last: 3 },
            Lifetime { bytes: 3000, first: 3, last: 4 },
        ];
        let (off, total) = assign(&bufs);
        for i in 0..bufs.len() {
            for j in 0..i {
                let (a, b) = (bufs[i], bufs[j]);
                if a.first <= b.last && b.first <= a.last {
                    let ra = (off[i], off[i] + a.bytes);
                    let rb = (off[j], off[j] + b.bytes);
                    assert!(!overlaps(ra, rb), "{i} and {j} overlap: {ra:?} {rb:?}");
                }
            }
        }
        // Buffers 0 and 2 are never alive together, so the arena is smaller than the sum.
        assert!(total < bufs.iter().map(|b| b.bytes.next_multiple_of(64)).sum::<usize>());
        assert_eq!(off.iter().zip(&bufs).map(|(o, b)| o + b.bytes).max().unwrap().next_multiple_of(64), total);
    }
}
