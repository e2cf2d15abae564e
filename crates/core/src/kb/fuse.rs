//! Reciprocal-rank fusion (Cormack et al., 2009): each list contributes 1 / (k + rank)
//! for every item in it; items ranked well by either list rise. `k` = 60 as usual.

use std::collections::HashMap;
use std::hash::Hash;

pub const RRF_K: f64 = 60.0;

/// Fuses ranked lists (best first) into one, best first, with the fused score.
pub fn reciprocal_rank<T: Clone + Eq + Hash>(lists: &[&[T]], limit: usize) -> Vec<(T, f64)> {
    let mut scores: HashMap<T, (f64, usize)> = HashMap::new();
    let mut order = 0;
    for list in lists {
        for (rank, item) in list.iter().enumerate() {
            let entry = scores.entry(item.clone()).or_insert_with(|| {
                order += 1;
                (0.0, order)
            });
            entry.0 += 1.0 / (RRF_K + rank as f64 + 1.0);
        }
    }
    let mut out: Vec<(T, f64, usize)> = scores.into_iter().map(|(t, (s, o))| (t, s, o)).collect();
    // Ties keep first-seen order, so results are deterministic.
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.cmp(&b.2)));
    out.into_iter().take(limit).map(|(t, s, _)| (t, s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_in_both_lists_win_and_ties_are_stable() {
        let lexical = ["a", "b", "c"];
        let vector = ["c", "d", "a"];
        let fused = reciprocal_rank(&[&lexical, &vector], 10);
        let names: Vec<_> = fused.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["a", "c", "b", "d"]);
        assert!(fused[0].1 > fused[2].1);
        assert_eq!(reciprocal_rank::<&str>(&[&[], &[]], 5), vec![]);
        assert_eq!(reciprocal_rank(&[&lexical], 2).len(), 2);
    }
}
