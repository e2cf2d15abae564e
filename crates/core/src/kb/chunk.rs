//! Chunking that follows structure: Markdown headings and paragraphs (fenced code kept
//! whole), blank-line paragraphs and sentence boundaries for plain text; a target size
//! in (estimated) tokens with an overlap inside a section. Every chunk keeps its heading
//! path and its byte offsets in the source text, for citations.

/// How big chunks get, in estimated tokens (≈ 4 characters of English per token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkConfig {
    pub target_tokens: usize,
    pub overlap_tokens: usize,
}

impl Default for ChunkConfig {
    fn default() -> Self {
        Self {
            target_tokens: 200,
            overlap_tokens: 30,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub text: String,
    /// Enclosing headings, outermost first.
    pub heading_path: Vec<String>,
    /// Byte range of the chunk in the source text (`text` is `source[start..end]`
    /// with whitespace trimmed at the ends).
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Markdown,
    Text,
}

/// Rough token count: what embedding models see is close to one token per 4 bytes of
/// English text; exactness does not matter for sizing chunks.
pub fn estimate_tokens(s: &str) -> usize {
    s.len().div_ceil(4)
}

/// A block: a paragraph, a list, a fenced code block — never split across sections.
#[derive(Debug, Clone)]
struct Block {
    start: usize,
    end: usize,
    path: Vec<String>,
    /// Which section (counted at each heading) the block is in. Two sections can have the
    /// same heading path (a repeated `## Notes`); chunks must not join them, or the
    /// headings between them would end up inside a chunk's text.
    section: usize,
}

pub fn chunk(source: &str, format: Format, config: ChunkConfig) -> Vec<Chunk> {
    let blocks = match format {
        Format::Markdown => markdown_blocks(source),
        Format::Text => text_blocks(source),
    };
    let target = config.target_tokens.max(16) * 4;
    let overlap = (config.overlap_tokens * 4).min(target / 2);
    let mut out: Vec<Chunk> = Vec::new();
    let mut current: Option<(usize, usize, Vec<String>, usize)> = None;
    let flush = |out: &mut Vec<Chunk>, cur: &mut Option<(usize, usize, Vec<String>, usize)>| {
        if let Some((s, e, path, _)) = cur.take() {
            push(out, source, s, e, path);
        }
    };
    for block in blocks {
        // An oversized block becomes its own run of chunks, cut at sentences, overlapping.
        if block.end - block.start > target {
            flush(&mut out, &mut current);
            for (s, e) in split_long(source, block.start, block.end, target, overlap) {
                push(&mut out, source, s, e, block.path.clone());
            }
            continue;
        }
        let (s, e) = (block.start, block.end);
        match &mut current {
            Some((cs, ce, _, section)) if *section == block.section && e - *cs <= target => *ce = e,
            Some((cs, ce, _, section)) if *section == block.section => {
                // Same section: the next chunk repeats the end of this one, for context.
                let tail = overlap_start(source, *ce, overlap);
                let next = if tail > *cs && tail < *ce { tail } else { s };
                flush(&mut out, &mut current);
                current = Some((next, e, block.path.clone(), block.section));
            }
            _ => {
                flush(&mut out, &mut current);
                current = Some((s, e, block.path.clone(), block.section));
            }
        }
    }
    flush(&mut out, &mut current);
    out
}

fn push(out: &mut Vec<Chunk>, source: &str, start: usize, end: usize, path: Vec<String>) {
    let raw = &source[start..end];
    let lead = raw.len() - raw.trim_start().len();
    let text = raw.trim();
    if text.is_empty() {
        return;
    }
    out.push(Chunk {
        text: text.to_owned(),
        heading_path: path,
        start: start + lead,
        end: start + lead + text.len(),
    });
}

/// Where an overlap of at most `budget` bytes before `end` starts: after a sentence end
/// if one fits, else at a word boundary; `end` when nothing fits.
fn overlap_start(source: &str, end: usize, budget: usize) -> usize {
    if budget == 0 {
        return end;
    }
    let from = floor_char(source, end.saturating_sub(budget));
    let window = &source[from..end];
    let body = window.trim_end();
    // Just past the sentence end or the whitespace. Whitespace can be several bytes long
    // (U+00A0, U+2002…): stepping one byte would cut it in half (found by fuzzing).
    let past = body
        .find(['.', '!', '?', '\n'])
        .filter(|&i| i + 1 < body.len())
        .map(|i| i + 1)
        .or_else(|| {
            body.char_indices()
                .find(|(_, c)| c.is_whitespace())
                .map(|(i, c)| i + c.len_utf8())
        });
    match past {
        Some(i) => {
            let after = from + i;
            let skip = source[after..end].len() - source[after..end].trim_start().len();
            (after + skip).min(end)
        }
        None => end,
    }
}

fn floor_char(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Cuts `source[start..end]` into pieces of at most `target` bytes at sentence ends
/// (or whitespace, or anywhere as a last resort), consecutive pieces overlapping.
fn split_long(source: &str, start: usize, end: usize, target: usize, overlap: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut s = start;
    while s < end {
        let hard = floor_char(source, (s + target).min(end));
        let cut = if hard >= end {
            end
        } else {
            let window = &source[s..hard];
            let sentence = window
                .rfind(['.', '!', '?'])
                .map(|i| s + i + 1)
                .filter(|&c| c > s + target / 3);
            let space = window.rfind(char::is_whitespace).map(|i| s + i).filter(|&c| c > s);
            sentence.or(space).unwrap_or(hard.max(s + 1))
        };
        let cut = floor_char(source, cut).max(s + 1).min(end);
        let cut = (cut..=end).find(|&i| source.is_char_boundary(i)).unwrap_or(end);
        out.push((s, cut));
        if cut >= end {
            break;
        }
        let next = overlap_start(source, cut, overlap);
        s = if next > s && next < cut { next } else { cut };
    }
    out
}

fn markdown_blocks(source: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut path: Vec<(usize, String)> = Vec::new();
    let mut block_start: Option<usize> = None;
    let mut fence: Option<&str> = None;
    let mut section = 0;
    let mut offset = 0;
    let current_path = |p: &Vec<(usize, String)>| p.iter().map(|(_, t)| t.clone()).collect::<Vec<_>>();
    for line in source.split_inclusive('\n') {
        let line_start = offset;
        offset += line.len();
        let trimmed = line.trim();
        if let Some(f) = fence {
            if trimmed.starts_with(f) {
                fence = None;
                if let Some(s) = block_start.take() {
                    blocks.push(Block {
                        start: s,
                        end: offset,
                        path: current_path(&path),
                        section,
                    });
                }
            }
            continue;
        }
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            if let Some(s) = block_start.take() {
                blocks.push(Block {
                    start: s,
                    end: line_start,
                    path: current_path(&path),
                    section,
                });
            }
            fence = Some(&trimmed[..3]);
            block_start = Some(line_start);
            continue;
        }
        let level = trimmed.bytes().take_while(|&b| b == b'#').count();
        if (1..=6).contains(&level) && trimmed.as_bytes().get(level).is_some_and(|b| *b == b' ') {
            if let Some(s) = block_start.take() {
                blocks.push(Block {
                    start: s,
                    end: line_start,
                    path: current_path(&path),
                    section,
                });
            }
            let title = trimmed[level..].trim().trim_end_matches('#').trim().to_owned();
            path.retain(|(l, _)| *l < level);
            path.push((level, title));
            section += 1;
            continue;
        }
        if trimmed.is_empty() {
            if let Some(s) = block_start.take() {
                blocks.push(Block {
                    start: s,
                    end: line_start,
                    path: current_path(&path),
                    section,
                });
            }
        } else if block_start.is_none() {
            block_start = Some(line_start);
        }
    }
    if let Some(s) = block_start {
        blocks.push(Block {
            start: s,
            end: source.len(),
            path: current_path(&path),
            section,
        });
    }
    blocks
}

fn text_blocks(source: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut start: Option<usize> = None;
    let mut offset = 0;
    for line in source.split_inclusive('\n') {
        let line_start = offset;
        offset += line.len();
        if line.trim().is_empty() {
            if let Some(s) = start.take() {
                blocks.push(Block {
                    start: s,
                    end: line_start,
                    path: Vec::new(),
                    section: 0,
                });
            }
        } else if start.is_none() {
            start = Some(line_start);
        }
    }
    if let Some(s) = start {
        blocks.push(Block {
            start: s,
            end: source.len(),
            path: Vec::new(),
            section: 0,
        });
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "# Guide\n\nIntro paragraph.\n\n## Install\n\nRun the installer.\nThen restart.\n\n```sh\n# not a heading\ncairn serve\n```\n\n## Use\n\nOpen the app. Sign in.\n";

    #[test]
    fn markdown_chunks_follow_headings_and_keep_offsets() {
        let chunks = chunk(DOC, Format::Markdown, ChunkConfig::default());
        let paths: Vec<_> = chunks.iter().map(|c| c.heading_path.join(" > ")).collect();
        assert_eq!(paths, ["Guide", "Guide > Install", "Guide > Use"]);
        for c in &chunks {
            assert_eq!(&DOC[c.start..c.end], c.text, "offsets point at the text");
        }
        assert!(chunks[1].text.contains("cairn serve") && chunks[1].text.contains("# not a heading"));
    }

    #[test]
    fn long_text_is_cut_at_sentences_with_overlap_and_every_byte_is_covered() {
        let sentence = "The quick brown fox jumps over the lazy dog again and again. ";
        let text = sentence.repeat(200);
        let config = ChunkConfig {
            target_tokens: 50,
            overlap_tokens: 10,
        };
        let chunks = chunk(&text, Format::Text, config);
        assert!(chunks.len() > 10);
        for c in &chunks {
            assert!(c.text.len() <= 200, "{}", c.text.len());
            assert!(
                c.text.ends_with('.'),
                "cut at a sentence end: {:?}",
                &c.text[c.text.len().saturating_sub(10)..]
            );
            assert_eq!(&text[c.start..c.end], c.text);
        }
        for pair in chunks.windows(2) {
            assert!(pair[1].start < pair[0].end, "consecutive chunks overlap");
        }
        assert_eq!(chunks.last().map(|c| c.end), Some(text.trim_end().len()));
        assert_eq!(chunks[0].start, 0);
    }

    /// Found by fuzzing (fuzz/corpus/chunker/repeated-heading-path): two `## Install`
    /// sections with only a heading between them were joined into one chunk, which then
    /// carried the headings between them in its text and could outgrow target + overlap.
    #[test]
    fn sections_with_the_same_heading_path_are_not_joined() {
        let doc = "# Guide\n\n## Install\n\nFirst part.\n\n### Empty\n\n## Install\n\nSecond part.\n";
        let chunks = chunk(doc, Format::Markdown, ChunkConfig::default());
        let texts: Vec<_> = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, ["First part.", "Second part."]);
        assert!(chunks.iter().all(|c| c.heading_path == ["Guide", "Install"]));
    }

    /// Found by fuzzing (fuzz/corpus/chunker/nbsp-overlap): an overlap that started at a
    /// multi-byte space sliced the source inside it and panicked.
    #[test]
    fn overlap_after_a_multi_byte_space() {
        let text = "Paiement\u{a0}sécurisé\u{a0}par\u{a0}carte\u{2002}bancaire\u{a0}ou\u{a0}virement ".repeat(20);
        let config = ChunkConfig {
            target_tokens: 16,
            overlap_tokens: 4,
        };
        let chunks = chunk(&text, Format::Text, config);
        assert!(chunks.len() > 5);
        for c in &chunks {
            assert_eq!(&text[c.start..c.end], c.text);
        }
    }

    #[test]
    fn odd_input_never_panics() {
        for s in [
            "",
            "\n\n\n",
            "#",
            "# \n",
            "```",
            "ü".repeat(5000).as_str(),
            "a".repeat(10_000).as_str(),
        ] {
            for f in [Format::Markdown, Format::Text] {
                let chunks = chunk(
                    s,
                    f,
                    ChunkConfig {
                        target_tokens: 20,
                        overlap_tokens: 5,
                    },
                );
                for c in &chunks {
                    assert_eq!(&s[c.start..c.end], c.text);
                }
            }
        }
    }
}
