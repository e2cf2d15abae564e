//! Rate limits: a per-minute burst per API key (from its tier) and per tenant, GCRA
//! via `governor` in process. The decision carries what the `RateLimit-*` headers and
//! the JSON-RPC error need.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::Duration;

use cairn_core::api_key::ApiKey;
use cairn_core::ids::{ApiKeyId, TenantId};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::config::Config;

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed {
        limit: u32,
        remaining: u32,
        reset: Duration,
    },
    Limited {
        limit: u32,
        retry_after: Duration,
        scope: LimitScope,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitScope {
    Key,
    Tenant,
}

impl LimitScope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Key => "key",
            Self::Tenant => "tenant",
        }
    }
}

pub struct Limits {
    clock: DefaultClock,
    per_tier: HashMap<String, (u32, Keyed<ApiKeyId>)>,
    tenant: (u32, Keyed<TenantId>),
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("tiers", &self.per_tier.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn per_minute<K: std::hash::Hash + Eq + Clone>(n: u32) -> (u32, Keyed<K>) {
    let burst = NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
    (
        burst.get(),
        RateLimiter::dashmap(Quota::per_minute(burst)).with_middleware::<StateInformationMiddleware>(),
    )
}

impl Limits {
    pub fn new(config: &Config) -> Self {
        let per_tier = config
            .tiers
            .iter()
            .map(|(name, tier)| (name.clone(), per_minute(tier.burst_per_minute)))
            .collect();
        Self {
            clock: DefaultClock::default(),
            per_tier,
            tenant: per_minute(config.tenant_burst_per_minute),
        }
    }

    /// Takes one call from the key's and the tenant's allowance. The key is checked
    /// first, so a limited key does not consume its tenant's allowance.
    pub async fn check(&self, key: &ApiKey) -> Decision {
        let key_decision = match self.per_tier.get(&key.tier) {
            Some((limit, limiter)) => self.decide(*limit, limiter.check_key(&key.id), LimitScope::Key),
            // A key whose tier was removed from the config falls back to the tenant limit only.
            None => None,
        };
        if let Some(limited @ Decision::Limited { .. }) = key_decision {
            return limited;
        }
        let (limit, limiter) = &self.tenant;
        let tenant_decision = self.decide(*limit, limiter.check_key(&key.tenant_id), LimitScope::Tenant);
        match (key_decision, tenant_decision) {
            (_, Some(limited @ Decision::Limited { .. })) => limited,
            (Some(allowed), _) => allowed,
            (None, Some(allowed)) => allowed,
            (None, None) => Decision::Allowed {
                limit: 0,
                remaining: 0,
                reset: Duration::ZERO,
            },
        }
    }

    fn decide(
        &self,
        limit: u32,
        outcome: Result<governor::middleware::StateSnapshot, governor::NotUntil<governor::clock::QuantaInstant>>,
        scope: LimitScope,
    ) -> Option<Decision> {
        Some(match outcome {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                // Time until the allowance is full again: one emission interval per used cell.
                let per_cell = Duration::from_secs(60) / limit.max(1);
                Decision::Allowed {
                    limit,
                    remaining,
                    reset: per_cell * (limit - remaining.min(limit)),
                }
            }
            Err(not_until) => Decision::Limited {
                limit,
                retry_after: not_until.wait_time_from(self.clock.now()),
                scope,
            },
        })
    }
}
