//! A synthetic but varied Markdown corpus and search queries, from a seeded PRNG.
//!
//! The vocabulary is the first few thousand whole-word entries of the built-in model's
//! WordPiece vocabulary (`models/potion-base-8M/tokenizer.json`), which BERT ordered by
//! frequency: real English words, common first. Words are drawn with a Zipf law, and some
//! get an inflection (`-s`, `-ed`, `-ing`, …) that is often not in the vocabulary, so the
//! tokenizer splits words into pieces as it does on real prose. Each document has a topic
//! (a few dozen content words it keeps coming back to) and queries ask about one topic, so
//! the corpus has the clustered structure of real documentation instead of being one
//! uniform cloud of word salad.

const TOKENIZER: &str = include_str!("../../../../models/potion-base-8M/tokenizer.json");
const SUFFIXES: [&str; 9] = ["s", "ed", "ing", "ly", "er", "ness", "ation", "able", "ment"];
/// Topics, and content words per topic.
const TOPICS: usize = 64;
const TOPIC_WORDS: usize = 48;
/// Share of running-text words taken from the document's topic.
const TOPIC_SHARE: f64 = 0.3;
/// The commonest words are function words: never topic or heading words.
const COMMON: usize = 150;

/// SplitMix64: small, fast, good enough for test data, and the same on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

pub struct Vocabulary {
    pub words: Vec<String>,
    /// Cumulative Zipf weights (s = 1) over `words`.
    cdf: Vec<f64>,
    /// Indices into `words`, per topic.
    topics: Vec<Vec<usize>>,
}

impl Vocabulary {
    /// The `size` most frequent whole words (a–z only, two letters or more, plus "a").
    pub fn load(size: usize) -> Self {
        let json: serde_json::Value = serde_json::from_str(TOKENIZER).unwrap();
        let vocab = json["model"]["vocab"].as_object().unwrap();
        // Ids below the first whole word ("the") are special tokens and single characters.
        let first = vocab.get("the").and_then(serde_json::Value::as_u64).unwrap_or(0);
        let mut entries: Vec<(u64, &str)> = vocab
            .iter()
            .filter_map(|(w, id)| id.as_u64().map(|id| (id, w.as_str())))
            .filter(|&(id, w)| ((id >= first && w.len() >= 2) || w == "a") && w.bytes().all(|b| b.is_ascii_lowercase()))
            .collect();
        entries.sort_unstable();
        let words: Vec<String> = entries.into_iter().take(size).map(|(_, w)| w.to_owned()).collect();
        let mut cdf = Vec::with_capacity(words.len());
        let mut total = 0.0;
        for rank in 0..words.len() {
            total += 1.0 / (rank as f64 + 1.0);
            cdf.push(total);
        }
        cdf.iter_mut().for_each(|c| *c /= total);
        let mut rng = Rng::new(0x7091C5);
        let skip = COMMON.min(words.len() / 2);
        let topics = (0..TOPICS)
            .map(|_| (0..TOPIC_WORDS).map(|_| rng.range(skip, words.len() - 1)).collect())
            .collect();
        Self { words, cdf, topics }
    }

    /// A topic for a document or a query.
    pub fn topic(&self, rng: &mut Rng) -> usize {
        rng.range(0, self.topics.len() - 1)
    }

    fn topic_word<'a>(&'a self, rng: &mut Rng, topic: usize) -> &'a str {
        let t = &self.topics[topic];
        &self.words[t[rng.range(0, t.len() - 1)]]
    }

    fn zipf<'a>(&'a self, rng: &mut Rng) -> &'a str {
        let u = rng.unit();
        let i = self.cdf.partition_point(|&c| c < u).min(self.words.len() - 1);
        &self.words[i]
    }

    /// A word of running text: from the topic or Zipf-distributed, sometimes inflected.
    fn word(&self, rng: &mut Rng, topic: usize, out: &mut String) {
        if rng.chance(TOPIC_SHARE) {
            out.push_str(self.topic_word(rng, topic));
        } else {
            out.push_str(self.zipf(rng));
        }
        if rng.chance(0.12) {
            out.push_str(SUFFIXES[rng.range(0, SUFFIXES.len() - 1)]);
        }
    }

    /// A content word for queries and headings: mostly from the topic, else uniform over
    /// all but the commonest words.
    fn content_word<'a>(&'a self, rng: &mut Rng, topic: usize) -> &'a str {
        if rng.chance(0.6) {
            return self.topic_word(rng, topic);
        }
        let skip = COMMON.min(self.words.len() / 2);
        &self.words[rng.range(skip, self.words.len() - 1)]
    }

    fn sentence(&self, rng: &mut Rng, topic: usize, out: &mut String) {
        let n = rng.range(6, 22);
        for i in 0..n {
            let start = out.len();
            self.word(rng, topic, out);
            if i == 0 {
                // Capitalise the first letter (ASCII only).
                let first = out[start..start + 1].to_ascii_uppercase();
                out.replace_range(start..start + 1, &first);
            }
            if i + 1 < n {
                if rng.chance(0.07) {
                    out.push(',');
                } else if rng.chance(0.02) {
                    out.push_str(&format!(" {}", rng.range(2, 2030)));
                }
                out.push(' ');
            }
        }
        out.push(if rng.chance(0.9) { '.' } else { '?' });
    }

    fn title(&self, rng: &mut Rng, topic: usize, min_words: usize, max_words: usize) -> String {
        let words = rng.range(min_words, max_words);
        let mut t = String::new();
        for i in 0..words {
            if i > 0 {
                t.push(' ');
            }
            let w = self.content_word(rng, topic);
            let mut c = w.chars();
            if let Some(f) = c.next() {
                t.extend(f.to_uppercase());
                t.push_str(c.as_str());
            }
        }
        t
    }

    /// One Markdown document of roughly `min_bytes..=max_bytes`: a title, sections and
    /// subsections, paragraphs of 2–7 sentences, sometimes a list or a fenced code block.
    pub fn document(&self, rng: &mut Rng, min_bytes: usize, max_bytes: usize) -> String {
        let target = rng.range(min_bytes, max_bytes);
        let topic = self.topic(rng);
        let mut doc = format!("# {}\n\n", self.title(rng, topic, 2, 5));
        while doc.len() < target {
            let level = if rng.chance(0.35) { "###" } else { "##" };
            doc.push_str(&format!("{level} {}\n\n", self.title(rng, topic, 1, 4)));
            for _ in 0..rng.range(1, 4) {
                if doc.len() >= target {
                    break;
                }
                if rng.chance(0.12) {
                    for _ in 0..rng.range(3, 6) {
                        doc.push_str("- ");
                        self.sentence(rng, topic, &mut doc);
                        doc.push('\n');
                    }
                } else if rng.chance(0.05) {
                    doc.push_str("```\n");
                    for _ in 0..rng.range(2, 6) {
                        let (a, b) = (self.content_word(rng, topic), self.content_word(rng, topic));
                        doc.push_str(&format!("{a}_{b} = {}({a})\n", self.content_word(rng, topic)));
                    }
                    doc.push_str("```\n");
                } else {
                    for s in 0..rng.range(2, 7) {
                        if s > 0 {
                            doc.push(' ');
                        }
                        self.sentence(rng, topic, &mut doc);
                    }
                    doc.push('\n');
                }
                doc.push('\n');
            }
        }
        doc
    }

    /// A search query about one topic: 2–6 content words, sometimes a common word among them.
    pub fn query(&self, rng: &mut Rng) -> String {
        let topic = self.topic(rng);
        let n = rng.range(2, 6);
        let mut words = Vec::with_capacity(n);
        for _ in 0..n {
            words.push(if rng.chance(0.2) {
                self.zipf(rng)
            } else {
                self.content_word(rng, topic)
            });
        }
        words.join(" ")
    }
}
