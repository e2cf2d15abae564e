//! Embedders behind one interface. The built-in one is the static model potion-base-8M
//! (Model2Vec, 256 dimensions, MIT), compiled into the binary from `models/` so that
//! semantic search works on a fresh machine with no download and no extra service.

use model2vec_rs::model::StaticModel;

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("the embedding model could not be loaded: {0}")]
    Load(String),
    #[error("embedding failed: {0}")]
    Failed(String),
}

/// Turns texts into vectors of one fixed dimension. Calls are CPU-bound: run them off the
/// async executor (`spawn_blocking`).
pub trait Embedder: Send + Sync {
    /// Identifies the model and its revision; vectors of different ids are never mixed.
    fn model_id(&self) -> &str;
    fn dimension(&self) -> usize;
    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError>;
}

const MODEL: &[u8] = include_bytes!("../../../../models/potion-base-8M/model.safetensors");
const TOKENIZER: &[u8] = include_bytes!("../../../../models/potion-base-8M/tokenizer.json");
const CONFIG: &[u8] = include_bytes!("../../../../models/potion-base-8M/config.json");

/// potion-base-8M, embedded in the binary. model2vec-rs is the reference; the core's
/// fast path gives the same vectors for ASCII text ~15× faster (its tests compare the
/// two), and everything else goes through the reference.
pub struct BuiltinEmbedder {
    model: StaticModel,
    fast: cairn_core::kb::static_model::StaticModel,
}

impl std::fmt::Debug for BuiltinEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuiltinEmbedder")
            .field("model", &Self::MODEL_ID)
            .finish()
    }
}

impl BuiltinEmbedder {
    pub const MODEL_ID: &'static str = "minishlab/potion-base-8M@bf8b056651a2c21b8d2565580b8569da283cab23";
    pub const DIMENSION: usize = 256;
    /// Tokens per text the model looks at; longer chunks are truncated.
    const MAX_TOKENS: usize = 512;

    /// The process-wide instance: the model is parsed once, however many servers (tests)
    /// the process runs.
    pub fn shared() -> Result<std::sync::Arc<dyn Embedder>, EmbedError> {
        static SHARED: std::sync::OnceLock<std::sync::Arc<BuiltinEmbedder>> = std::sync::OnceLock::new();
        if let Some(m) = SHARED.get() {
            return Ok(m.clone());
        }
        let model = std::sync::Arc::new(Self::load()?);
        Ok(SHARED.get_or_init(|| model).clone())
    }

    pub fn load() -> Result<Self, EmbedError> {
        let model =
            StaticModel::from_bytes(TOKENIZER, MODEL, CONFIG, None).map_err(|e| EmbedError::Load(e.to_string()))?;
        let fast = cairn_core::kb::static_model::StaticModel::from_bytes(TOKENIZER, MODEL, CONFIG)
            .map_err(|e| EmbedError::Load(e.to_string()))?;
        Ok(Self { model, fast })
    }
}

impl Embedder for BuiltinEmbedder {
    fn model_id(&self) -> &str {
        Self::MODEL_ID
    }

    fn dimension(&self) -> usize {
        Self::DIMENSION
    }

    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        use rayon::prelude::*;
        // Large batches (bulk ingestion) spread over every core; a query stays on one.
        let fast: Vec<Option<Vec<f32>>> = if texts.len() >= PARALLEL_FROM {
            texts
                .par_iter()
                .map(|t| self.fast.embed_fast(t, Self::MAX_TOKENS))
                .collect()
        } else {
            texts
                .iter()
                .map(|t| self.fast.embed_fast(t, Self::MAX_TOKENS))
                .collect()
        };
        let rest: Vec<String> = texts
            .iter()
            .zip(&fast)
            .filter(|(_, v)| v.is_none())
            .map(|(t, _)| t.clone())
            .collect();
        let mut slow = if rest.is_empty() {
            Vec::new()
        } else {
            self.model.encode_with_args(&rest, Some(Self::MAX_TOKENS), 1024)
        }
        .into_iter();
        let out: Vec<Vec<f32>> = fast
            .into_iter()
            .map(|v| v.or_else(|| slow.next()).unwrap_or_default())
            .collect();
        if out.len() != texts.len() || out.iter().any(|v| v.len() != Self::DIMENSION) {
            return Err(EmbedError::Failed(
                "the model returned vectors of the wrong shape".into(),
            ));
        }
        Ok(out)
    }
}

/// The built-in model behind a handle that parses it on first use. Parsing takes the
/// model's ~30 MB twice over (reference and fast path) plus the tokenizer: ~70 MB of heap
/// that a CLI command which never embeds (an audit export, a key rotation) should not
/// pay. The server parses it at start ([`crate::kb::Knowledge::warm`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct LazyBuiltin;

impl Embedder for LazyBuiltin {
    fn model_id(&self) -> &str {
        BuiltinEmbedder::MODEL_ID
    }

    fn dimension(&self) -> usize {
        BuiltinEmbedder::DIMENSION
    }

    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        BuiltinEmbedder::shared()?.embed(texts)
    }
}

/// Texts per call from which embedding runs on the rayon pool.
const PARALLEL_FROM: usize = 32;

/// Cosine similarity of two vectors of the same length.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0f32, 0f32, 0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    dot / (na.sqrt() * nb.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_model_embeds_meaning_offline() -> Result<(), EmbedError> {
        let model = BuiltinEmbedder::load()?;
        let texts: Vec<String> = [
            "How do I reset my password?",
            "Steps to recover a forgotten account password",
            "Quarterly revenue grew by twelve percent",
            "",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let v = model.embed(&texts)?;
        assert_eq!(v.len(), 4);
        assert!(v.iter().all(|x| x.len() == 256));
        let norm: f32 = v[0].iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "normalised: {norm}");
        let related = cosine(&v[0], &v[1]);
        let unrelated = cosine(&v[0], &v[2]);
        assert!(related > unrelated + 0.2, "related {related} vs unrelated {unrelated}");
        Ok(())
    }

    #[test]
    fn fast_and_reference_paths_give_the_same_vectors_in_one_batch() -> Result<(), EmbedError> {
        let model = BuiltinEmbedder::load()?;
        // ASCII goes the fast way, the accented and the [MASK] texts the reference way; the
        // order of the answers must still follow the order of the texts.
        let texts: Vec<String> = (0..40)
            .map(|i| match i % 4 {
                0 => format!("Invoice {i} is payable within thirty days."),
                1 => format!("Café n°{i}: crème brûlée — déjà vu"),
                2 => format!("A [MASK] token in text {i}"),
                _ => format!("{i}"),
            })
            .collect();
        let batch = model.embed(&texts)?;
        let reference = model
            .model
            .encode_with_args(&texts, Some(BuiltinEmbedder::MAX_TOKENS), 1024);
        assert_eq!(batch.len(), reference.len());
        for (a, b) in batch.iter().zip(&reference) {
            let diff = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
            assert!(diff < 1e-5, "{diff}");
        }
        Ok(())
    }
}
