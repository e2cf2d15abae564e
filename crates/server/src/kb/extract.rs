//! From an uploaded document to the text Cairn stores, chunks and cites: plain text and
//! Markdown as they are; HTML converted to Markdown with scripts, styles and other
//! non-content elements dropped (the stored text is that Markdown, so citation offsets
//! point into what `get_document` returns).

use cairn_core::kb::chunk::Format;

use super::KbError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    Text,
    Markdown,
    Html,
}

impl ContentType {
    /// Accepts the media type (parameters such as `; charset=utf-8` ignored) or a file
    /// extension.
    pub fn parse(s: &str) -> Result<Self, KbError> {
        let base = s.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        match base.as_str() {
            "text/plain" | "txt" | "text" => Ok(Self::Text),
            "text/markdown" | "text/x-markdown" | "md" | "markdown" => Ok(Self::Markdown),
            "text/html" | "application/xhtml+xml" | "html" | "htm" => Ok(Self::Html),
            _ => Err(KbError::UnsupportedType(s.chars().take(100).collect())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text/plain",
            Self::Markdown => "text/markdown",
            Self::Html => "text/html",
        }
    }

    pub fn format(self) -> Format {
        match self {
            Self::Text => Format::Text,
            Self::Markdown | Self::Html => Format::Markdown,
        }
    }
}

/// Tags whose content is never text a reader sees.
const SKIPPED: [&str; 9] = [
    "script", "style", "noscript", "template", "iframe", "object", "embed", "svg", "head",
];

/// The text to store for `raw` of type `ty`.
pub fn extract(raw: &str, ty: ContentType) -> Result<String, KbError> {
    let text = match ty {
        ContentType::Text | ContentType::Markdown => raw.replace("\r\n", "\n"),
        ContentType::Html => htmd::HtmlToMarkdown::builder()
            .skip_tags(SKIPPED.to_vec())
            .build()
            .convert(raw)
            .map_err(|_| KbError::Invalid("content", "the HTML could not be read".into()))?,
    };
    if text.trim().is_empty() {
        return Err(KbError::Empty);
    }
    Ok(text)
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

    #[test]
    fn html_loses_scripts_and_keeps_structure() -> Result<(), KbError> {
        let html = "<html><head><title>x</title><script>alert('pwned')</script></head><body>\
                    <h1>Billing</h1><style>p{color:red}</style><p>Invoices are sent monthly.</p>\
                    <script>document.cookie</script><h2>Refunds</h2><p>Within 30 days.</p></body></html>";
        let md = extract(html, ContentType::Html)?;
        assert!(
            !md.contains("alert") && !md.contains("cookie") && !md.contains("color"),
            "{md}"
        );
        assert!(md.contains("# Billing") && md.contains("## Refunds"), "{md}");
        assert!(md.contains("Invoices are sent monthly."));
        assert!(matches!(
            extract("<script>only()</script>", ContentType::Html),
            Err(KbError::Empty)
        ));
        Ok(())
    }

    #[test]
    fn content_types_and_titles() {
        assert_eq!(
            ContentType::parse("text/markdown; charset=utf-8").ok(),
            Some(ContentType::Markdown)
        );
        assert!(ContentType::parse("application/pdf").is_err());
        assert_eq!(guess_title("\n\n# Getting started\nbody"), "Getting started");
        assert_eq!(guess_title("First line\nsecond"), "First line");
    }
}
