//! User and membership value types.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// An e-mail address, stored lower-cased so uniqueness is case-insensitive. The check is
/// deliberately modest (one `@`, a dotted domain, no spaces): the only real proof of an
/// address is a message delivered to it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let err = || ValidationError::new("email", "must be a valid e-mail address");
        let s = s.trim().to_lowercase();
        if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err());
        }
        let (local, domain) = s.split_once('@').ok_or_else(err)?;
        let domain_ok = domain.contains('.')
            && !domain.contains('@')
            && domain.split('.').all(|label| !label.is_empty() && label.len() <= 63);
        if local.is_empty() || local.len() > 64 || !domain_ok {
            return Err(err());
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        crate::validate_text("display_name", s, 200).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A user's role within one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Member,
    Admin,
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Member => "member",
        }
    }

    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        match s {
            "owner" => Ok(Self::Owner),
            "admin" => Ok(Self::Admin),
            "member" => Ok(Self::Member),
            _ => Err(ValidationError::new(
                "role",
                "must be one of 'owner', 'admin', 'member'",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_normalised_and_checked() {
        assert_eq!(
            Email::parse(" Ada@Example.COM ").map(|e| e.0).ok(),
            Some("ada@example.com".into())
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a da@example.com",
            "a@b@c.com",
            "ada@.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn roles() {
        assert_eq!(Role::parse("admin").ok(), Some(Role::Admin));
        assert!(Role::parse("root").is_err());
        assert!(Role::Owner > Role::Admin && Role::Admin > Role::Member);
    }
}

/// A user as stored. The password hash never leaves the store in this type.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct User {
    pub id: crate::ids::UserId,
    pub email: Email,
    pub display_name: DisplayName,
    pub has_password: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// A user's membership of a tenant, with the user's details for listings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Member {
    pub user_id: crate::ids::UserId,
    pub email: Email,
    pub display_name: DisplayName,
    pub role: Role,
    pub joined_at: chrono::DateTime<chrono::Utc>,
}

/// One tenant a user belongs to, with the user's role there.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserTenant {
    #[serde(flatten)]
    pub tenant: crate::tenant::Tenant,
    pub role: Role,
}
