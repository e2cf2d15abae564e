//! Tenant value types.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// A tenant's URL name: 3–63 characters of `a-z`, `0-9` and `-`, starting and ending
/// with a letter or digit (a DNS label, so it can later become a subdomain).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Slug(String);

impl Slug {
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let err = |reason: &str| ValidationError::new("slug", reason);
        if !(3..=63).contains(&s.len()) {
            return Err(err("must be 3 to 63 characters long"));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(err("may contain only lowercase letters, digits and hyphens"));
        }
        if s.starts_with('-') || s.ends_with('-') {
            return Err(err("must start and end with a letter or digit"));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Human-readable tenant name: 1–200 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct TenantName(String);

impl TenantName {
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        crate::validate_text("name", s, 200).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A plan name. The catalogue of plans (quotas, limits) lives in configuration, so
/// here it is only a well-formed identifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Plan(String);

impl Plan {
    pub const DEFAULT: &'static str = "free";

    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let ok = (1..=32).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(ValidationError::new(
                "plan",
                "must be 1 to 32 characters of lowercase letters, digits, '-' or '_'",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Plan {
    fn default() -> Self {
        Self(Self::DEFAULT.to_owned())
    }
}

/// A region a tenant's data is pinned to, e.g. `eu-west-1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Region(String);

impl Region {
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let ok = (2..=32).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(ValidationError::new(
                "region",
                "must be 2 to 32 characters of lowercase letters, digits or '-'",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantStatus {
    Active,
    Suspended,
}

impl TenantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
        }
    }

    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        match s {
            "active" => Ok(Self::Active),
            "suspended" => Ok(Self::Suspended),
            _ => Err(ValidationError::new("status", "must be 'active' or 'suspended'")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_rules() {
        for good in ["acme", "a1b", "acme-corp", &"a".repeat(63)] {
            assert!(Slug::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "ab",
            "Acme",
            "acme_corp",
            "-acme",
            "acme-",
            "ac me",
            "acmé",
            &"a".repeat(64),
            "",
        ] {
            assert!(Slug::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn plan_and_status() {
        assert!(Plan::parse("pro").is_ok());
        assert!(Plan::parse("Pro").is_err());
        assert!(Plan::parse("").is_err());
        assert_eq!(TenantStatus::parse("suspended").ok(), Some(TenantStatus::Suspended));
        assert!(TenantStatus::parse("deleted").is_err());
    }
}

/// A tenant as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tenant {
    pub id: crate::ids::TenantId,
    pub slug: Slug,
    pub name: TenantName,
    pub plan: Plan,
    pub region: Option<Region>,
    pub status: TenantStatus,
    /// Serves the MCP conformance fixtures without authentication (operator-only).
    pub conformance_fixtures: bool,
    /// Clients may register themselves (RFC 7591) with this tenant's authorization server.
    pub oauth_dynamic_registration: bool,
    /// Audit events older than this many days are purged (at least 90).
    pub audit_retention_days: i32,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// Fields to create a tenant with.
#[derive(Debug, Clone)]
pub struct NewTenant {
    pub slug: Slug,
    pub name: TenantName,
    pub plan: Plan,
    pub region: Option<Region>,
}

/// A partial update; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct TenantPatch {
    pub name: Option<TenantName>,
    pub plan: Option<Plan>,
    pub status: Option<TenantStatus>,
    pub conformance_fixtures: Option<bool>,
    pub oauth_dynamic_registration: Option<bool>,
    pub audit_retention_days: Option<i32>,
}

/// Audit retention bounds: a security trail is kept at least 90 days.
pub const AUDIT_RETENTION_MIN_DAYS: i64 = 90;
pub const AUDIT_RETENTION_MAX_DAYS: i64 = 36_500;

pub fn audit_retention_days(days: i64) -> Result<i32, ValidationError> {
    if (AUDIT_RETENTION_MIN_DAYS..=AUDIT_RETENTION_MAX_DAYS).contains(&days) {
        i32::try_from(days).map_err(|_| ValidationError::new("audit_retention_days", "out of range"))
    } else {
        Err(ValidationError::new(
            "audit_retention_days",
            format!("must be {AUDIT_RETENTION_MIN_DAYS} to {AUDIT_RETENTION_MAX_DAYS} days"),
        ))
    }
}
