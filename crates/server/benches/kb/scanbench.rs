//! The exact scan (`cairn_core::kb::scan::top_k`) against a memory-bandwidth bound: a
//! plain vectorisable sum over the very same slab, timed in alternation with the scan so
//! both see the same machine state.

use std::hint::black_box;
use std::time::{Duration, Instant};

use cairn_core::kb::scan;

pub struct ScanRow {
    pub rows: usize,
    pub dim: usize,
    pub k: usize,
    pub runs: usize,
    /// Medians.
    pub scan: Duration,
    pub sum8: Duration,
    pub sum32: Duration,
}

impl ScanRow {
    pub fn bytes(&self) -> f64 {
        (self.rows * self.dim * 4) as f64
    }
    pub fn gbs(&self, d: Duration) -> f64 {
        self.bytes() / d.as_secs_f64().max(1e-12) / 1e9
    }
    /// The faster of the two sums: the bandwidth a single core actually reaches.
    pub fn bound(&self) -> Duration {
        self.sum8.min(self.sum32)
    }
    pub fn ratio(&self) -> f64 {
        self.scan.as_secs_f64() / self.bound().as_secs_f64().max(1e-12)
    }
}

/// Sum with `L` independent accumulators (no loop-carried dependency between lanes, so
/// LLVM vectorises it). 8 lanes is two SSE registers (the target baseline); 32 lanes keep
/// eight registers in flight, enough to hide the add latency and be bound by memory alone.
#[inline(never)]
fn sum_lanes<const L: usize>(xs: &[f32]) -> f32 {
    let mut acc = [0f32; L];
    let chunks = xs.chunks_exact(L);
    let rest: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for i in 0..L {
            acc[i] += c[i];
        }
    }
    acc.iter().sum::<f32>() + rest
}

fn time<T>(f: impl FnOnce() -> T) -> Duration {
    let t = Instant::now();
    black_box(f());
    t.elapsed()
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

/// Times `top_k(query, slab, dim, k)` over the queries in turn, alternating with both
/// sums, for about `budget` of wall time (at least 21 runs of each).
pub fn measure(slab: &[f32], dim: usize, queries: &[Vec<f32>], k: usize, budget: Duration) -> ScanRow {
    // Warm-up, and a first estimate of one round.
    let round = time(|| sum_lanes::<8>(black_box(slab)))
        + time(|| sum_lanes::<32>(black_box(slab)))
        + time(|| scan::top_k(black_box(&queries[0]), black_box(slab), dim, k));
    let runs = ((budget.as_secs_f64() / round.as_secs_f64().max(1e-9)) as usize).clamp(21, 2001);
    let (mut s, mut b8, mut b32) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..runs {
        let q = &queries[i % queries.len()];
        b8.push(time(|| sum_lanes::<8>(black_box(slab))));
        s.push(time(|| scan::top_k(black_box(q), black_box(slab), dim, k)));
        b32.push(time(|| sum_lanes::<32>(black_box(slab))));
    }
    ScanRow {
        rows: slab.len() / dim.max(1),
        dim,
        k,
        runs,
        scan: median(&mut s),
        sum8: median(&mut b8),
        sum32: median(&mut b32),
    }
}
