//! Weighted reciprocal-rank fusion (Cormack et al., 2009, with a weight per list): each
//! list contributes `weight / (k + rank)` for every item in it; items ranked well by
//! either list rise. The classic form is k = 60 with equal weights; Cairn's defaults
//! (`kb.rrf_k`, `kb.vector_weight`) were chosen on the development half of the retrieval
//! evaluation (docs/knowledge-base.md), where the built-in static model is a weaker
//! ranker than full-text search.

use std::collections::HashMap;
use std::hash::Hash;

/// Fuses ranked lists (best first), each with its weight, into one, best first, with
/// the fused score.
pub fn reciprocal_rank<T: Clone + Eq + Hash>(lists: &[(&[T], f64)], k: f64, limit: usize) -> Vec<(T, f64)> {
    let mut scores: HashMap<T, (f64, usize)> = HashMap::new();
    let mut order = 0;
    for (list, weight) in lists {
        for (rank, item) in list.iter().enumerate() {
            let entry = scores.entry(item.clone()).or_insert_with(|| {
                order += 1;
                (0.0, order)
            });
            entry.0 += weight / (k + rank as f64 + 1.0);
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
        let fused = reciprocal_rank(&[(&lexical, 1.0), (&vector, 1.0)], 60.0, 10);
        let names: Vec<_> = fused.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["a", "c", "b", "d"]);
        assert!(fused[0].1 > fused[2].1);
        assert_eq!(reciprocal_rank::<&str>(&[(&[], 1.0), (&[], 1.0)], 60.0, 5), vec![]);
        assert_eq!(reciprocal_rank(&[(&lexical, 1.0)], 60.0, 2).len(), 2);
    }

    #[test]
    fn weights_and_k_shift_the_balance() {
        let lexical = ["a", "b"];
        let vector = ["b", "a"];
        let even = reciprocal_rank(&[(&lexical, 1.0), (&vector, 1.0)], 2.0, 2);
        assert_eq!(even[0].1, even[1].1, "symmetric lists tie");
        let lexical_first = reciprocal_rank(&[(&lexical, 1.0), (&vector, 0.3)], 2.0, 2);
        assert_eq!(lexical_first[0].0, "a");
        let vector_first = reciprocal_rank(&[(&lexical, 0.3), (&vector, 1.0)], 2.0, 2);
        assert_eq!(vector_first[0].0, "b");
    }
}
