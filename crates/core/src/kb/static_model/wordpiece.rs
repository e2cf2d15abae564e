//! The ASCII restriction of Hugging Face's BertNormalizer → BertPreTokenizer → WordPiece pipeline
//! (tokenizers 0.21), read from a `tokenizer.json`.
//!
//! On ASCII input every Unicode-aware step of that pipeline collapses to a byte test: accent
//! stripping (NFD, drop Mn) and Chinese-character padding never fire, lowercasing is ASCII, the
//! Unicode punctuation and whitespace classes add nothing to their ASCII parts, and char offsets
//! equal byte offsets. That is what lets this run on bytes with the same results.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use serde_json::Value;

use super::StaticModelError;

/// A byte trie over vocabulary pieces. WordPiece wants the longest piece at each position; one
/// walk down the trie finds it, where probing a hash map longest-first costs a probe per length.
#[derive(Debug, Default)]
struct PieceTrie {
    /// Every node's out-edges, contiguous and sorted by label. A child's node data sits in the edge
    /// itself, so each step of a walk touches one array.
    edges: Vec<Edge>,
    /// The root's children by byte: the root has dozens, every word's walk starts there.
    root: Vec<Option<TrieNode>>,
}

#[derive(Debug, Clone, Copy)]
struct TrieNode {
    first_edge: u32,
    edge_count: u32,
    /// The piece ending at this node.
    id: Option<u32>,
}

#[derive(Debug, Clone, Copy)]
struct Edge {
    label: u8,
    child: TrieNode,
}

impl PieceTrie {
    fn build<'a>(pieces: impl Iterator<Item = (&'a [u8], u32)>) -> Result<Self, StaticModelError> {
        let mut children: Vec<BTreeMap<u8, usize>> = vec![BTreeMap::new()];
        let mut ids: Vec<Option<u32>> = vec![None];
        for (piece, id) in pieces {
            let mut node = 0;
            for &b in piece {
                let fresh = children.len();
                let Some(edges) = children.get_mut(node) else { break };
                node = *edges.entry(b).or_insert(fresh);
                if node == fresh {
                    children.push(BTreeMap::new());
                    ids.push(None);
                }
            }
            if let Some(slot) = ids.get_mut(node) {
                *slot = Some(id);
            }
        }
        let too_big = || StaticModelError::Tokenizer("the vocabulary is too large".into());
        // Node i's edges start at the total edge count of nodes before it.
        let mut nodes = Vec::with_capacity(children.len());
        let mut first_edge = 0usize;
        for (edges, &id) in children.iter().zip(&ids) {
            nodes.push(TrieNode {
                first_edge: u32::try_from(first_edge).map_err(|_| too_big())?,
                edge_count: u32::try_from(edges.len()).map_err(|_| too_big())?,
                id,
            });
            first_edge += edges.len();
        }
        let node = |i: usize| nodes.get(i).copied().ok_or_else(too_big);
        let mut trie = PieceTrie {
            edges: Vec::with_capacity(first_edge),
            root: vec![None; 256],
        };
        for edges in &children {
            for (&label, &child) in edges {
                trie.edges.push(Edge {
                    label,
                    child: node(child)?,
                });
            }
        }
        if let Some(edges) = children.first() {
            for (&label, &child) in edges {
                if let Some(slot) = trie.root.get_mut(usize::from(label)) {
                    *slot = Some(node(child)?);
                }
            }
        }
        Ok(trie)
    }

    /// The longest piece that `text` starts with: its length and id.
    #[inline]
    fn longest(&self, text: &[u8]) -> Option<(usize, u32)> {
        let (&b, rest) = text.split_first()?;
        let mut node = self.root.get(usize::from(b)).copied().flatten()?;
        let mut best = node.id.map(|id| (1, id));
        for (i, &b) in rest.iter().enumerate() {
            let first = node.first_edge as usize;
            let Some(edges) = self.edges.get(first..first + node.edge_count as usize) else {
                break;
            };
            let Ok(k) = edges.binary_search_by_key(&b, |e| e.label) else {
                break;
            };
            let Some(edge) = edges.get(k) else { break };
            node = edge.child;
            if let Some(id) = node.id {
                best = Some((i + 2, id));
            }
        }
        best
    }
}

#[derive(Deserialize)]
struct TokenizerFile {
    #[serde(default)]
    added_tokens: Vec<AddedTokenFile>,
    #[serde(default)]
    normalizer: Option<Value>,
    #[serde(default)]
    pre_tokenizer: Option<Value>,
    model: ModelFile,
    #[serde(default)]
    truncation: Option<Value>,
    #[serde(default)]
    padding: Option<Value>,
}

#[derive(Deserialize)]
struct AddedTokenFile {
    content: String,
    #[serde(default)]
    normalized: Option<bool>,
    #[serde(default)]
    special: bool,
}

#[derive(Deserialize)]
struct ModelFile {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    unk_token: String,
    continuing_subword_prefix: String,
    max_input_chars_per_word: usize,
    vocab: HashMap<String, u32>,
}

/// What `from_bytes` needs from `tokenizer.json` besides the tokenizer itself.
pub(super) struct TokenizerParts {
    pub(super) tokenizer: AsciiWordPiece,
    /// The model vocabulary's ids, which include every id the tokenizer can emit.
    pub(super) vocab_ids: Vec<u32>,
    /// model2vec's `median_token_length`: over the model vocabulary, in bytes.
    pub(super) median_token_length: usize,
}

#[derive(Debug)]
pub(super) struct AsciiWordPiece {
    /// What the normalizer turns each byte into (`None`: removed).
    normalized_bytes: [Option<u8>; 256],
    initial: PieceTrie,
    /// Pieces that carry the continuing-subword prefix, without it: probes never build "##" + piece.
    continuation: PieceTrie,
    /// model2vec drops every id equal to `token_to_id(unk)`; an added token that is in the model
    /// vocabulary keeps its vocabulary id, so that is the WordPiece unk id.
    unk_id: u32,
    max_word_chars: usize,
    /// Added tokens Hugging Face matches on the raw text.
    raw_added: Patterns,
    /// Added tokens it matches on the normalized text, already normalized.
    normalized_added: Patterns,
}

/// A few byte strings to look for in every text, in one pass over it.
#[derive(Debug)]
struct Patterns {
    patterns: Vec<Box<[u8]>>,
    /// Whether some pattern starts with this byte.
    starts: [bool; 256],
}

impl Patterns {
    fn new() -> Self {
        Patterns {
            patterns: Vec::new(),
            starts: [false; 256],
        }
    }

    fn push(&mut self, pattern: &[u8]) {
        if let Some(&first) = pattern.first() {
            self.starts[usize::from(first)] = true;
            self.patterns.push(pattern.into());
        }
    }

    fn found_in(&self, haystack: &[u8]) -> bool {
        haystack.iter().enumerate().any(|(i, &b)| {
            self.starts[usize::from(b)]
                && self
                    .patterns
                    .iter()
                    .any(|p| haystack.get(i..).is_some_and(|rest| rest.starts_with(p)))
        })
    }
}

fn unsupported(what: impl Into<String>) -> StaticModelError {
    StaticModelError::UnsupportedTokenizer(what.into())
}

fn type_of(v: &Value) -> Option<&str> {
    v.get("type").and_then(Value::as_str)
}

fn required_bool(v: &Value, field: &str) -> Result<bool, StaticModelError> {
    v.get(field)
        .and_then(Value::as_bool)
        .ok_or_else(|| StaticModelError::Tokenizer(format!("normalizer.{field} is missing or not a boolean")))
}

impl AsciiWordPiece {
    pub(super) fn parse(tokenizer_json: &[u8]) -> Result<TokenizerParts, StaticModelError> {
        let file: TokenizerFile =
            serde_json::from_slice(tokenizer_json).map_err(|e| StaticModelError::Tokenizer(e.to_string()))?;

        // encode_batch_fast applies these itself; they would change the ids model2vec sees.
        if file.truncation.is_some() || file.padding.is_some() {
            return Err(unsupported("truncation or padding is configured"));
        }
        let normalizer = file.normalizer.ok_or_else(|| unsupported("no normalizer"))?;
        if type_of(&normalizer) != Some("BertNormalizer") {
            return Err(unsupported("the normalizer is not a BertNormalizer"));
        }
        // handle_chinese_chars and strip_accents cannot change ASCII text, so they are not read.
        let clean_text = required_bool(&normalizer, "clean_text")?;
        let lowercase = required_bool(&normalizer, "lowercase")?;
        if file.pre_tokenizer.as_ref().and_then(type_of) != Some("BertPreTokenizer") {
            return Err(unsupported("the pre-tokenizer is not a BertPreTokenizer"));
        }
        let model = file.model;
        if model.kind.as_deref() != Some("WordPiece") {
            return Err(unsupported("the model is not WordPiece"));
        }

        let unk_id = *model.vocab.get(&model.unk_token).ok_or_else(|| {
            StaticModelError::Tokenizer(format!("unk token {:?} is not in the vocabulary", model.unk_token))
        })?;

        let mut lens: Vec<usize> = model.vocab.keys().map(String::len).collect();
        lens.sort_unstable();
        let median_token_length = lens.get(lens.len() / 2).copied().unwrap_or(1);

        let mut tokenizer = AsciiWordPiece {
            normalized_bytes: std::array::from_fn(|b| normalize_byte(clean_text, lowercase, b as u8)),
            initial: PieceTrie::default(),
            continuation: PieceTrie::default(),
            unk_id,
            max_word_chars: model.max_input_chars_per_word,
            raw_added: Patterns::new(),
            normalized_added: Patterns::new(),
        };

        for token in &file.added_tokens {
            // Hugging Face ignores empty added tokens.
            if token.content.is_empty() {
                continue;
            }
            if token.normalized.unwrap_or(!token.special) {
                // Their pattern is the token run through the full Unicode normalizer, which a
                // non-ASCII token could turn into ASCII; only ASCII ones can be normalized here.
                if !token.content.is_ascii() {
                    return Err(unsupported(format!(
                        "normalized added token {:?} is not ASCII",
                        token.content
                    )));
                }
                let mut pattern = Vec::new();
                tokenizer.normalize(token.content.as_bytes(), &mut pattern);
                tokenizer.normalized_added.push(&pattern);
            } else {
                tokenizer.raw_added.push(token.content.as_bytes());
            }
        }

        let prefix = model.continuing_subword_prefix.as_bytes();
        // Fast-path words are ASCII, so other pieces can never match one.
        let ascii = || model.vocab.iter().filter(|(piece, _)| piece.is_ascii());
        tokenizer.initial = PieceTrie::build(ascii().map(|(piece, &id)| (piece.as_bytes(), id)))?;
        tokenizer.continuation = PieceTrie::build(ascii().filter_map(|(piece, &id)| {
            let rest = piece.as_bytes().strip_prefix(prefix)?;
            (!rest.is_empty()).then_some((rest, id))
        }))?;
        let vocab_ids = model.vocab.values().copied().collect();

        Ok(TokenizerParts {
            tokenizer,
            vocab_ids,
            median_token_length,
        })
    }

    pub(super) fn unk_id(&self) -> u32 {
        self.unk_id
    }

    /// BertNormalizer on ASCII bytes.
    pub(super) fn normalize(&self, raw: &[u8], out: &mut Vec<u8>) {
        out.extend(raw.iter().filter_map(|&b| self.normalized_bytes[usize::from(b)]));
    }

    /// Whether Hugging Face would split an added token out of this text; the fast path then
    /// declines. A plain substring test is broader than its matching (single_word, lstrip…),
    /// which only makes the fast path decline a little more often.
    pub(super) fn has_added_token(&self, raw: &[u8], normalized: &[u8]) -> bool {
        self.raw_added.found_in(raw) || self.normalized_added.found_in(normalized)
    }

    /// BertPreTokenizer then WordPiece over normalized ASCII, appending ids other than unk and
    /// stopping once `limit` ids are kept (model2vec truncates after removing unk).
    pub(super) fn tokenize(&self, text: &[u8], limit: usize, out: &mut Vec<u32>) {
        let mut i = 0;
        while i < text.len() && out.len() < limit {
            match class(text[i]) {
                Class::Space => i += 1,
                Class::Punct => {
                    self.word(&text[i..i + 1], out);
                    i += 1;
                }
                Class::Word => {
                    let start = i;
                    while i < text.len() && class(text[i]) == Class::Word {
                        i += 1;
                    }
                    self.word(&text[start..i], out);
                }
            }
        }
        out.truncate(limit);
    }

    /// Greedy longest-match-first; any unmatched remainder turns the whole word into unk, which
    /// model2vec then drops.
    fn word(&self, word: &[u8], out: &mut Vec<u32>) {
        let mark = out.len();
        if word.len() <= self.max_word_chars {
            let mut start = 0;
            while let Some(rest) = word.get(start..).filter(|rest| !rest.is_empty()) {
                let pieces = if start == 0 { &self.initial } else { &self.continuation };
                let Some((len, id)) = pieces.longest(rest) else { break };
                if id != self.unk_id {
                    out.push(id);
                }
                start += len;
            }
            if start == word.len() {
                return;
            }
        }
        out.truncate(mark);
    }
}

/// BertNormalizer on one ASCII byte. clean_text drops NUL and every control character except
/// \t \n \r *before* mapping whitespace to ' ', so \x0B and \x0C vanish rather than separate.
fn normalize_byte(clean_text: bool, lowercase: bool, b: u8) -> Option<u8> {
    let b = if clean_text && is_control(b) {
        return None;
    } else if clean_text && is_whitespace(b) {
        b' '
    } else {
        b
    };
    Some(if lowercase { b.to_ascii_lowercase() } else { b })
}

/// tokenizers' `is_control` on ASCII: category Cc minus the three whitespace controls (NUL is Cc).
fn is_control(b: u8) -> bool {
    !matches!(b, b'\t' | b'\n' | b'\r') && (b < 0x20 || b == 0x7f)
}

/// tokenizers' BertNormalizer `is_whitespace` on ASCII.
fn is_whitespace(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | b'\r') || char::from(b).is_whitespace()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Class {
    Space,
    Punct,
    Word,
}

/// BertPreTokenizer's classes, tabulated because the split loop looks at every byte: it splits on
/// `char::is_whitespace`, which unlike `u8::is_ascii_whitespace` includes \x0B (that matters only
/// when clean_text is off), and isolates `is_ascii_punctuation`.
const CLASSES: [Class; 256] = {
    let mut table = [Class::Word; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        if matches!(byte, 0x09..=0x0d | b' ') {
            table[b] = Class::Space;
        } else if byte.is_ascii_punctuation() {
            table[b] = Class::Punct;
        }
        b += 1;
    }
    table
};

#[inline]
pub(super) fn class(b: u8) -> Class {
    CLASSES[usize::from(b)]
}
