//! Retrieval metrics for `cairn kb eval`: MRR@k and recall@k of ranked document ids
//! against the relevant ones.

/// 1 / rank of the first relevant id within the top `k` (0 when none is there).
pub fn reciprocal_rank(ranked: &[String], relevant: &[String], k: usize) -> f64 {
    ranked
        .iter()
        .take(k)
        .position(|id| relevant.contains(id))
        .map_or(0.0, |i| 1.0 / (i + 1) as f64)
}

/// Share of the relevant ids found within the top `k`.
pub fn recall_at(ranked: &[String], relevant: &[String], k: usize) -> f64 {
    if relevant.is_empty() {
        return 0.0;
    }
    let top = &ranked[..ranked.len().min(k)];
    relevant.iter().filter(|r| top.contains(r)).count() as f64 / relevant.len() as f64
}

/// Document ids in first-seen order: several chunks of one document count once.
pub fn dedup_ranked(ids: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for id in ids {
        if !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn metrics() {
        let ranked = v(&["a", "b", "c"]);
        assert_eq!(reciprocal_rank(&ranked, &v(&["b"]), 10), 0.5);
        assert_eq!(reciprocal_rank(&ranked, &v(&["c"]), 2), 0.0);
        assert_eq!(recall_at(&ranked, &v(&["a", "z"]), 10), 0.5);
        assert_eq!(dedup_ranked(v(&["a", "a", "b", "a"])), v(&["a", "b"]));
    }
}
