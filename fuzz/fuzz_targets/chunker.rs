//! `cairn_core::kb::chunk::chunk` on arbitrary UTF-8, Markdown and plain text.
//!
//! Input: three header bytes, then the document.
//!   byte 0: bit 0 set = Markdown, else plain text; bit 1 set = byte 1 counts 32 tokens;
//!   byte 1: target size in tokens (the chunker raises it to at least 16);
//!   byte 2: overlap in tokens (the chunker caps it at half the target).
//! Small targets make the splitting paths (long blocks, overlap) run on small inputs; bit 1
//! reaches the server's configured range (16–8192 tokens).
//!
//! Invariants: every chunk's byte range lies in the source, on char boundaries, and is
//! exactly its trimmed, non-empty text; chunks come in document order; none holds more than
//! target + overlap (+ one char) of non-whitespace; no text is lost: every non-whitespace
//! character is inside some chunk, except those of Markdown headings (outside code fences),
//! which are in none: they become heading paths.
#![no_main]

use cairn_core::kb::chunk::{chunk, ChunkConfig, Format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [flags, target, overlap, rest @ ..] = data else {
        return;
    };
    let Ok(source) = std::str::from_utf8(rest) else {
        return;
    };
    let format = if flags & 1 == 1 { Format::Markdown } else { Format::Text };
    let scale = if flags & 2 == 2 { 32 } else { 1 };
    let config = ChunkConfig {
        target_tokens: usize::from(*target) * scale,
        overlap_tokens: usize::from(*overlap),
    };
    let chunks = chunk(source, format, config);

    // The chunker's own sizing, in bytes.
    let target_bytes = config.target_tokens.max(16) * 4;
    let overlap_bytes = (config.overlap_tokens * 4).min(target_bytes / 2);
    for c in &chunks {
        assert!(
            c.start <= c.end && c.end <= source.len(),
            "range {}..{} of {}",
            c.start,
            c.end,
            source.len()
        );
        assert!(source.is_char_boundary(c.start) && source.is_char_boundary(c.end));
        assert_eq!(&source[c.start..c.end], c.text, "offsets point at the text");
        assert!(!c.text.is_empty() && c.text.trim() == c.text, "trimmed and non-empty");
        // Whitespace is not counted: blank lines between two blocks of a section stay inside
        // the chunk that joins them, and cost an embedding model no tokens.
        let content: usize = c.text.split_whitespace().map(str::len).sum();
        assert!(
            content <= target_bytes + overlap_bytes + 4,
            "chunk of {content} non-blank bytes for a target of {target_bytes} + overlap {overlap_bytes}"
        );
        if format == Format::Text {
            assert!(c.heading_path.is_empty());
        }
    }
    for pair in chunks.windows(2) {
        assert!(pair[0].start <= pair[1].start, "chunks in document order");
    }

    // Coverage: every non-whitespace character is in a chunk, except those of Markdown
    // headings (outside code fences), which become heading paths and are in no chunk.
    let mut covered = vec![false; source.len()];
    for c in &chunks {
        covered[c.start..c.end].iter_mut().for_each(|b| *b = true);
    }
    let mut offset = 0;
    let mut fence: Option<&str> = None;
    for line in source.split_inclusive('\n') {
        let line_start = offset;
        offset += line.len();
        let heading = format == Format::Markdown && is_heading(line.trim(), &mut fence);
        for (i, ch) in line.char_indices().filter(|(_, ch)| !ch.is_whitespace()) {
            let at = line_start + i;
            if heading {
                assert!(!covered[at], "heading {:?} is inside a chunk's text", line.trim());
            } else {
                assert!(covered[at], "{ch:?} at byte {at} is in no chunk");
            }
        }
    }
});

/// CommonMark's ATX headings as the chunker reads them: 1–6 `#` then a space, on a line
/// outside a ``` or ~~~ fence (closed by a line starting with the same three characters).
fn is_heading<'a>(trimmed: &'a str, fence: &mut Option<&'a str>) -> bool {
    if let Some(f) = *fence {
        if trimmed.starts_with(f) {
            *fence = None;
        }
        return false;
    }
    if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
        *fence = Some(&trimmed[..3]);
        return false;
    }
    let level = trimmed.bytes().take_while(|&b| b == b'#').count();
    (1..=6).contains(&level) && trimmed.as_bytes().get(level) == Some(&b' ')
}
