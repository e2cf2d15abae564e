//! Query words and result snippets.

/// The plain words of a query, lower-cased and de-duplicated, at most 32: safe to place
/// in an FTS5 or tsquery expression (letters and digits only).
pub fn query_terms(query: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in query.split(|c: char| !c.is_alphanumeric()) {
        if word.is_empty() {
            continue;
        }
        let w = word.to_lowercase();
        if !out.contains(&w) {
            out.push(w);
        }
        if out.len() == 32 {
            break;
        }
    }
    out
}

/// Up to `max_chars` characters of `text` around the first query word it contains (the
/// start when none), cut at word boundaries, with `…` where text was left out.
pub fn snippet(text: &str, terms: &[String], max_chars: usize) -> String {
    let lower = text.to_lowercase();
    // Lower-casing can change byte lengths; only trust a hit at a char boundary of `text`.
    let hit = terms
        .iter()
        .filter_map(|t| lower.find(t.as_str()))
        .min()
        .filter(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    let total = text.chars().count();
    if total <= max_chars {
        return text.trim().to_owned();
    }
    let hit_char = text[..hit].chars().count();
    let start_char = hit_char.saturating_sub(max_chars / 4).min(total - max_chars);
    let mut s: String = text.chars().skip(start_char).take(max_chars).collect();
    let mut cut_front = start_char > 0;
    if cut_front {
        if let Some(i) = s.find(char::is_whitespace) {
            s = s[i..].to_owned();
        }
    }
    let cut_back = start_char + max_chars < total;
    if cut_back {
        if let Some(i) = s.rfind(char::is_whitespace) {
            s.truncate(i);
        }
    }
    let mut out = String::new();
    if cut_front {
        out.push('…');
        cut_front = false;
    }
    out.push_str(s.trim());
    if cut_back && !cut_front {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_are_plain_words() {
        assert_eq!(
            query_terms("How do I \"reset\" my PASSWORD? reset* OR (x)"),
            vec!["how", "do", "i", "reset", "my", "password", "or", "x"]
        );
        assert!(query_terms("*** \" ( )").is_empty());
    }

    #[test]
    fn snippet_centres_on_the_first_hit() {
        let text = format!(
            "{} the password is reset here {}",
            "filler ".repeat(50),
            "tail ".repeat(50)
        );
        let s = snippet(&text, &["password".into()], 80);
        assert!(s.contains("password"), "{s}");
        assert!(s.starts_with('…') && s.ends_with('…'), "{s}");
        assert!(s.chars().count() <= 82);
        assert_eq!(snippet("short text", &[], 80), "short text");
        let unicode = "ä".repeat(300);
        assert!(snippet(&unicode, &["ä".into()], 50).chars().count() <= 52);
    }
}
