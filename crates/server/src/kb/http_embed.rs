//! An [`Embedder`] backed by an OpenAI-compatible `POST {url}/embeddings` endpoint (OpenAI,
//! vLLM, Ollama, text-embeddings-inference, `scripts/embed-server`, ...).
//!
//! The model id is `openai-compatible:{model}@{dimension}`. The model name and the vector size
//! name the vector space; the URL is left out on purpose, so that moving the same model to
//! another host or port does not orphan the vectors already stored.
//!
//! `embed` is synchronous like every embedder's. Each batch goes to a worker thread that owns a
//! single-threaded tokio runtime and the HTTP client, and the caller waits on a channel. A
//! private runtime rather than `Handle::current().block_on`: that one panics when called from an
//! async worker thread or from a thread with no runtime, and the pooled connections would die
//! with whichever runtime the first caller was on. `embed` still blocks for as long as the
//! endpoint takes, so callers run it in `spawn_blocking` (or on a plain thread).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;

use super::embed::{EmbedError, Embedder};

mod breaker;
mod wire;

use breaker::Breaker;
use wire::{backoff, jitter, parse_response, retry_after, BACKOFF_BASE};

const MAX_DIMENSION: usize = 4096;
const MAX_BATCH: usize = 2048;
const MAX_TIMEOUT_SECS: u64 = 600;
const MAX_RETRIES: u32 = 10;
/// Generous bytes per number in a JSON answer (pretty-printed, 17 significant digits).
const BYTES_PER_FLOAT: usize = 48;

/// Settings of an OpenAI-compatible embeddings endpoint.
#[derive(Clone, Deserialize, Serialize)]
pub struct HttpEmbedderConfig {
    /// Base URL such as `http://127.0.0.1:8080/v1`; requests go to `{url}/embeddings`.
    pub url: String,
    /// Model name sent with every request.
    pub model: String,
    /// Vector size the model answers with; answers of any other size are refused.
    pub dimension: usize,
    /// Sent as `Authorization: Bearer`. Never serialised (a dumped config must not carry it)
    /// and never printed.
    #[serde(default, deserialize_with = "secret_opt", skip_serializing)]
    pub api_key: Option<SecretString>,
    /// Limit for one request, connection and whole answer included.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Texts per request.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Retries after the first attempt, on transport errors, timeouts, 429 and 5xx.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// Consecutive failed calls that open the circuit breaker; 0 turns the breaker off.
    #[serde(default = "default_breaker_failures")]
    pub breaker_failures: u32,
    /// How long an open breaker fails fast before letting one trial call through.
    #[serde(default = "default_breaker_cooldown_secs")]
    pub breaker_cooldown_secs: u64,
}

fn default_timeout_secs() -> u64 {
    30
}
fn default_batch_size() -> usize {
    64
}
fn default_max_retries() -> u32 {
    3
}
fn default_breaker_failures() -> u32 {
    5
}
fn default_breaker_cooldown_secs() -> u64 {
    30
}

// secrecy is built without its serde feature, so the key is read as a plain string.
fn secret_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(SecretString::from))
}

impl HttpEmbedderConfig {
    /// A configuration with every optional setting at its default.
    pub fn new(url: impl Into<String>, model: impl Into<String>, dimension: usize) -> Self {
        Self {
            url: url.into(),
            model: model.into(),
            dimension,
            api_key: None,
            timeout_secs: default_timeout_secs(),
            batch_size: default_batch_size(),
            max_retries: default_max_retries(),
            breaker_failures: default_breaker_failures(),
            breaker_cooldown_secs: default_breaker_cooldown_secs(),
        }
    }
}

impl std::fmt::Debug for HttpEmbedderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpEmbedderConfig")
            .field("url", &self.url)
            .field("model", &self.model)
            .field("dimension", &self.dimension)
            .field("api_key", &self.api_key.as_ref().map(|_| "<hidden>"))
            .field("timeout_secs", &self.timeout_secs)
            .field("batch_size", &self.batch_size)
            .field("max_retries", &self.max_retries)
            .field("breaker_failures", &self.breaker_failures)
            .field("breaker_cooldown_secs", &self.breaker_cooldown_secs)
            .finish()
    }
}

/// Embeds by calling an OpenAI-compatible endpoint, in batches, with retries and a circuit
/// breaker. Returned vectors are L2-normalised, so cosine similarity is a dot product.
pub struct HttpEmbedder {
    model_id: String,
    dimension: usize,
    batch_size: usize,
    endpoint: String,
    breaker: Mutex<Breaker>,
    jobs: mpsc::UnboundedSender<Job>,
}

impl std::fmt::Debug for HttpEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpEmbedder")
            .field("model_id", &self.model_id)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl HttpEmbedder {
    /// Checks the configuration and starts the worker thread; sends no request.
    pub fn new(cfg: HttpEmbedderConfig) -> Result<Self, EmbedError> {
        let bad = |m: String| EmbedError::Load(format!("HTTP embedder: {m}"));
        let url = url::Url::parse(&cfg.url).map_err(|e| bad(format!("url is not a URL ({e})")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(bad("url must be an http:// or https:// URL with a host".into()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("url must not carry credentials; use api_key".into()));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("url must not have a query or a fragment".into()));
        }
        if cfg.model.trim().is_empty() || cfg.model.len() > 256 {
            return Err(bad("model must be a name of 1 to 256 bytes".into()));
        }
        if !(1..=MAX_DIMENSION).contains(&cfg.dimension) {
            return Err(bad(format!("dimension must be between 1 and {MAX_DIMENSION}")));
        }
        if !(1..=MAX_BATCH).contains(&cfg.batch_size) {
            return Err(bad(format!("batch_size must be between 1 and {MAX_BATCH}")));
        }
        if !(1..=MAX_TIMEOUT_SECS).contains(&cfg.timeout_secs) {
            return Err(bad(format!("timeout_secs must be between 1 and {MAX_TIMEOUT_SECS}")));
        }
        if cfg.max_retries > MAX_RETRIES {
            return Err(bad(format!("max_retries must be at most {MAX_RETRIES}")));
        }
        if cfg.breaker_cooldown_secs == 0 {
            return Err(bad("breaker_cooldown_secs must be at least 1".into()));
        }
        let auth = match &cfg.api_key {
            Some(key) if key.expose_secret().is_empty() => return Err(bad("api_key is empty".into())),
            Some(key) => {
                let mut v = HeaderValue::from_str(&format!("Bearer {}", key.expose_secret()))
                    .map_err(|_| bad("api_key has characters an HTTP header cannot carry".into()))?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        let timeout = Duration::from_secs(cfg.timeout_secs);
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            // A redirected POST turns into a GET, and the key must not follow it to another host.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| bad(format!("could not build the HTTP client ({e})")))?;
        let endpoint = format!("{}/embeddings", cfg.url.trim_end_matches('/'));
        let caller = Caller {
            client,
            endpoint: endpoint.clone(),
            model: cfg.model.clone(),
            dimension: cfg.dimension,
            auth,
            key: cfg.api_key.clone(),
            timeout_secs: cfg.timeout_secs,
            max_retries: cfg.max_retries,
        };
        Ok(Self {
            model_id: format!("openai-compatible:{}@{}", cfg.model, cfg.dimension),
            dimension: cfg.dimension,
            batch_size: cfg.batch_size,
            endpoint,
            breaker: Mutex::new(Breaker::new(
                cfg.breaker_failures,
                Duration::from_secs(cfg.breaker_cooldown_secs),
            )),
            jobs: spawn_worker(caller)?,
        })
    }

    /// The URL requests are sent to (`{url}/embeddings`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// `closed`, `open` or `half-open`, for health reports.
    pub fn breaker_state(&self) -> &'static str {
        self.lock_breaker().state_name(Instant::now())
    }

    fn lock_breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        // Every transition leaves the breaker consistent, so a poisoned lock is still usable.
        self.breaker.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn call(&self, batch: &[String]) -> Result<Vec<Vec<f32>>, CallError> {
        let stopped = || CallError {
            message: "the HTTP embedder's worker thread has stopped".into(),
            endpoint_fault: false,
        };
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        self.jobs
            .send(Job {
                texts: batch.to_vec(),
                reply,
            })
            .map_err(|_| stopped())?;
        answer.recv().map_err(|_| stopped())?
    }
}

impl Embedder for HttpEmbedder {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(self.batch_size) {
            if let Err(rejected) = self.lock_breaker().admit(Instant::now()) {
                return Err(EmbedError::Failed(format!(
                    "the embedding endpoint {} is failing: circuit breaker open, {rejected}",
                    self.endpoint
                )));
            }
            let result = self.call(batch);
            // An error answer (a 400, a refused key) shows the endpoint is up: it counts as a success.
            let healthy = result.as_ref().map_or_else(|e| !e.endpoint_fault, |_| true);
            self.lock_breaker().record(healthy, Instant::now());
            out.extend(result.map_err(|e| EmbedError::Failed(e.message))?);
        }
        Ok(out)
    }
}

struct Job {
    texts: Vec<String>,
    reply: std::sync::mpsc::SyncSender<Result<Vec<Vec<f32>>, CallError>>,
}

struct CallError {
    message: String,
    /// Whether the failure says the endpoint is unhealthy (and so feeds the breaker).
    endpoint_fault: bool,
}

fn spawn_worker(caller: Caller) -> Result<mpsc::UnboundedSender<Job>, EmbedError> {
    let (jobs, mut queue) = mpsc::unbounded_channel::<Job>();
    let (ready_tx, ready) = std::sync::mpsc::sync_channel(1);
    let caller = Arc::new(caller);
    let thread = std::thread::Builder::new()
        .name("cairn-http-embed".into())
        .spawn(move || {
            // Built here, not in `new`: dropping a runtime on an async thread panics.
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            // Ends when the embedder, the only sender, is dropped.
            rt.block_on(async move {
                while let Some(job) = queue.recv().await {
                    let caller = Arc::clone(&caller);
                    tokio::spawn(async move {
                        let _ = job.reply.send(caller.run(&job.texts).await);
                    });
                }
            });
        });
    thread.map_err(|e| EmbedError::Load(format!("could not start the HTTP embedder's thread: {e}")))?;
    match ready.recv() {
        Ok(Ok(())) => Ok(jobs),
        Ok(Err(e)) => Err(EmbedError::Load(format!(
            "could not start the HTTP embedder's runtime: {e}"
        ))),
        Err(_) => Err(EmbedError::Load("the HTTP embedder's thread exited at start".into())),
    }
}

/// Everything one request needs; shared by the worker's tasks.
struct Caller {
    client: reqwest::Client,
    endpoint: String,
    model: String,
    dimension: usize,
    auth: Option<HeaderValue>,
    /// Kept only to scrub it out of anything the endpoint says back.
    key: Option<SecretString>,
    timeout_secs: u64,
    max_retries: u32,
}

enum Attempt {
    Retry { message: String, wait: Option<Duration> },
    Final(CallError),
}

impl Caller {
    async fn run(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, CallError> {
        let body = serde_json::json!({"model": self.model, "input": texts, "encoding_format": "float"}).to_string();
        let mut attempt = 0;
        loop {
            let (message, wait) = match self.attempt(&body, texts.len()).await {
                Ok(vectors) => return Ok(vectors),
                Err(Attempt::Final(e)) => return Err(e),
                Err(Attempt::Retry { message, wait }) => (message, wait),
            };
            if attempt >= self.max_retries {
                let tries = attempt + 1;
                return Err(CallError {
                    message: format!(
                        "{message} (gave up after {tries} attempt{})",
                        if tries == 1 { "" } else { "s" }
                    ),
                    endpoint_fault: true,
                });
            }
            tokio::time::sleep(wait.map_or_else(|| backoff(attempt), |w| w + jitter(BACKOFF_BASE))).await;
            attempt += 1;
        }
    }

    async fn attempt(&self, body: &str, expected: usize) -> Result<Vec<Vec<f32>>, Attempt> {
        let mut req = self
            .client
            .post(&self.endpoint)
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_owned());
        if let Some(auth) = &self.auth {
            req = req.header(AUTHORIZATION, auth.clone());
        }
        let resp = req.send().await.map_err(|e| self.transport(&e))?;
        let status = resp.status();
        if status.is_success() {
            let limit = (1 << 20) + expected * self.dimension * BYTES_PER_FLOAT;
            let bytes = self.read_limited(resp, limit).await?;
            return parse_response(&bytes, expected, self.dimension).map_err(|m| {
                Attempt::Final(CallError {
                    message: format!("the embedding endpoint {} answered badly: {m}", self.endpoint),
                    endpoint_fault: true,
                })
            });
        }
        let wait = retry_after(resp.headers());
        let code = status.as_u16();
        if code == 401 || code == 403 {
            // The body is not quoted: some providers echo part of the rejected key.
            return Err(Attempt::Final(CallError {
                message: format!(
                    "the embedding endpoint {} refused the credentials (HTTP {code})",
                    self.endpoint
                ),
                endpoint_fault: false,
            }));
        }
        let detail = self.error_detail(resp).await;
        let message = format!("the embedding endpoint {} answered HTTP {code}{detail}", self.endpoint);
        if code == 429 || status.is_server_error() {
            Err(Attempt::Retry { message, wait })
        } else {
            Err(Attempt::Final(CallError {
                message,
                endpoint_fault: false,
            }))
        }
    }

    async fn read_limited(&self, mut resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, Attempt> {
        let mut buf = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.transport(&e))? {
            if buf.len() + chunk.len() > limit {
                return Err(Attempt::Final(CallError {
                    message: format!(
                        "the embedding endpoint {} answered more than {limit} bytes",
                        self.endpoint
                    ),
                    endpoint_fault: true,
                }));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf)
    }

    /// The endpoint's own short explanation of an error, if it gave one as JSON.
    async fn error_detail(&self, resp: reqwest::Response) -> String {
        let body = self.read_limited(resp, 16 << 10).await.unwrap_or_default();
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let text = ["/error/message", "/error", "/message", "/detail"]
            .iter()
            .find_map(|p| v.pointer(p).and_then(Value::as_str));
        text.map_or_else(String::new, |t| {
            format!(": {}", self.scrub(&t.chars().take(200).collect::<String>()))
        })
    }

    fn transport(&self, e: &reqwest::Error) -> Attempt {
        let message = if e.is_timeout() {
            format!(
                "the embedding endpoint {} timed out after {} s",
                self.endpoint, self.timeout_secs
            )
        } else {
            let mut m = format!("could not reach the embedding endpoint {}", self.endpoint);
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                m.push_str(": ");
                m.push_str(&s.to_string());
                source = s.source();
            }
            self.scrub(&m)
        };
        Attempt::Retry { message, wait: None }
    }

    fn scrub(&self, text: &str) -> String {
        match self.key.as_ref().map(|k| k.expose_secret()) {
            Some(key) if !key.is_empty() => text.replace(key, "<hidden>"),
            _ => text.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_checks_its_values_and_never_shows_the_key() {
        let ok = HttpEmbedderConfig::new("http://127.0.0.1:1/v1/", "m", 8);
        let e = HttpEmbedder::new(ok.clone()).unwrap();
        assert_eq!(e.model_id(), "openai-compatible:m@8");
        assert_eq!(e.endpoint(), "http://127.0.0.1:1/v1/embeddings");
        assert_eq!(e.breaker_state(), "closed");
        type Tweak = fn(&mut HttpEmbedderConfig);
        let bad: [(&str, Tweak); 7] = [
            ("http://", |c| c.url = "ftp://h/v1".into()),
            ("credentials", |c| c.url = "https://u:p@h/v1".into()),
            ("query", |c| c.url = "https://h/v1?key=x".into()),
            ("dimension", |c| c.dimension = 0),
            ("dimension", |c| c.dimension = 4097),
            ("batch_size", |c| c.batch_size = 2049),
            ("api_key", |c| c.api_key = Some(SecretString::from("bad\nkey"))),
        ];
        for (want, tweak) in bad {
            let mut cfg = ok.clone();
            tweak(&mut cfg);
            let err = HttpEmbedder::new(cfg).unwrap_err().to_string();
            assert!(err.contains(want), "{err:?} should mention {want:?}");
        }
        let cfg: HttpEmbedderConfig =
            serde_json::from_str(r#"{"url":"http://h/v1","model":"m","dimension":4,"api_key":"sk-very-secret"}"#)
                .unwrap();
        assert_eq!((cfg.timeout_secs, cfg.batch_size, cfg.max_retries), (30, 64, 3));
        assert_eq!((cfg.breaker_failures, cfg.breaker_cooldown_secs), (5, 30));
        let shown = format!("{cfg:?} {}", serde_json::to_string(&cfg).unwrap());
        assert!(
            !shown.contains("sk-very-secret") && shown.contains("<hidden>"),
            "{shown}"
        );
    }
}
