//! Alert rules: counts of audit events over a sliding window. Pure logic: matching an
//! action against a rule's pattern and validating a rule.

use serde::{Deserialize, Serialize};

use crate::validate::ValidationError;

/// What a rule counts: an exact action (`auth.failed`), a prefix (`api_key.*`) or `*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ActionPattern(String);

impl ActionPattern {
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let body = s.strip_suffix('*').unwrap_or(s);
        let ok = (1..=100).contains(&s.len())
            && body
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            && !s.get(..s.len().saturating_sub(1)).unwrap_or("").contains('*');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(ValidationError::new(
                "action",
                "an action like auth.failed, a prefix like api_key.*, or *",
            ))
        }
    }

    pub fn matches(&self, action: &str) -> bool {
        match self.0.strip_suffix('*') {
            Some(prefix) => action.starts_with(prefix),
            None => action == self.0,
        }
    }

    /// SQL `LIKE` form (`api_key.%`); `_` is escaped with `\`.
    pub fn like(&self) -> String {
        let escaped = self.0.replace('\\', "\\\\").replace('_', "\\_").replace('%', "\\%");
        match escaped.strip_suffix('*') {
            Some(prefix) => format!("{prefix}%"),
            None => escaped,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ActionPattern {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, ValidationError> {
        Self::parse(&s)
    }
}

impl From<ActionPattern> for String {
    fn from(p: ActionPattern) -> String {
        p.0
    }
}

/// Counted separately per source IP or per actor, or all together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    None,
    SourceIp,
    Actor,
    /// Per tenant (platform rules only; platform events form the "" group).
    Tenant,
}

impl GroupBy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::SourceIp => "source_ip",
            Self::Actor => "actor",
            Self::Tenant => "tenant",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(Self::None),
            "source_ip" => Some(Self::SourceIp),
            "actor" => Some(Self::Actor),
            "tenant" => Some(Self::Tenant),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "info" => Some(Self::Info),
            "warning" => Some(Self::Warning),
            "critical" => Some(Self::Critical),
            _ => None,
        }
    }
}

/// Bounds of a rule's numbers.
pub fn check_numbers(threshold: i64, window_secs: i64, cooldown_secs: i64) -> Result<(), ValidationError> {
    if !(1..=1_000_000).contains(&threshold) {
        return Err(ValidationError::new("threshold", "threshold: 1 to 1 000 000"));
    }
    if !(1..=86_400).contains(&window_secs) {
        return Err(ValidationError::new("window_secs", "window_secs: 1 to 86 400"));
    }
    if !(0..=604_800).contains(&cooldown_secs) {
        return Err(ValidationError::new("cooldown_secs", "cooldown_secs: 0 to 604 800"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_exactly_or_by_prefix_and_bad_ones_are_refused() {
        let exact = ActionPattern::parse("auth.failed").unwrap();
        assert!(exact.matches("auth.failed") && !exact.matches("auth.failed2"));
        let prefix = ActionPattern::parse("api_key.*").unwrap();
        assert!(prefix.matches("api_key.revoked") && !prefix.matches("apikey.x"));
        assert_eq!(prefix.like(), "api\\_key.%");
        assert!(ActionPattern::parse("*").unwrap().matches("anything"));
        for bad in ["", "a*b", "**", "Auth", "a b", &"x".repeat(101)] {
            assert!(ActionPattern::parse(bad).is_err(), "{bad}");
        }
        assert!(check_numbers(10, 60, 600).is_ok());
        assert!(check_numbers(0, 60, 0).is_err() && check_numbers(1, 0, 0).is_err());
    }
}
