//! Prefixed, typed identifiers. Inside the database an id is a UUID (v7, so inserts stay
//! index-local); outside it is `<prefix>_<32 hex>`, which tells a reader what kind of
//! object an id names and stops one kind being passed where another is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::ValidationError;

macro_rules! prefixed_id {
    ($(#[$meta:meta])* $name:ident, $prefix:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }

            /// Accepts the prefixed form and, for convenience at the CLI, a bare UUID.
            pub fn parse(field: &'static str, s: &str) -> Result<Self, ValidationError> {
                let raw = s.strip_prefix(concat!($prefix, "_")).unwrap_or(s);
                let looks_bare = raw.len() == 36 && raw.contains('-');
                if raw.len() != 32 && !looks_bare {
                    return Err(ValidationError::new(
                        field,
                        concat!("must be an id of the form ", $prefix, "_<32 hex digits>"),
                    ));
                }
                Uuid::parse_str(raw).map(Self).map_err(|_| {
                    ValidationError::new(
                        field,
                        concat!("must be an id of the form ", $prefix, "_<32 hex digits>"),
                    )
                })
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}_{}", $prefix, self.0.simple())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse("id", s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse("id", &s).map_err(serde::de::Error::custom)
            }
        }
    };
}

prefixed_id!(
    /// A tenant (customer) of the platform.
    TenantId, "ten"
);
prefixed_id!(
    /// A human user; users belong to several tenants through memberships.
    UserId, "usr"
);
prefixed_id!(
    /// An operator (platform administrator) token.
    OperatorTokenId, "otk"
);
prefixed_id!(
    /// An invitation to join a tenant.
    InvitationId, "inv"
);
prefixed_id!(
    /// An API key (the id of the record, not the secret).
    ApiKeyId, "key"
);
prefixed_id!(
    /// One audit event.
    AuditEventId, "aud"
);
prefixed_id!(
    /// A knowledge base of a tenant.
    KbId, "kb"
);
prefixed_id!(
    /// A document in a knowledge base.
    DocumentId, "doc"
);

prefixed_id!(
    /// An inbound webhook source of a tenant.
    WebhookSourceId, "whs"
);
prefixed_id!(
    /// A verified inbound webhook event.
    WebhookEventId, "whe"
);
prefixed_id!(
    /// An outbound webhook endpoint of a tenant.
    WebhookEndpointId, "whep"
);
prefixed_id!(
    /// One event's delivery to one endpoint.
    WebhookDeliveryId, "whd"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixed_round_trip() -> Result<(), ValidationError> {
        let id = TenantId::new();
        let text = id.to_string();
        assert!(text.starts_with("ten_"));
        assert_eq!(text.len(), 4 + 32);
        assert_eq!(TenantId::parse("id", &text)?, id);
        assert_eq!(TenantId::parse("id", &id.as_uuid().to_string())?, id);
        Ok(())
    }

    #[test]
    fn wrong_prefix_or_garbage_is_rejected() {
        let user = UserId::new().to_string();
        assert!(TenantId::parse("tenant_id", &user).is_err());
        assert!(TenantId::parse("tenant_id", "ten_xyz").is_err());
        assert!(TenantId::parse("tenant_id", "").is_err());
        assert!(TenantId::parse("tenant_id", "ten_0123456789abcdef0123456789abcdeg").is_err());
    }
}
