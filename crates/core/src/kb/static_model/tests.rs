//! Equivalence with model2vec-rs (vectors) and Hugging Face tokenizers (ids), which stay the reference.

use std::path::Path;
use std::sync::OnceLock;

use safetensors::tensor::{Dtype, TensorView};
use serde_json::Value;

use super::*;

const MODEL_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/potion-base-8M");
const DJANGO_DOCS: &str = "/var/tmp/cairn-tools/kb-eval/django-5.2.8-docs/docs";

fn model_file(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(MODEL_DIR).join(name)).unwrap()
}

/// The fast model next to both references, built from the same files.
struct Trio {
    fast: StaticModel,
    m2v: model2vec_rs::model::StaticModel,
    hf: tokenizers::Tokenizer,
    unk: u32,
    median: usize,
}

impl Trio {
    fn new(tokenizer: &[u8], model: &[u8], config: &[u8]) -> Self {
        let hf = tokenizers::Tokenizer::from_bytes(tokenizer).unwrap();
        let unk = hf.token_to_id("[UNK]").unwrap();
        let mut lens: Vec<usize> = hf.get_vocab(false).keys().map(String::len).collect();
        lens.sort_unstable();
        Trio {
            fast: StaticModel::from_bytes(tokenizer, model, config).unwrap(),
            m2v: model2vec_rs::model::StaticModel::from_bytes(tokenizer, model, config, None).unwrap(),
            hf,
            unk,
            median: lens[lens.len() / 2],
        }
    }

    /// model2vec-rs' encode_with_args, spelled out to get at the ids.
    fn reference_ids(&self, text: &str, max_tokens: usize) -> Vec<u32> {
        let cut = text
            .char_indices()
            .nth(max_tokens.saturating_mul(self.median))
            .map_or(text, |(i, _)| &text[..i]);
        let encoding = self.hf.encode_fast(cut, false).unwrap();
        let mut ids = encoding.get_ids().to_vec();
        ids.retain(|&id| id != self.unk);
        ids.truncate(max_tokens);
        ids
    }

    /// Asserts the fast path matches both references; returns false when it declined.
    fn check(&self, text: &str, max_tokens: usize) -> bool {
        let Some(ids) = self.fast.token_ids_fast(text, max_tokens) else {
            assert!(self.fast.embed_fast(text, max_tokens).is_none());
            return false;
        };
        assert_eq!(
            ids,
            self.reference_ids(text, max_tokens),
            "ids differ for {text:?} (max {max_tokens})"
        );
        let fast = self.fast.embed_fast(text, max_tokens).unwrap();
        let reference = self
            .m2v
            .encode_with_args(&[text.to_owned()], Some(max_tokens), 1024)
            .remove(0);
        assert_eq!(fast.len(), reference.len());
        for (i, (a, b)) in fast.iter().zip(&reference).enumerate() {
            assert!((a - b).abs() <= 1e-5, "component {i} differs ({a} vs {b}) for {text:?}");
        }
        true
    }
}

const SPECIAL: &[&str] = &["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

/// Whether the fast path may decline this text (it may also accept one whose special token lies
/// past the truncation point).
fn may_decline(text: &str) -> bool {
    !text.is_ascii() || SPECIAL.iter().any(|t| text.contains(t))
}

fn potion() -> &'static Trio {
    static TRIO: OnceLock<Trio> = OnceLock::new();
    TRIO.get_or_init(|| {
        Trio::new(
            &model_file("tokenizer.json"),
            &model_file("model.safetensors"),
            &model_file("config.json"),
        )
    })
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        // xorshift64*: deterministic, good enough to vary test input.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

#[rustfmt::skip]
const WORDS: &[&str] = &[
    "the", "Quick", "BROWN", "fox", "Django", "QuerySet", "unbelievably", "antidisestablishmentarianism", "qzxv",
    "xylophone", "HTTP", "2024", "3.14", "e-mail", "don't", "foo_bar", "__init__", "C++", "x86_64", "zzzzzzzzzzzz",
    "qqqqqwwwwjjjj", "https://example.com/path?q=1&r=2", "[mask]", "[cls", "MASK]", "##ing", "jkjkjkjkjq", "a", "I",
    "tokenization", "embeddings", "postgresql", "README.md", "0x7fff", "1e-5", "v2.1.0", "snake_case_name",
];
#[rustfmt::skip]
const SEPARATORS: &[&str] = &[
    " ", " ", " ", "\t", "\n", "\r\n", "  ", "\x0b", "\x0c", "\x00", "\x1f", "\x1c", "\x7f",
];

fn generated_texts() -> Vec<String> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut texts: Vec<String> = [
        "",
        " ",
        "   \t\n\r  ",
        "\x0b\x0c",
        "\x00",
        "Hello, World!",
        "a\x0bb a\x0cb a\x01b a\x7fb a\tb",
        "[mask] [Mask] [MAS K] [ MASK ] MASK",
        "!!!???...,,,;;;",
        "l'homme est né", // not ASCII: see the None test; here only as a check that it declines
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for len in [99, 100, 101, 150] {
        texts.push("a".repeat(len));
        texts.push(format!("x {} y", "ab".repeat(len).get(..len).unwrap()));
    }
    let punctuation: Vec<char> = (0u8..128).map(char::from).filter(char::is_ascii_punctuation).collect();
    for _ in 0..120 {
        let mut s = String::new();
        for _ in 0..rng.below(40) {
            let word = rng.pick(WORDS);
            match rng.below(6) {
                0 => s.extend(word.chars().map(|c| c.to_ascii_uppercase())),
                1 => {
                    // A control char inside a word is removed, joining its halves.
                    let mid = rng.below(word.len() + 1);
                    s.push_str(&word[..mid]);
                    s.push_str(rng.pick(SEPARATORS));
                    s.push_str(&word[mid..]);
                }
                2 => s.push(punctuation[rng.below(punctuation.len())]),
                _ => s.push_str(word),
            }
            s.push_str(rng.pick(SEPARATORS));
        }
        texts.push(s);
    }
    for _ in 0..120 {
        let len = rng.below(300);
        texts.push((0..len).map(|_| char::from(rng.below(128) as u8)).collect());
    }
    for _ in 0..60 {
        let len = 1 + rng.below(160);
        let letters: String = (0..len).map(|_| char::from(b'a' + rng.below(26) as u8)).collect();
        texts.push(format!("{} {letters}.", rng.pick(WORDS)));
    }
    // Over both limits: > 512 tokens and > 512 · median chars, and one over the token limit only.
    for n in [700, 1500] {
        texts.push(
            (0..n)
                .map(|_| rng.pick(WORDS))
                .collect::<Vec<_>>()
                .join(rng.pick(SEPARATORS)),
        );
    }
    texts.push(".,".repeat(1200));
    texts
}

#[test]
fn static_model_matches_model2vec_on_generated_ascii() {
    let trio = potion();
    let mut accepted = 0;
    for text in generated_texts() {
        for max_tokens in [512, 64, 1, 0] {
            if trio.check(&text, max_tokens) {
                accepted += 1;
            } else {
                assert!(may_decline(&text), "declined {text:?}");
            }
        }
    }
    assert!(accepted > 1000, "{accepted}");
}

#[test]
fn static_model_declines_non_ascii_and_added_tokens() {
    let trio = potion();
    for text in [
        "café",
        "l'homme est né",
        "naïve",
        "日本語",
        "emoji 🙂",
        "\u{a0}",
        "x\u{fffd}",
    ] {
        assert!(trio.fast.token_ids_fast(text, 512).is_none(), "{text:?}");
        assert!(trio.fast.embed_fast(text, 512).is_none(), "{text:?}");
    }
    for text in ["[MASK]", "a [CLS] b", "x[SEP]y", "[PAD]", "[UNK]", "what is [MASK]?"] {
        assert!(trio.fast.token_ids_fast(text, 512).is_none(), "{text:?}");
        assert!(trio.fast.embed_fast(text, 512).is_none(), "{text:?}");
    }
    // Beyond the part model2vec-rs tokenizes, a special token changes nothing.
    let late = format!("{} [MASK]", "word ".repeat(1000));
    assert!(trio.check(&late, 512));
    assert_eq!(trio.fast.dimension(), 256);
}

#[test]
fn static_model_matches_on_django_docs() {
    let root = Path::new(DJANGO_DOCS);
    if !root.is_dir() {
        println!("skipped: {DJANGO_DOCS} does not exist");
        return;
    }
    let trio = potion();
    let mut stack = vec![root.to_path_buf()];
    let (mut ascii, mut other) = (0, 0);
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if !matches!(path.extension().and_then(|e| e.to_str()), Some("txt" | "md")) {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            if text.is_ascii() {
                assert!(trio.check(&text, 512), "{} declined", path.display());
                ascii += 1;
            } else {
                assert!(trio.fast.embed_fast(&text, 512).is_none(), "{}", path.display());
                other += 1;
            }
        }
    }
    println!("django docs: {ascii} ASCII files matched, {other} non-ASCII declined");
    assert!(ascii > 0);
}

fn tokenizer_variant(edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut json: Value = serde_json::from_slice(&model_file("tokenizer.json")).unwrap();
    edit(&mut json);
    serde_json::to_vec(&json).unwrap()
}

#[test]
fn static_model_follows_normalizer_flags() {
    let (model, config) = (model_file("model.safetensors"), model_file("config.json"));
    let texts = generated_texts();
    for (clean_text, lowercase) in [(false, true), (true, false), (false, false)] {
        let tokenizer = tokenizer_variant(|j| {
            j["normalizer"]["clean_text"] = Value::Bool(clean_text);
            j["normalizer"]["lowercase"] = Value::Bool(lowercase);
        });
        let trio = Trio::new(&tokenizer, &model, &config);
        for text in texts.iter().step_by(3) {
            assert!(trio.check(text, 512) || may_decline(text), "declined {text:?}");
        }
    }
}

fn serialize(tensors: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)>) -> Vec<u8> {
    let views: Vec<(&str, TensorView<'_>)> = tensors
        .iter()
        .map(|(name, dtype, shape, data)| (*name, TensorView::new(*dtype, shape.clone(), data).unwrap()))
        .collect();
    safetensors::serialize(views, &None).unwrap()
}

/// Quantised layouts model2vec-rs also loads: fewer rows than tokens, a token → row mapping and
/// per-token weights, in the other dtypes it accepts.
#[test]
fn static_model_matches_quantised_layouts() {
    let tokenizer = model_file("tokenizer.json");
    let vocab = 29_528usize;
    let (rows, dim) = (1000usize, 64usize);
    let mut rng = Rng(42);
    // Finite f16 values of both signs, normals and subnormals.
    let f16: Vec<u8> = (0..rows * dim)
        .flat_map(|_| ((rng.below(0x7c00) as u16) | ((rng.below(2) as u16) << 15)).to_le_bytes())
        .collect();
    let i8s: Vec<u8> = (0..rows * dim).map(|_| rng.below(256) as u8).collect();
    let map64: Vec<u8> = (0..vocab)
        .flat_map(|t| ((t * 7919 % rows) as i64).to_le_bytes())
        .collect();
    let map32: Vec<u8> = (0..vocab)
        .flat_map(|t| ((t * 31 % rows) as i32).to_le_bytes())
        .collect();
    let w64: Vec<u8> = (0..vocab)
        .flat_map(|t| (0.5 + (t % 13) as f64 / 7.0).to_le_bytes())
        .collect();
    // Fewer weights than tokens: the rest weigh 1.0.
    let w16: Vec<u8> = (0..vocab / 2)
        .flat_map(|t| (0x3800u16 + (t % 512) as u16).to_le_bytes())
        .collect();
    let layouts = [
        serialize(vec![
            ("embeddings", Dtype::F16, vec![rows, dim], f16),
            ("mapping", Dtype::I64, vec![vocab], map64),
            ("weights", Dtype::F64, vec![vocab], w64),
        ]),
        serialize(vec![
            ("0", Dtype::I8, vec![rows, dim], i8s),
            ("mapping", Dtype::I32, vec![vocab], map32),
            ("weights", Dtype::F16, vec![vocab / 2], w16),
        ]),
    ];
    let texts = generated_texts();
    for (normalize, model) in [("true", &layouts[0]), ("false", &layouts[1])] {
        let config = format!(r#"{{"normalize": {normalize}}}"#);
        let trio = Trio::new(&tokenizer, model, config.as_bytes());
        assert_eq!(trio.fast.dimension(), dim);
        for text in texts.iter().step_by(4) {
            assert!(trio.check(text, 512) || may_decline(text), "declined {text:?}");
        }
    }
}

#[test]
fn static_model_converts_f16_exactly() {
    let cases: [(u16, f32); 9] = [
        (0x0000, 0.0),
        (0x3c00, 1.0),
        (0xc000, -2.0),
        (0x3555, 0.333_251_95),
        (0x7bff, 65504.0),
        (0x0400, 6.103_515_6e-5),
        (0x0001, 5.960_464_5e-8),
        (0x83ff, -6.097_555e-5),
        (0x7c00, f32::INFINITY),
    ];
    for (bits, expected) in cases {
        assert_eq!(f16_to_f32(bits).to_bits(), expected.to_bits(), "{bits:#06x}");
    }
    assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
    assert_eq!(f16_to_f32(0xfc00), f32::NEG_INFINITY);
    assert!(f16_to_f32(0x7e01).is_nan());
}

#[test]
fn static_model_rejects_what_it_cannot_reproduce() {
    let (model, config) = (model_file("model.safetensors"), model_file("config.json"));
    let bad_tokenizers = [
        tokenizer_variant(|j| j["normalizer"] = serde_json::json!({"type": "Lowercase"})),
        tokenizer_variant(|j| j["pre_tokenizer"] = serde_json::json!({"type": "Whitespace"})),
        tokenizer_variant(|j| j["truncation"] = serde_json::json!({"max_length": 8})),
        tokenizer_variant(|j| j["model"]["type"] = Value::String("BPE".into())),
        tokenizer_variant(|j| j["model"]["unk_token"] = Value::String("<unk>".into())),
        tokenizer_variant(|j| {
            j["added_tokens"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!({"id": 30000, "content": "é", "normalized": true, "special": false}))
        }),
        b"{".to_vec(),
    ];
    for tokenizer in &bad_tokenizers {
        assert!(StaticModel::from_bytes(tokenizer, &model, &config).is_err());
    }
    let tokenizer = model_file("tokenizer.json");
    assert!(matches!(
        StaticModel::from_bytes(&tokenizer, b"not safetensors", &config),
        Err(StaticModelError::Safetensors(_))
    ));
    assert!(matches!(
        StaticModel::from_bytes(&tokenizer, &model, b"nope"),
        Err(StaticModelError::Config(_))
    ));
    // Too few rows for the vocabulary, without a mapping.
    let small = serialize(vec![("embeddings", Dtype::F32, vec![10, 4], vec![0; 160])]);
    assert!(StaticModel::from_bytes(&tokenizer, &small, &config).is_err());
    let wrong_dtype = serialize(vec![("embeddings", Dtype::U8, vec![29_528, 1], vec![0; 29_528])]);
    assert!(StaticModel::from_bytes(&tokenizer, &wrong_dtype, &config).is_err());
}

#[test]
fn static_model_matches_an_added_normalized_token() {
    // A normalized added token is matched after lowercasing, so "HELLO there" contains it.
    let tokenizer = tokenizer_variant(|j| {
        j["added_tokens"].as_array_mut().unwrap().push(
            serde_json::json!({"id": 29528, "content": "Hello", "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": true, "special": false}),
        )
    });
    let trio = Trio::new(&tokenizer, &model_file("model.safetensors"), &model_file("config.json"));
    assert!(trio.fast.token_ids_fast("HELLO there", 512).is_none());
    assert!(trio.fast.token_ids_fast("hel\x01lo", 512).is_none());
    assert!(trio.check("help low", 512));
}

#[test]
fn static_model_debug_is_short() {
    let text = format!("{:?}", potion().fast);
    assert!(text.len() < 300, "{text}");
}

#[test]
fn static_model_byte_classes_match_the_char_predicates() {
    for b in 0u8..128 {
        let c = char::from(b);
        let expected = if c.is_whitespace() {
            wordpiece::Class::Space
        } else if c.is_ascii_punctuation() {
            wordpiece::Class::Punct
        } else {
            wordpiece::Class::Word
        };
        assert_eq!(wordpiece::class(b), expected, "{b:#04x}");
    }
}
