//! In-process limits: GCRA via `governor`, monthly counters in memory.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use cairn_core::api_key::ApiKey;
use cairn_core::ids::{ApiKeyId, TenantId};
use cairn_store::Store;
use chrono::Utc;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use super::{month_start, next_month, Decision, LimitScope};
use crate::config::Config;

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>;

pub struct Local {
    clock: DefaultClock,
    per_tier: HashMap<String, (u32, Keyed<ApiKeyId>)>,
    tenant: (u32, Keyed<TenantId>),
    per_tool: HashMap<String, (u32, Keyed<ApiKeyId>)>,
    /// Billable calls this month per key: (month start, count). Seeded from the roll-ups.
    months: Mutex<HashMap<ApiKeyId, (chrono::DateTime<Utc>, u64)>>,
}

fn per_minute<K: std::hash::Hash + Eq + Clone>(n: u32) -> (u32, Keyed<K>) {
    let burst = NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
    (
        burst.get(),
        RateLimiter::dashmap(Quota::per_minute(burst)).with_middleware::<StateInformationMiddleware>(),
    )
}

impl Local {
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
            per_tool: config
                .tool_burst_per_minute
                .iter()
                .map(|(tool, n)| (tool.clone(), per_minute(*n)))
                .collect(),
            months: Mutex::new(HashMap::new()),
        }
    }

    pub async fn check(&self, store: &Store, key: &ApiKey, tool: Option<(&str, u32)>, quota: Option<u64>) -> Decision {
        // A key whose tier was removed from the config falls back to the tenant limit only.
        let key_decision = self
            .per_tier
            .get(&key.tier)
            .map(|(limit, limiter)| self.decide(*limit, limiter.check_key(&key.id), LimitScope::Key));
        if let Some(limited @ Decision::Limited { .. }) = key_decision {
            return limited;
        }
        if let Some((limit, limiter)) = tool.and_then(|(name, _)| self.per_tool.get(name)) {
            if let limited @ Decision::Limited { .. } =
                self.decide(*limit, limiter.check_key(&key.id), LimitScope::Tool)
            {
                return limited;
            }
        }
        let (limit, limiter) = &self.tenant;
        let tenant_decision = self.decide(*limit, limiter.check_key(&key.tenant_id), LimitScope::Tenant);
        if let limited @ Decision::Limited { .. } = tenant_decision {
            return limited;
        }
        let mut used = None;
        if let Some(quota) = quota {
            match self.take_quota(store, key, quota).await {
                Err(limited) => return limited,
                Ok(n) => used = Some(super::QuotaUse { used: n, limit: quota }),
            }
        }
        let mut decision = key_decision.unwrap_or(tenant_decision);
        if let Decision::Allowed { quota, .. } = &mut decision {
            *quota = used;
        }
        decision
    }

    pub fn check_tenant(&self, tenant: TenantId) -> Decision {
        let (limit, limiter) = &self.tenant;
        self.decide(*limit, limiter.check_key(&tenant), LimitScope::Tenant)
    }

    /// Forgets limiter state that is back to full allowance (keeps memory bounded by
    /// the keys active in the last minute).
    pub fn prune(&self) {
        for (_, limiter) in self.per_tier.values().chain(self.per_tool.values()) {
            limiter.retain_recent();
        }
        self.tenant.1.retain_recent();
    }

    /// Counts one call against the monthly quota: the count with this call, or
    /// `Err(Limited)` once it is used up.
    async fn take_quota(&self, store: &Store, key: &ApiKey, quota: u64) -> Result<u64, Decision> {
        let now = Utc::now();
        let month = month_start(now);
        let known = self.lock().get(&key.id).filter(|(m, _)| *m == month).map(|(_, n)| *n);
        let used = match known {
            Some(n) => n,
            None => {
                // First call of this key this month on this replica: start from the roll-ups.
                let seeded = store
                    .billable_calls_since(key.tenant_id, key.id, month)
                    .await
                    .unwrap_or(0);
                let mut map = self.lock();
                let entry = map.entry(key.id).or_insert((month, seeded));
                if entry.0 != month {
                    *entry = (month, seeded);
                }
                entry.1
            }
        };
        if used >= quota {
            let retry_after = (next_month(now) - now).to_std().unwrap_or(Duration::from_secs(1));
            let limit = u32::try_from(quota).unwrap_or(u32::MAX);
            return Err(Decision::Limited {
                limit,
                retry_after,
                scope: LimitScope::Quota,
            });
        }
        let mut map = self.lock();
        Ok(match map.get_mut(&key.id) {
            Some(entry) => {
                entry.1 += 1;
                entry.1
            }
            None => used + 1,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ApiKeyId, (chrono::DateTime<Utc>, u64)>> {
        self.months.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn decide(
        &self,
        limit: u32,
        outcome: Result<governor::middleware::StateSnapshot, governor::NotUntil<governor::clock::QuantaInstant>>,
        scope: LimitScope,
    ) -> Decision {
        match outcome {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                // Time until the allowance is full again: one emission interval per used cell.
                let per_cell = Duration::from_secs(60) / limit.max(1);
                Decision::Allowed {
                    limit,
                    remaining,
                    reset: per_cell * (limit - remaining.min(limit)),
                    quota: None,
                }
            }
            Err(not_until) => Decision::Limited {
                limit,
                retry_after: not_until.wait_time_from(self.clock.now()),
                scope,
            },
        }
    }
}
