//! Field validation errors. Every value that crosses a trust boundary is parsed into a
//! typed value by a constructor in this crate, so later code never re-checks it.

/// A field failed validation. `field` is the JSON/CLI name the caller used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ValidationError {
    pub field: &'static str,
    pub reason: String,
}

impl ValidationError {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// Trims `s` and checks it is non-empty, at most `max` characters and free of control
/// characters (which would let a value forge lines in logs and CSV exports).
pub fn validate_text(field: &'static str, s: &str, max: usize) -> Result<String, ValidationError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if t.chars().count() > max {
        return Err(ValidationError::new(field, format!("must be at most {max} characters")));
    }
    if t.chars().any(char::is_control) {
        return Err(ValidationError::new(field, "must not contain control characters"));
    }
    Ok(t.to_owned())
}
