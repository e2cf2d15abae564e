//! From an uploaded document to the text Cairn stores, chunks and cites: plain text and
//! Markdown as they are; HTML converted to Markdown with scripts, styles and other
//! non-content elements dropped (the stored text is that Markdown, so citation offsets
//! point into what `get_document` returns).
//!
//! Every limit here is checked before the step it protects. HTML is parsed into a tree
//! by html5ever (iterative, linear in the input) and its depth measured without
//! recursion; only a tree within [`Limits::max_depth`] reaches the converter, whose walk
//! recurses once per level. A document nested 2 500 levels deep used to overflow the
//! stack of the serving thread and abort the whole process. The server also runs this
//! in a separate worker process (crates/server/src/kb/extract), so that a bug in the
//! third-party parser cannot take the server down; these limits make such a crash the
//! exception rather than the normal answer to a hostile document.

use std::rc::Rc;

use htmd::Node;

/// Bounds on one extraction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deepest element nesting accepted in an HTML tree (real pages stay under ~60).
    pub max_depth: usize,
    /// Most nodes (elements, text, comments) in an HTML tree.
    pub max_nodes: usize,
    /// Longest text produced, in bytes.
    pub max_output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_depth: 256,
            max_nodes: 2_000_000,
            max_output_bytes: 64 * 1024 * 1024,
        }
    }
}

/// The formats extraction understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Markdown,
    Html,
}

/// Why a document could not be turned into text. The messages are shown to the
/// submitter; they never contain the document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum ExtractError {
    #[error("the HTML nests elements {depth} levels deep or more; the limit is {limit}")]
    TooDeep { depth: usize, limit: usize },
    #[error("the HTML has more than {limit} nodes")]
    TooManyNodes { limit: usize },
    #[error("the extracted text is larger than {limit} bytes")]
    OutputTooLarge { limit: usize },
    #[error("the document has no text")]
    Empty,
}

impl ExtractError {
    /// Stable code for clients (HTTP error bodies, MCP tool errors, webhook outcomes).
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooDeep { .. } | Self::TooManyNodes { .. } | Self::OutputTooLarge { .. } => "document_too_complex",
            Self::Empty => "empty_document",
        }
    }
}

/// Tags whose content is never text a reader sees.
const SKIPPED: [&str; 9] = [
    "script", "style", "noscript", "template", "iframe", "object", "embed", "svg", "head",
];

/// The text to store for `raw` of kind `kind`.
pub fn extract(raw: &str, kind: Kind, limits: &Limits) -> Result<String, ExtractError> {
    let text = match kind {
        Kind::Text | Kind::Markdown => raw.replace("\r\n", "\n"),
        Kind::Html => html_to_markdown(raw, limits)?,
    };
    if text.len() > limits.max_output_bytes {
        return Err(ExtractError::OutputTooLarge {
            limit: limits.max_output_bytes,
        });
    }
    if text.trim().is_empty() {
        return Err(ExtractError::Empty);
    }
    Ok(text)
}

/// HTML → Markdown within `limits`.
pub fn html_to_markdown(html: &str, limits: &Limits) -> Result<String, ExtractError> {
    let converter = htmd::HtmlToMarkdown::builder().skip_tags(SKIPPED.to_vec()).build();
    // html_to_tree never fails (html5ever recovers from any input); the Result is the
    // crate's API shape.
    let tree = converter.html_to_tree(html).map_err(|_| ExtractError::Empty)?;
    check_tree(&tree, limits)?;
    Ok(converter.tree_to_markdown(&tree))
}

/// Depth and size of the tree, measured with an explicit stack (no recursion).
fn check_tree(root: &Rc<Node>, limits: &Limits) -> Result<(), ExtractError> {
    let mut stack: Vec<(Rc<Node>, usize)> = vec![(root.clone(), 0)];
    let mut nodes = 0usize;
    while let Some((node, depth)) = stack.pop() {
        nodes += 1;
        if nodes > limits.max_nodes {
            return Err(ExtractError::TooManyNodes {
                limit: limits.max_nodes,
            });
        }
        if depth > limits.max_depth {
            return Err(ExtractError::TooDeep {
                depth,
                limit: limits.max_depth,
            });
        }
        for child in node.children.borrow().iter() {
            stack.push((child.clone(), depth + 1));
        }
    }
    Ok(())
}

/// The title of a document without one: its first heading, else its first line.
pub fn guess_title(text: &str) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with('#'))
        .or_else(|| text.lines().map(str::trim).find(|l| !l.is_empty()))
        .unwrap_or_default();
    line.trim_start_matches('#').trim().chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn html(raw: &str) -> Result<String, ExtractError> {
        extract(raw, Kind::Html, &Limits::default())
    }

    #[test]
    fn html_loses_scripts_and_keeps_structure() -> Result<(), ExtractError> {
        let page = "<html><head><title>x</title><script>alert('pwned')</script></head><body>\
                    <h1>Billing</h1><style>p{color:red}</style><p>Invoices are sent monthly.</p>\
                    <script>document.cookie</script><h2>Refunds</h2><p>Within 30 days.</p></body></html>";
        let md = html(page)?;
        assert!(
            !md.contains("alert") && !md.contains("cookie") && !md.contains("color"),
            "{md}"
        );
        assert!(md.contains("# Billing") && md.contains("## Refunds"), "{md}");
        assert!(md.contains("Invoices are sent monthly."));
        assert_eq!(html("<script>only()</script>"), Err(ExtractError::Empty));
        Ok(())
    }

    /// The documents that aborted the server (issue 14) are refused with a depth error,
    /// on this thread's ordinary test stack.
    #[test]
    fn hostile_nesting_is_refused_not_walked() {
        let deep = format!("{}x{}", "<div>".repeat(2500), "</div>".repeat(2500));
        let unclosed = "<b><i>".repeat(50_000);
        let tables = "<table><tr><td>".repeat(3000);
        for doc in [deep, unclosed, tables] {
            let err = html(&doc).err();
            assert!(matches!(err, Some(ExtractError::TooDeep { limit: 256, .. })), "{err:?}");
            assert_eq!(err.map(|e| e.code()), Some("document_too_complex"));
        }
    }

    #[test]
    fn nesting_within_the_limit_is_converted() -> Result<(), ExtractError> {
        // html, body and the text node take three levels of the budget.
        let ok = format!("{}deep text{}", "<div>".repeat(250), "</div>".repeat(250));
        assert!(html(&ok)?.contains("deep text"));
        // Unclosed paragraphs and list items close each other: a flat tree, accepted.
        let flat = "<p>para".repeat(20_000) + &"<li>item".repeat(20_000);
        assert!(html(&flat)?.contains("para"));
        Ok(())
    }

    #[test]
    fn node_and_output_limits() {
        let limits = Limits {
            max_nodes: 100,
            ..Limits::default()
        };
        let many = "<p>x</p>".repeat(200);
        assert_eq!(
            extract(&many, Kind::Html, &limits),
            Err(ExtractError::TooManyNodes { limit: 100 })
        );
        let small = Limits {
            max_output_bytes: 10,
            ..Limits::default()
        };
        assert_eq!(
            extract("a long line of text", Kind::Text, &small),
            Err(ExtractError::OutputTooLarge { limit: 10 })
        );
        assert_eq!(extract("a\r\nb", Kind::Markdown, &Limits::default()), Ok("a\nb".into()));
    }

    #[test]
    fn titles() {
        assert_eq!(guess_title("\n\n# Getting started\nbody"), "Getting started");
        assert_eq!(guess_title("First line\nsecond"), "First line");
    }
}
