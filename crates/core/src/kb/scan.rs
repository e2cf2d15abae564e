//! Exact top-k by cosine similarity over a contiguous slab of unit vectors: a dot
//! product per row, written as fixed-width lane sums so the compiler vectorises it.
//! Vectors are stored normalised, so the dot product is the cosine.

/// `slab` holds `slab.len() / dim` vectors back to back. Returns (row, score), best first.
pub fn top_k(query: &[f32], slab: &[f32], dim: usize, k: usize) -> Vec<(usize, f32)> {
    if dim == 0 || query.len() != dim || k == 0 {
        return Vec::new();
    }
    let mut best: Vec<(usize, f32)> = Vec::with_capacity(k + 1);
    for (row, v) in slab.chunks_exact(dim).enumerate() {
        let score = dot(query, v);
        if best.len() < k || score > best[best.len() - 1].1 {
            let at = best.partition_point(|&(_, s)| s >= score);
            best.insert(at, (row, score));
            best.truncate(k);
        }
    }
    best
}

/// Eight independent accumulators: no loop-carried dependency, so LLVM emits SIMD.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 8;
    let mut acc = [0f32; LANES];
    let (ac, ar) = a.split_at(a.len() - a.len() % LANES);
    let (bc, br) = b.split_at(ac.len().min(b.len()));
    for (x, y) in ac.chunks_exact(LANES).zip(bc.chunks_exact(LANES)) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ar.iter().zip(br).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// Scales `v` to unit length (zero vectors stay zero).
pub fn normalise(v: &mut [f32]) {
    let norm = dot(v, v).sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_nearest_rows_in_order() {
        let dim = 19; // not a multiple of the lane width
        let mut slab = Vec::new();
        let mut seed: u32 = 12345;
        for _ in 0..100 {
            let mut v: Vec<f32> = (0..dim)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    (seed >> 16) as f32 / 65_536.0 - 0.5
                })
                .collect();
            normalise(&mut v);
            slab.extend(v);
        }
        let query = slab[42 * dim..43 * dim].to_vec();
        let top = top_k(&query, &slab, dim, 5);
        assert_eq!(top.len(), 5);
        assert_eq!(top[0].0, 42);
        assert!((top[0].1 - 1.0).abs() < 1e-5);
        assert!(top.windows(2).all(|w| w[0].1 >= w[1].1));
        // Brute force agrees on the scores.
        let mut all: Vec<f32> = slab.chunks_exact(dim).map(|v| dot(&query, v)).collect();
        all.sort_by(|a, b| b.total_cmp(a));
        for (i, (_, s)) in top.iter().enumerate() {
            assert!((s - all[i]).abs() < 1e-6);
        }
        assert!(top_k(&query, &slab, dim, 0).is_empty());
        assert!(top_k(&query[..3], &slab, dim, 5).is_empty());
    }
}
