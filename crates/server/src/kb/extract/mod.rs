//! Turning an uploaded document into text, kept away from the serving process.
//!
//! Plain text and Markdown are normalised in place (Cairn's own code, no parser). HTML
//! goes through third-party parsers (html5ever, htmd); a bug there — a stack overflow,
//! an allocation without bound, a loop — must cost one document, not every tenant's
//! service. So HTML is extracted by a pool of worker processes (`cairn extract-worker`,
//! [`worker`]) with a memory ceiling, and the server kills a worker that takes longer
//! than `kb.extract.timeout_secs`. A worker that dies or is killed fails the document
//! it held with `extraction_failed` (422), is counted, and is replaced on next use.
//! The bounds themselves (depth, nodes, output size) are in `cairn_core::kb::extract`.

pub mod wire;
pub mod worker;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use cairn_core::kb::chunk::Format;
use cairn_core::kb::extract::{self as core_extract, Kind, Limits};
use serde::Serialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::Semaphore;

pub use core_extract::guess_title;

use super::KbError;
use crate::config::kb::{ExtractConfig, ExtractIsolation};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    Text,
    Markdown,
    Html,
}

impl ContentType {
    /// Accepts the media type (parameters such as `; charset=utf-8` ignored) or a file
    /// extension.
    pub fn parse(s: &str) -> Result<Self, KbError> {
        let base = s.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        match base.as_str() {
            "text/plain" | "txt" | "text" => Ok(Self::Text),
            "text/markdown" | "text/x-markdown" | "md" | "markdown" => Ok(Self::Markdown),
            "text/html" | "application/xhtml+xml" | "html" | "htm" => Ok(Self::Html),
            _ => Err(KbError::UnsupportedType(s.chars().take(100).collect())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text/plain",
            Self::Markdown => "text/markdown",
            Self::Html => "text/html",
        }
    }

    pub fn format(self) -> Format {
        match self {
            Self::Text => Format::Text,
            Self::Markdown | Self::Html => Format::Markdown,
        }
    }

    fn kind(self) -> Kind {
        match self {
            Self::Text => Kind::Text,
            Self::Markdown => Kind::Markdown,
            Self::Html => Kind::Html,
        }
    }
}

/// Counters since start (shown by `/health/ready`).
#[derive(Debug, Default)]
struct Counters {
    started: AtomicU64,
    in_flight: AtomicU64,
    refused: AtomicU64,
    crashed: AtomicU64,
    timed_out: AtomicU64,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct ExtractStats {
    pub isolation: ExtractIsolation,
    /// Worker processes started since the server started.
    pub workers_started: u64,
    /// Documents inside a worker right now.
    pub in_flight: u64,
    /// Documents refused by a limit (depth, nodes, size, empty).
    pub refused: u64,
    /// Documents whose worker died (crash, memory ceiling, killed from outside).
    pub crashed: u64,
    /// Documents whose worker was killed for taking too long.
    pub timed_out: u64,
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
}

/// Extracts text from documents, within limits, outside the serving process.
pub struct Extractor {
    config: ExtractConfig,
    limits: Limits,
    max_input: usize,
    exe: Option<PathBuf>,
    slots: Semaphore,
    idle: Mutex<Vec<Worker>>,
    counters: Counters,
}

impl std::fmt::Debug for Extractor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extractor")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What a failed worker round trip was.
enum Failure {
    Died,
    Timeout,
}

impl Extractor {
    pub fn new(config: &ExtractConfig, max_document_bytes: usize) -> Self {
        let exe = config.worker_exe.clone().or_else(|| std::env::current_exe().ok());
        Self {
            limits: Limits {
                max_depth: config.max_depth,
                max_nodes: config.max_nodes,
                max_output_bytes: max_document_bytes.saturating_mul(2),
            },
            max_input: max_document_bytes,
            exe,
            slots: Semaphore::new(config.workers),
            idle: Mutex::new(Vec::new()),
            counters: Counters::default(),
            config: config.clone(),
        }
    }

    pub fn stats(&self) -> ExtractStats {
        let c = &self.counters;
        ExtractStats {
            isolation: self.config.isolation,
            workers_started: c.started.load(Ordering::Relaxed),
            in_flight: c.in_flight.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            crashed: c.crashed.load(Ordering::Relaxed),
            timed_out: c.timed_out.load(Ordering::Relaxed),
        }
    }

    /// The text to store for `raw` of type `ty`.
    pub async fn extract(&self, raw: &str, ty: ContentType) -> Result<String, KbError> {
        let result = match ty {
            // Cairn's own code, linear and without recursion: no need to leave the process.
            ContentType::Text | ContentType::Markdown => Ok(core_extract::extract(raw, ty.kind(), &self.limits)),
            ContentType::Html => match self.config.isolation {
                ExtractIsolation::Process => self.in_worker(raw, ty.kind()).await,
                ExtractIsolation::Thread => self.in_thread(raw, ty.kind()).await,
            },
        };
        match result {
            Ok(Ok(text)) => Ok(text),
            Ok(Err(core_extract::ExtractError::Empty)) => Err(KbError::Empty),
            Ok(Err(refusal)) => {
                self.counters.refused.fetch_add(1, Ordering::Relaxed);
                Err(KbError::TooComplex(refusal))
            }
            Err(failure) => {
                let counter = match failure {
                    Failure::Died => &self.counters.crashed,
                    Failure::Timeout => &self.counters.timed_out,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                Err(KbError::ExtractionFailed(match failure {
                    Failure::Died => "the document could not be read: its extraction stopped unexpectedly",
                    Failure::Timeout => "the document could not be read in the time allowed",
                }))
            }
        }
    }

    /// Runs one document through a worker process.
    async fn in_worker(&self, raw: &str, kind: Kind) -> Result<Result<String, core_extract::ExtractError>, Failure> {
        let _slot = self.slots.acquire().await.map_err(|_| Failure::Died)?;
        let mut worker = match self.take_idle() {
            Some(w) => w,
            None => self.spawn().map_err(|e| {
                tracing::error!(error = %e, "cannot start an extraction worker");
                Failure::Died
            })?,
        };
        let timeout = Duration::from_secs(self.config.timeout_secs);
        let round = tokio::time::timeout(timeout, self.round_trip(&mut worker, raw, kind)).await;
        match round {
            Ok(Ok(reply)) => {
                self.put_idle(worker);
                Ok(reply)
            }
            Ok(Err(e)) => {
                let status = worker.child.wait().await.ok();
                tracing::warn!(error = %e, ?status, "extraction worker died on a document; it is replaced");
                Err(Failure::Died)
            }
            Err(_) => {
                // kill() also reaps, so no zombie is left behind.
                let _ = worker.child.kill().await;
                tracing::warn!(
                    timeout_secs = self.config.timeout_secs,
                    "extraction worker killed: document took too long"
                );
                Err(Failure::Timeout)
            }
        }
    }

    async fn round_trip(
        &self,
        worker: &mut Worker,
        raw: &str,
        kind: Kind,
    ) -> std::io::Result<Result<String, core_extract::ExtractError>> {
        worker
            .stdin
            .write_all(&wire::header(wire::kind_byte(kind), raw.len())?)
            .await?;
        worker.stdin.write_all(raw.as_bytes()).await?;
        worker.stdin.flush().await?;
        self.counters.in_flight.fetch_add(1, Ordering::Relaxed);
        let reply = read_reply(&mut worker.stdout, self.limits.max_output_bytes.max(64 * 1024)).await;
        self.counters.in_flight.fetch_sub(1, Ordering::Relaxed);
        reply
    }

    /// An idle worker that is still alive (one that died while idle is dropped, so its
    /// death is not blamed on the next document).
    fn take_idle(&self) -> Option<Worker> {
        let mut idle = self.idle.lock().ok()?;
        while let Some(mut w) = idle.pop() {
            if matches!(w.child.try_wait(), Ok(None)) {
                return Some(w);
            }
        }
        None
    }

    fn put_idle(&self, worker: Worker) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(worker);
        }
    }

    fn spawn(&self) -> std::io::Result<Worker> {
        let exe = self.exe.as_ref().ok_or_else(|| {
            std::io::Error::other("the path of the cairn binary is unknown (set kb.extract.worker_exe)")
        })?;
        let mut child = tokio::process::Command::new(exe)
            .arg("extract-worker")
            .args(["--max-depth", &self.limits.max_depth.to_string()])
            .args(["--max-nodes", &self.limits.max_nodes.to_string()])
            .args(["--max-output-bytes", &self.limits.max_output_bytes.to_string()])
            .args(["--max-input-bytes", &self.max_input.to_string()])
            .args(["--memory-mb", &self.config.memory_mb.to_string()])
            // The worker needs no configuration and must not inherit secrets.
            .env_clear()
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(std::io::Error::other("the worker's pipes were not created"));
        };
        self.counters.started.fetch_add(1, Ordering::Relaxed);
        Ok(Worker { child, stdin, stdout })
    }

    /// Without process isolation (`kb.extract.isolation = "thread"`): a thread with its
    /// own large stack. The limits still hold, but a crash in a parser is not contained.
    async fn in_thread(&self, raw: &str, kind: Kind) -> Result<Result<String, core_extract::ExtractError>, Failure> {
        let _slot = self.slots.acquire().await.map_err(|_| Failure::Died)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (raw, limits) = (raw.to_owned(), self.limits);
        std::thread::Builder::new()
            .name("extract".into())
            .stack_size(worker::STACK_BYTES)
            .spawn(move || {
                let _ = tx.send(core_extract::extract(&raw, kind, &limits));
            })
            .map_err(|_| Failure::Died)?;
        let timeout = Duration::from_secs(self.config.timeout_secs);
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err(Failure::Died),
            // The thread cannot be stopped; it finishes on its own and its answer is dropped.
            Err(_) => Err(Failure::Timeout),
        }
    }
}

async fn read_reply(
    stdout: &mut ChildStdout,
    max: usize,
) -> std::io::Result<Result<String, core_extract::ExtractError>> {
    let mut head = [0u8; 5];
    stdout.read_exact(&mut head).await?;
    let (tag, len) = wire::parse_header(head);
    if len > max {
        return Err(std::io::Error::other("reply larger than the output limit"));
    }
    let mut body = vec![0u8; len];
    stdout.read_exact(&mut body).await?;
    wire::decode_reply(tag, body).ok_or_else(|| std::io::Error::other("malformed reply"))
}
