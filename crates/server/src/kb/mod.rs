//! The knowledge base: embedders, ingestion, hybrid search, index monitoring. REST, the
//! CLI and the MCP tools all go through [`ingest`] and [`search`].

pub mod embed;
pub mod extract;
pub mod http_embed;
mod index;
pub mod ingest;
pub mod search;
pub mod stats;
pub mod tools;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use cairn_core::ids::{KbId, TenantId};
use cairn_store::knowledge::KnowledgeBase;

use crate::config::kb::{EmbedderChoice, KbConfig};
use crate::error::{ApiError, Code};
use embed::{BuiltinEmbedder, EmbedError, Embedder, LazyBuiltin};

/// The knowledge-base machinery one server holds: the embedder, the in-memory vector
/// indexes (SQLite) and recent search latencies.
pub struct Knowledge {
    pub embedder: Option<Arc<dyn Embedder>>,
    pub config: KbConfig,
    pub extractor: extract::Extractor,
    index: index::VectorIndexes,
    latencies: moka::sync::Cache<(TenantId, KbId), Arc<Mutex<VecDeque<u32>>>>,
}

impl std::fmt::Debug for Knowledge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Knowledge")
            .field("model", &self.embedder.as_ref().map(|e| e.model_id().to_owned()))
            .finish_non_exhaustive()
    }
}

/// Latencies kept per base for the percentiles in the stats.
const LATENCY_WINDOW: usize = 1000;

impl Knowledge {
    pub fn new(config: &KbConfig) -> Result<Self, EmbedError> {
        let embedder: Option<Arc<dyn Embedder>> = match config.embedder {
            EmbedderChoice::Builtin => Some(Arc::new(LazyBuiltin)),
            EmbedderChoice::Http => {
                let cfg = config
                    .http
                    .clone()
                    .ok_or_else(|| EmbedError::Load("kb.http is not configured".into()))?;
                Some(Arc::new(http_embed::HttpEmbedder::new(cfg)?))
            }
            EmbedderChoice::None => None,
        };
        Ok(Self {
            embedder,
            config: config.clone(),
            extractor: extract::Extractor::new(&config.extract, config.max_document_bytes),
            index: index::VectorIndexes::new_with(config.vector_cache_bytes),
            latencies: moka::sync::Cache::builder().max_capacity(10_000).build(),
        })
    }

    /// Parses the built-in model now (if it is the embedder), so that the server fails
    /// at start rather than at its first search, and that search is not slowed by it.
    pub fn warm(&self) -> Result<(), EmbedError> {
        if self.config.embedder == EmbedderChoice::Builtin {
            BuiltinEmbedder::shared()?;
        }
        Ok(())
    }

    /// The embedder of `kb`, if the base has vectors. A base made with another model than
    /// the one this server runs cannot be searched or extended by vector (never mixed).
    pub fn embedder_for(&self, kb: &KnowledgeBase) -> Result<Option<Arc<dyn Embedder>>, KbError> {
        let Some(model) = kb.model_id.as_deref() else {
            return Ok(None);
        };
        match &self.embedder {
            Some(e) if e.model_id() == model => Ok(Some(e.clone())),
            _ => Err(KbError::ModelMismatch(model.to_owned())),
        }
    }

    fn record_latency(&self, tenant: TenantId, kb: KbId, micros: u32) {
        let ring = self.latencies.get_with((tenant, kb), Default::default);
        let locked = ring.lock();
        if let Ok(mut r) = locked {
            if r.len() == LATENCY_WINDOW {
                r.pop_front();
            }
            r.push_back(micros);
        }
    }

    /// (p50, p95, p99, samples) of recent searches, in microseconds.
    pub fn latency_percentiles(&self, tenant: TenantId, kb: KbId) -> Option<(u32, u32, u32, usize)> {
        let ring = self.latencies.get(&(tenant, kb))?;
        let mut v: Vec<u32> = match ring.lock() {
            Ok(r) => r.iter().copied().collect(),
            Err(_) => return None,
        };
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
        Some((at(0.5), at(0.95), at(0.99), v.len()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KbError {
    #[error("no knowledge base named {0}")]
    UnknownKb(String),
    #[error("no such document")]
    UnknownDocument,
    #[error("{0}")]
    Invalid(&'static str, String),
    #[error("the document is empty")]
    Empty,
    #[error("the document is {0} bytes; the limit is {1} bytes")]
    TooLarge(usize, usize),
    #[error("the document is not valid UTF-8 text")]
    NotUtf8,
    #[error("content type {0} is not supported (text/plain, text/markdown, text/html)")]
    UnsupportedType(String),
    #[error("{0}")]
    TooComplex(cairn_core::kb::extract::ExtractError),
    #[error("{0}")]
    ExtractionFailed(&'static str),
    #[error("this knowledge base was embedded with {0}, which this server does not run")]
    ModelMismatch(String),
    #[error("embedding failed: {0}")]
    Embed(#[from] EmbedError),
    #[error("stored data could not be read: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Store(#[from] cairn_store::StoreError),
    #[error(transparent)]
    Crypto(#[from] crate::crypto::KeyringError),
}

impl From<KbError> for ApiError {
    fn from(e: KbError) -> Self {
        let message = e.to_string();
        match e {
            KbError::UnknownKb(_) => ApiError::new(Code::KbNotFound, message),
            KbError::UnknownDocument => ApiError::new(Code::DocumentNotFound, message),
            KbError::Invalid(field, _) => ApiError {
                code: Code::InvalidField,
                message,
                field: Some(field),
            },
            KbError::Empty => ApiError::new(Code::EmptyDocument, message),
            KbError::TooLarge(..) => ApiError::new(Code::PayloadTooLarge, message),
            KbError::NotUtf8 => ApiError::new(Code::InvalidEncoding, message),
            KbError::UnsupportedType(_) => ApiError::new(Code::UnsupportedMediaType, message),
            KbError::TooComplex(_) => ApiError::new(Code::DocumentTooComplex, message),
            KbError::ExtractionFailed(_) => ApiError::new(Code::ExtractionFailed, message),
            KbError::ModelMismatch(_) => ApiError::new(Code::Conflict, message),
            KbError::Embed(e) => ApiError::unavailable(e),
            KbError::Corrupt(detail) => ApiError::internal(detail),
            KbError::Store(e) => e.into(),
            KbError::Crypto(e) => e.into(),
        }
    }
}
