//! The OpenAI-compatible HTTP embedder against a real server: `scripts/embed-server`, which
//! embeds with model2vec and the same potion-base-8M as the built-in model, and injects slow,
//! failing, rate-limited and malformed answers when the request's model name asks for them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_server::kb::embed::{cosine, BuiltinEmbedder, EmbedError, Embedder};
use cairn_server::kb::http_embed::{HttpEmbedder, HttpEmbedderConfig};
use secrecy::SecretString;
use serde_json::Value;

use crate::common::embed_url;

/// A model name no other test (or concurrent test run) uses, so its request count is its own.
fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

fn config(model: &str) -> HttpEmbedderConfig {
    HttpEmbedderConfig::new(embed_url(), model, BuiltinEmbedder::DIMENSION)
}

fn texts(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

async fn embed(embedder: &Arc<HttpEmbedder>, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
    let (embedder, texts) = (Arc::clone(embedder), texts.to_vec());
    tokio::task::spawn_blocking(move || embedder.embed(&texts))
        .await
        .unwrap()
}

/// How many requests the server has seen for `model`.
async fn requests(model: &str) -> u64 {
    let stats: Value = reqwest::get(format!("{}/stats", embed_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    stats["requests"][model].as_u64().unwrap_or(0)
}

fn start(cfg: HttpEmbedderConfig) -> Arc<HttpEmbedder> {
    Arc::new(HttpEmbedder::new(cfg).unwrap())
}

fn failure(result: Result<Vec<Vec<f32>>, EmbedError>) -> String {
    match result {
        Err(EmbedError::Failed(m)) => m,
        other => panic!("expected EmbedError::Failed, got {other:?}"),
    }
}

fn assert_match_builtin(texts: &[String], vectors: &[Vec<f32>]) {
    let builtin = BuiltinEmbedder::load().unwrap().embed(texts).unwrap();
    assert_eq!(vectors.len(), texts.len());
    for ((text, http), local) in texts.iter().zip(vectors).zip(&builtin) {
        let similarity = cosine(http, local);
        assert!(
            similarity > 0.99,
            "{text:?}: cosine {similarity} between server and built-in"
        );
        let norm = http.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{text:?}: norm {norm}");
    }
}

const SAMPLES: [&str; 6] = [
    "How do I reset my password?",
    "Steps to recover a forgotten account password",
    "Quarterly revenue grew by twelve percent",
    "Die Katze schläft auf dem Sofa.",
    "fn main() { println!(\"hello\"); }",
    "a",
];

#[tokio::test(flavor = "multi_thread")]
async fn vectors_from_the_server_match_the_built_in_model() {
    let model = unique("potion-base-8M-match");
    let embedder = start(config(&model));
    assert_eq!(embedder.model_id(), format!("openai-compatible:{model}@256"));
    assert_eq!(embedder.dimension(), 256);
    let input = texts(&SAMPLES);
    assert_match_builtin(&input, &embed(&embedder, &input).await.unwrap());
    assert!(embed(&embedder, &[]).await.unwrap().is_empty(), "no texts, no request");
    assert_eq!(requests(&model).await, 1);

    // The server lists these in reverse: the client must put them back by `index`.
    let reversed = start(config(&unique("reversed")));
    assert_match_builtin(&input, &embed(&reversed, &input).await.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn texts_are_sent_in_batches_and_come_back_in_order() {
    let model = unique("potion-base-8M-batch");
    let embedder = start(HttpEmbedderConfig {
        batch_size: 64,
        ..config(&model)
    });
    let input: Vec<String> = (0..150)
        .map(|i| format!("document number {i} about topic {}", i % 7))
        .collect();
    let vectors = embed(&embedder, &input).await.unwrap();
    assert_eq!(requests(&model).await, 3, "150 texts in batches of 64");
    assert_match_builtin(&input, &vectors);
}

#[tokio::test(flavor = "multi_thread")]
async fn server_errors_are_retried_until_they_pass() {
    let model = unique("fail-2");
    let embedder = start(HttpEmbedderConfig {
        max_retries: 3,
        ..config(&model)
    });
    let vectors = embed(&embedder, &texts(&SAMPLES[..2])).await.unwrap();
    assert_eq!(vectors.len(), 2);
    assert_eq!(requests(&model).await, 3, "two 503s, then the answer");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rate_limit_is_waited_out_as_retry_after_says() {
    let model = unique("limit-1");
    let embedder = start(config(&model));
    let started = Instant::now();
    embed(&embedder, &texts(&SAMPLES[..1])).await.unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(1),
        "Retry-After: 1 honoured, waited {waited:?}"
    );
    assert!(waited < Duration::from_secs(5), "but not much longer: {waited:?}");
    assert_eq!(requests(&model).await, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_endpoint_opens_the_breaker_and_is_not_called_while_it_is_open() {
    let model = unique("broken");
    let embedder = start(HttpEmbedderConfig {
        max_retries: 1,
        breaker_failures: 2,
        breaker_cooldown_secs: 60,
        api_key: Some(SecretString::from("sk-test-do-not-print-me")),
        ..config(&model)
    });
    let input = texts(&SAMPLES[..1]);
    for call in 1..=2 {
        let message = failure(embed(&embedder, &input).await);
        assert!(
            message.contains("HTTP 500") && message.contains("2 attempts"),
            "{message}"
        );
        assert!(!message.contains("do-not-print-me"), "the key leaked: {message}");
        assert_eq!(requests(&model).await, 2 * call, "one try and one retry per call");
    }
    assert_eq!(embedder.breaker_state(), "open");
    let started = Instant::now();
    let message = failure(embed(&embedder, &input).await);
    assert!(message.contains("circuit breaker open"), "{message}");
    assert!(started.elapsed() < Duration::from_millis(500), "fails fast");
    assert_eq!(requests(&model).await, 4, "no request while the breaker is open");
}

#[tokio::test(flavor = "multi_thread")]
async fn after_the_cooldown_one_trial_call_closes_or_reopens_the_breaker() {
    // Three 503s, then answers: calls 1 and 2 open the breaker, the first trial fails, the
    // second trial succeeds.
    let model = unique("fail-3");
    let embedder = start(HttpEmbedderConfig {
        max_retries: 0,
        breaker_failures: 2,
        breaker_cooldown_secs: 1,
        ..config(&model)
    });
    let input = texts(&SAMPLES[..1]);
    let cooldown = Duration::from_millis(1100);
    for _ in 0..2 {
        failure(embed(&embedder, &input).await);
    }
    assert!(failure(embed(&embedder, &input).await).contains("circuit breaker open"));
    assert_eq!(requests(&model).await, 2);
    tokio::time::sleep(cooldown).await;
    assert!(
        failure(embed(&embedder, &input).await).contains("HTTP 503"),
        "the trial reaches the server"
    );
    assert_eq!(requests(&model).await, 3);
    assert!(
        failure(embed(&embedder, &input).await).contains("circuit breaker open"),
        "reopened"
    );
    tokio::time::sleep(cooldown).await;
    embed(&embedder, &input).await.unwrap();
    assert_eq!(embedder.breaker_state(), "closed");
    embed(&embedder, &input).await.unwrap();
    assert_eq!(requests(&model).await, 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_endpoint_times_out() {
    let model = unique("slow-3000");
    let embedder = start(HttpEmbedderConfig {
        timeout_secs: 1,
        max_retries: 0,
        ..config(&model)
    });
    let started = Instant::now();
    let message = failure(embed(&embedder, &texts(&SAMPLES[..1])).await);
    assert!(message.contains("timed out after 1 s"), "{message}");
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn vectors_of_the_wrong_dimension_are_refused() {
    let model = unique("bad-dim");
    let embedder = start(config(&model));
    let message = failure(embed(&embedder, &texts(&SAMPLES[..2])).await);
    assert!(
        message.contains("dimension 255 where dimension 256 is configured"),
        "{message}"
    );
    assert_eq!(requests(&model).await, 1, "a malformed answer is not retried");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_model_is_a_client_error_and_not_retried() {
    let model = unique("no-such-model");
    let embedder = start(config(&model));
    let message = failure(embed(&embedder, &texts(&SAMPLES[..1])).await);
    assert!(
        message.contains("HTTP 404") && message.contains("does not exist"),
        "{message}"
    );
    assert_eq!(requests(&model).await, 1);
    assert_eq!(embedder.breaker_state(), "closed", "the endpoint answered: it is up");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endpoint_nobody_listens_on_fails_with_the_reason() {
    // A port that was free a moment ago: connections to it are refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let embedder = start(HttpEmbedderConfig {
        max_retries: 1,
        ..HttpEmbedderConfig::new(format!("http://127.0.0.1:{port}/v1"), "potion-base-8M", 256)
    });
    let message = failure(embed(&embedder, &texts(&SAMPLES[..1])).await);
    assert!(
        message.contains("could not reach") && message.contains("2 attempts"),
        "{message}"
    );
}
