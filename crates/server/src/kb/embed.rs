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

/// potion-base-8M, embedded in the binary.
pub struct BuiltinEmbedder {
    model: StaticModel,
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
        Ok(Self { model })
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
        let out = self.model.encode_with_args(texts, Some(Self::MAX_TOKENS), 1024);
        if out.len() != texts.len() || out.iter().any(|v| v.len() != Self::DIMENSION) {
            return Err(EmbedError::Failed(
                "the model returned vectors of the wrong shape".into(),
            ));
        }
        Ok(out)
    }
}

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
}
