//! A fast path for Model2Vec static embedding models (tokenize → look up one row per token →
//! weighted mean → L2 normalise) that reproduces `model2vec-rs` 0.2 exactly on the texts it
//! accepts.
//!
//! model2vec-rs runs Hugging Face `tokenizers`, whose general pipeline (offset tracking,
//! Unicode normalisation, an allocation per piece) dominates the cost of an embedding. For
//! ASCII text the WordPiece pipeline reduces to byte tests and hash probes (see `wordpiece`),
//! so it is re-implemented here for that case; anything else returns `None` and the caller
//! keeps using model2vec-rs, which stays the reference.

mod wordpiece;

#[cfg(test)]
mod tests;

use safetensors::tensor::Dtype;
use safetensors::SafeTensors;
use serde_json::Value;

use wordpiece::AsciiWordPiece;

#[derive(Debug, thiserror::Error)]
pub enum StaticModelError {
    #[error("tokenizer.json is invalid: {0}")]
    Tokenizer(String),
    #[error("tokenizer.json uses a configuration the fast path does not reproduce: {0}")]
    UnsupportedTokenizer(String),
    #[error("config.json is invalid: {0}")]
    Config(String),
    #[error("model.safetensors is invalid: {0}")]
    Safetensors(String),
}

/// A Model2Vec model loaded for the ASCII fast path.
pub struct StaticModel {
    tokenizer: AsciiWordPiece,
    /// Row-major, `dim` floats per row.
    embeddings: Vec<f32>,
    dim: usize,
    /// Per token id: its embedding row and weight, resolved once from the optional `mapping` and
    /// `weights` tensors; `None` for ids the vocabulary does not use.
    token_rows: Vec<Option<(usize, f32)>>,
    normalize: bool,
    median_token_length: usize,
}

impl std::fmt::Debug for StaticModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticModel")
            .field("rows", &self.embeddings.len().checked_div(self.dim).unwrap_or(0))
            .field("dimension", &self.dim)
            .field("vocabulary", &self.token_rows.iter().flatten().count())
            .field("normalize", &self.normalize)
            .field("median_token_length", &self.median_token_length)
            .finish_non_exhaustive()
    }
}

fn tensor_error(what: impl Into<String>) -> StaticModelError {
    StaticModelError::Safetensors(what.into())
}

/// Exact, like every f16 → f32 conversion; NaNs come out quiet, as `half` makes them.
fn f16_to_f32(bits: u16) -> f32 {
    let sign = u32::from(bits & 0x8000) << 16;
    let exp = u32::from((bits >> 10) & 0x1f);
    let man = u32::from(bits & 0x3ff);
    match exp {
        0 => {
            // Subnormal (or zero): man · 2⁻²⁴, exact in f32.
            let v = man as f32 * (1.0 / 16_777_216.0);
            if sign == 0 {
                v
            } else {
                -v
            }
        }
        0x1f if man == 0 => f32::from_bits(sign | 0x7f80_0000),
        0x1f => f32::from_bits(sign | 0x7fc0_0000 | (man << 13)),
        _ => f32::from_bits(sign | ((exp + 112) << 23) | (man << 13)),
    }
}

fn le_chunks<const N: usize>(raw: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
    raw.chunks_exact(N).map(|c| {
        let mut a = [0u8; N];
        a.copy_from_slice(c);
        a
    })
}

/// The tensor as f32, with the conversions model2vec-rs applies to each tensor kind.
fn floats(name: &str, dtype: Dtype, raw: &[u8], allowed: &[Dtype]) -> Result<Vec<f32>, StaticModelError> {
    if !allowed.contains(&dtype) {
        return Err(tensor_error(format!("unsupported {name} dtype {dtype:?}")));
    }
    Ok(match dtype {
        Dtype::F64 => le_chunks::<8>(raw).map(|b| f64::from_le_bytes(b) as f32).collect(),
        Dtype::F32 => le_chunks::<4>(raw).map(f32::from_le_bytes).collect(),
        Dtype::F16 => le_chunks::<2>(raw).map(|b| f16_to_f32(u16::from_le_bytes(b))).collect(),
        Dtype::I8 => raw.iter().map(|&b| f32::from(b as i8)).collect(),
        other => return Err(tensor_error(format!("unsupported {name} dtype {other:?}"))),
    })
}

impl StaticModel {
    /// Loads the model from the three files model2vec-rs reads, with its defaults
    /// (`normalize` from config.json, true when absent).
    pub fn from_bytes(tokenizer_json: &[u8], safetensors: &[u8], config_json: &[u8]) -> Result<Self, StaticModelError> {
        let parts = AsciiWordPiece::parse(tokenizer_json)?;

        let config: Value = serde_json::from_slice(config_json).map_err(|e| StaticModelError::Config(e.to_string()))?;
        let normalize = config.get("normalize").and_then(Value::as_bool).unwrap_or(true);

        let st = SafeTensors::deserialize(safetensors).map_err(|e| tensor_error(e.to_string()))?;
        let tensor = st
            .tensor("embeddings")
            .or_else(|_| st.tensor("0"))
            .or_else(|_| st.tensor("embedding.weight"))
            .map_err(|_| tensor_error("no embeddings tensor"))?;
        let &[rows, dim] = tensor.shape() else {
            return Err(tensor_error("the embeddings tensor is not 2-D"));
        };
        let embeddings = floats(
            "embeddings",
            tensor.dtype(),
            tensor.data(),
            &[Dtype::F32, Dtype::F16, Dtype::I8],
        )?;
        if rows.checked_mul(dim) != Some(embeddings.len()) {
            return Err(tensor_error("the embeddings tensor's shape does not match its data"));
        }

        let weights = match st.tensor("weights") {
            Ok(t) => Some(floats(
                "weights",
                t.dtype(),
                t.data(),
                &[Dtype::F64, Dtype::F32, Dtype::F16],
            )?),
            Err(_) => None,
        };
        let mapping: Option<Vec<usize>> = match st.tensor("mapping") {
            Ok(t) => Some(match t.dtype() {
                // model2vec-rs casts with `as`; a negative entry becomes an out-of-range row.
                Dtype::I64 => le_chunks::<8>(t.data())
                    .map(|b| i64::from_le_bytes(b) as usize)
                    .collect(),
                Dtype::I32 => le_chunks::<4>(t.data())
                    .map(|b| i32::from_le_bytes(b) as usize)
                    .collect(),
                other => return Err(tensor_error(format!("unsupported mapping dtype {other:?}"))),
            }),
            Err(_) => None,
        };

        let unk_id = parts.tokenizer.unk_id();
        let table_len = parts.vocab_ids.iter().max().map_or(0, |&m| m as usize + 1);
        // The table is indexed by id; ids far beyond the vocabulary size would make it huge.
        if table_len > parts.vocab_ids.len().saturating_mul(2).saturating_add(1024) {
            return Err(StaticModelError::Tokenizer("the vocabulary ids are not dense".into()));
        }
        let mut token_rows = vec![None; table_len];
        for &id in &parts.vocab_ids {
            let tok = id as usize;
            // The same fallbacks as model2vec-rs' pool_ids.
            let row = mapping.as_ref().and_then(|m| m.get(tok)).copied().unwrap_or(tok);
            let scale = weights.as_ref().and_then(|w| w.get(tok)).copied().unwrap_or(1.0);
            if row >= rows {
                // model2vec-rs would panic on such a token; unk is never pooled, so it may lack a row.
                if id == unk_id {
                    continue;
                }
                return Err(tensor_error(format!("token id {id} maps to row {row} of {rows}")));
            }
            if let Some(slot) = token_rows.get_mut(tok) {
                *slot = Some((row, scale));
            }
        }

        Ok(Self {
            tokenizer: parts.tokenizer,
            embeddings,
            dim,
            token_rows,
            normalize,
            median_token_length: parts.median_token_length,
        })
    }

    pub fn dimension(&self) -> usize {
        self.dim
    }

    /// The embedding of `text` exactly as model2vec-rs computes it with max_length = max_tokens, or None when the
    /// text needs the full Unicode pipeline (any non-ASCII char, or a literal added/special token such as "[MASK]").
    /// A non-ASCII char anywhere declines; an added token only counts within the part model2vec-rs tokenizes.
    pub fn embed_fast(&self, text: &str, max_tokens: usize) -> Option<Vec<f32>> {
        let ids = self.token_ids_fast(text, max_tokens)?;
        self.pool(&ids)
    }

    /// Token ids (after unk removal and truncation), same None rule — used by tests.
    pub fn token_ids_fast(&self, text: &str, max_tokens: usize) -> Option<Vec<u32>> {
        let raw = text.as_bytes();
        if !raw.is_ascii() {
            return None;
        }
        // model2vec-rs cuts the text at char index max_tokens · median_token_length before
        // tokenizing; for ASCII a char index is a byte index. Added tokens are looked for in that
        // prefix only, as Hugging Face only ever sees it.
        let cut = max_tokens.saturating_mul(self.median_token_length);
        let raw = raw.get(..cut).unwrap_or(raw);
        let mut normalized = Vec::new();
        self.tokenizer.normalize(raw, &mut normalized);
        if self.tokenizer.has_added_token(raw, &normalized) {
            return None;
        }
        let mut ids = Vec::new();
        self.tokenizer.tokenize(&normalized, max_tokens, &mut ids);
        Some(ids)
    }

    /// model2vec-rs' pool_ids, operation for operation, so the floats round identically.
    fn pool(&self, ids: &[u32]) -> Option<Vec<f32>> {
        let mut sum = vec![0.0_f32; self.dim];
        for &id in ids {
            let (row, scale) = self.token_rows.get(id as usize).copied().flatten()?;
            let start = row * self.dim;
            let values = self.embeddings.get(start..start + self.dim)?;
            for (s, &v) in sum.iter_mut().zip(values) {
                *s += v * scale;
            }
        }
        let denom = ids.len().max(1) as f32;
        for x in &mut sum {
            *x /= denom;
        }
        if self.normalize {
            let norm = sum.iter().map(|&v| v * v).sum::<f32>().sqrt().max(1e-12);
            for x in &mut sum {
                *x /= norm;
            }
        }
        Some(sum)
    }
}
