//! The wire format of the embeddings API and the retry timing.

use std::time::Duration;

use rand_core::{OsRng, RngCore};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::Deserialize;

/// A server asking for a longer pause than this is treated as down rather than waited for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
pub(super) const BACKOFF_BASE: Duration = Duration::from_millis(250);
const BACKOFF_CAP: Duration = Duration::from_secs(8);

/// `Retry-After` in seconds (the HTTP-date form is rare for APIs and falls back to backoff).
pub(super) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: u64 = headers.get(RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

/// Exponential, with "equal jitter": half the step fixed, half random, so that clients that
/// failed together do not retry together.
pub(super) fn backoff(attempt: u32) -> Duration {
    let step = BACKOFF_BASE.saturating_mul(1 << attempt.min(8)).min(BACKOFF_CAP);
    step / 2 + jitter(step / 2)
}

pub(super) fn jitter(max: Duration) -> Duration {
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX).max(1);
    Duration::from_nanos(OsRng.next_u64() % nanos)
}

#[derive(Deserialize)]
struct EmbeddingsAnswer {
    data: Vec<EmbeddingItem>,
}

#[derive(Deserialize)]
struct EmbeddingItem {
    index: Option<usize>,
    embedding: Vec<f32>,
}

/// Vectors in input order (servers may answer in any order: `index` says where each goes),
/// checked for count and dimension, L2-normalised.
pub(super) fn parse_response(body: &[u8], expected: usize, dimension: usize) -> Result<Vec<Vec<f32>>, String> {
    let answer: EmbeddingsAnswer =
        serde_json::from_slice(body).map_err(|e| format!("not an OpenAI embeddings response ({e})"))?;
    if answer.data.len() != expected {
        return Err(format!("{} vectors for {expected} texts", answer.data.len()));
    }
    let mut slots: Vec<Option<Vec<f32>>> = vec![None; expected];
    for (position, item) in answer.data.into_iter().enumerate() {
        let i = item.index.unwrap_or(position);
        if item.embedding.len() != dimension {
            return Err(format!(
                "a vector of dimension {} where dimension {dimension} is configured",
                item.embedding.len()
            ));
        }
        let slot = slots
            .get_mut(i)
            .ok_or_else(|| format!("index {i} is out of range for {expected} texts"))?;
        if slot.is_some() {
            return Err(format!("index {i} appears twice"));
        }
        *slot = Some(normalise(item.embedding)?);
    }
    // Exactly `expected` distinct in-range indices fill every slot.
    slots
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| "an index is missing".into())
}

/// Scales to unit length; an all-zero vector (an empty text) stays zero.
fn normalise(mut v: Vec<f32>) -> Result<Vec<f32>, String> {
    if v.iter().any(|x| !x.is_finite()) {
        return Err("a vector holds a value that is not a finite number".into());
    }
    let norm = v.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>().sqrt();
    if norm > 0.0 {
        for x in &mut v {
            *x = (f64::from(*x) / norm) as f32;
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn answers_are_put_in_input_order_and_normalised() {
        let body = br#"{"object":"list","data":[
            {"object":"embedding","index":1,"embedding":[0.0,2.0]},
            {"object":"embedding","index":0,"embedding":[3.0,4.0]},
            {"object":"embedding","index":2,"embedding":[0.0,0.0]}]}"#;
        let v = parse_response(body, 3, 2).unwrap();
        assert_eq!(v, vec![vec![0.6, 0.8], vec![0.0, 1.0], vec![0.0, 0.0]]);
        // Without `index`, position decides.
        let v = parse_response(br#"{"data":[{"embedding":[1,0]},{"embedding":[0,5]}]}"#, 2, 2).unwrap();
        assert_eq!(v, vec![vec![1.0, 0.0], vec![0.0, 1.0]]);
    }

    #[test]
    fn malformed_answers_are_refused_with_the_reason() {
        let cases: [(&[u8], &str); 6] = [
            (
                br#"{"data":[{"index":0,"embedding":[1,2,3]}]}"#,
                "dimension 3 where dimension 2",
            ),
            (br#"{"data":[]}"#, "0 vectors for 1 texts"),
            (br#"{"data":[{"index":5,"embedding":[1,2]}]}"#, "out of range"),
            (
                br#"{"data":[{"index":0,"embedding":"AAAA"}]}"#,
                "not an OpenAI embeddings response",
            ),
            (b"<html>", "not an OpenAI embeddings response"),
            (
                br#"{"data":[{"index":0,"embedding":[1e300,1]}]}"#,
                "not a finite number",
            ),
        ];
        for (body, want) in cases {
            let err = parse_response(body, 1, 2).unwrap_err();
            assert!(err.contains(want), "{err:?} should contain {want:?}");
        }
        let twice = br#"{"data":[{"index":0,"embedding":[1,2]},{"index":0,"embedding":[1,2]}]}"#;
        assert!(parse_response(twice, 2, 2).unwrap_err().contains("appears twice"));
    }

    #[test]
    fn backoff_grows_and_stays_capped() {
        for attempt in 0..20 {
            let step = BACKOFF_BASE.saturating_mul(1 << attempt.min(8)).min(BACKOFF_CAP);
            let d = backoff(attempt);
            assert!(d >= step / 2 && d <= step, "attempt {attempt}: {d:?}");
        }
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("3600"));
        assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER));
        h.insert(RETRY_AFTER, HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(retry_after(&h), None);
    }
}
