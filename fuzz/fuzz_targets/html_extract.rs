//! `cairn_core::kb::extract::extract` on arbitrary HTML (and text/Markdown), with small
//! limits so the depth, node and output checks are reached on small inputs.
//!
//! Input: one header byte (bits 0–1: kind; bits 2–7: depth limit 8–71), then the document.
//!
//! Invariants: never a panic or stack overflow (the converter's recursion only runs on a
//! tree within the depth limit, checked without recursion); an answer is either text that
//! is not blank and within the output limit, or one of the documented refusals; text and
//! Markdown come back as the input with CRLF folded.
#![no_main]

use cairn_core::kb::extract::{extract, ExtractError, Kind, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [flags, rest @ ..] = data else {
        return;
    };
    let Ok(source) = std::str::from_utf8(rest) else {
        return;
    };
    let kind = match flags & 3 {
        0 => Kind::Text,
        1 => Kind::Markdown,
        _ => Kind::Html,
    };
    let limits = Limits {
        max_depth: 8 + usize::from(flags >> 2),
        max_nodes: 5_000,
        max_output_bytes: 64 * 1024,
    };
    match extract(source, kind, &limits) {
        Ok(text) => {
            assert!(!text.trim().is_empty());
            assert!(text.len() <= limits.max_output_bytes);
            if kind != Kind::Html {
                assert_eq!(text, source.replace("\r\n", "\n"));
            }
        }
        Err(ExtractError::TooDeep { depth, limit }) => {
            assert_eq!(kind, Kind::Html);
            assert!(depth > limit && limit == limits.max_depth);
        }
        Err(ExtractError::TooManyNodes { limit }) => assert_eq!(limit, limits.max_nodes),
        Err(ExtractError::OutputTooLarge { limit }) => assert_eq!(limit, limits.max_output_bytes),
        Err(ExtractError::Empty) => {}
    }
});
