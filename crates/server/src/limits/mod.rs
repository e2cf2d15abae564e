//! Rate limits and quotas of MCP calls.
//!
//! * a per-minute burst per API key (from its tier) and per tenant, GCRA;
//! * a monthly quota per key (from its tier), counted in billable calls.
//!
//! One replica: in process (`governor`, counters seeded from the usage roll-ups). With
//! `redis_url`, the same GCRA and counters live in Redis (one Lua script per check), so
//! several replicas enforce one limit. When Redis fails, `redis_failure_mode` decides:
//! `fail_open` falls back to the in-process limits, `fail_closed` refuses the call.

mod local;
mod redis;

use std::time::Duration;

use cairn_core::api_key::ApiKey;
use cairn_store::Store;
use chrono::{DateTime, Datelike, TimeZone, Utc};

use crate::config::{Config, RedisFailureMode};

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed {
        limit: u32,
        remaining: u32,
        reset: Duration,
        /// The key's monthly quota use including this call, when its tier has a quota.
        quota: Option<QuotaUse>,
    },
    Limited {
        limit: u32,
        retry_after: Duration,
        scope: LimitScope,
    },
    /// The shared limiter is unreachable and the configuration says to fail closed.
    Unavailable,
}

/// Calls counted against a monthly quota so far (this one included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaUse {
    pub used: u64,
    pub limit: u64,
}

/// Percentages of a quota that are announced (`quota.threshold`) when a call reaches them.
pub const QUOTA_THRESHOLDS: [u64; 2] = [80, 100];

impl QuotaUse {
    /// The highest threshold this call reached, if any: counts grow by one per call, so
    /// each threshold is reached by exactly one call of a month's counter (with Redis,
    /// across replicas; in process, per replica's counter).
    pub fn crossed(self) -> Option<u64> {
        QUOTA_THRESHOLDS
            .into_iter()
            .rev()
            .find(|pct| self.limit > 0 && self.used == (self.limit.saturating_mul(*pct)).div_ceil(100))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitScope {
    Key,
    Tenant,
    Tool,
    Quota,
}

impl LimitScope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Key => "key",
            Self::Tenant => "tenant",
            Self::Tool => "tool",
            Self::Quota => "monthly_quota",
        }
    }
}

pub struct Limits {
    local: local::Local,
    redis: Option<redis::Shared>,
    failure_mode: RedisFailureMode,
    tiers: std::collections::BTreeMap<String, crate::config::TierConfig>,
    tenant_burst: u32,
    tool_bursts: std::collections::BTreeMap<String, u32>,
    /// After a Redis failure, skip Redis until this instant instead of paying its
    /// timeout on every call.
    redis_down_until: std::sync::Mutex<Option<std::time::Instant>>,
}

/// How long Redis is left alone after a failure.
const REDIS_RETRY_AFTER: Duration = Duration::from_secs(2);

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("shared", &self.redis.is_some())
            .finish_non_exhaustive()
    }
}

/// The first instant of the month after `now` (UTC), when monthly quotas reset.
pub fn next_month(now: DateTime<Utc>) -> DateTime<Utc> {
    let (y, m) = if now.month() == 12 {
        (now.year() + 1, 1)
    } else {
        (now.year(), now.month() + 1)
    };
    Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single().unwrap_or(now)
}

pub fn month_start(now: DateTime<Utc>) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
        .single()
        .unwrap_or(now)
}

impl Limits {
    pub fn new(config: &Config) -> Result<Self, String> {
        let redis = match &config.redis_url {
            Some(url) => Some(redis::Shared::new(url, &config.redis_key_prefix)?),
            None => None,
        };
        Ok(Self {
            local: local::Local::new(config),
            redis,
            failure_mode: config.redis_failure_mode,
            tiers: config.tiers.clone(),
            tenant_burst: config.tenant_burst_per_minute,
            tool_bursts: config.tool_burst_per_minute.clone(),
            redis_down_until: std::sync::Mutex::new(None),
        })
    }

    pub fn is_shared(&self) -> bool {
        self.redis.is_some()
    }

    /// Whether the shared limiter answers (for `/health/ready`); `None` without Redis.
    pub async fn ping(&self) -> Option<Result<(), String>> {
        match &self.redis {
            Some(r) => Some(r.ping().await),
            None => None,
        }
    }

    /// Takes one call from the tenant's burst only (callers without an API key). In
    /// process even when Redis is configured.
    pub fn check_tenant(&self, tenant: cairn_core::ids::TenantId) -> Decision {
        self.local.check_tenant(tenant)
    }

    /// Drops idle in-process limiter state; called periodically.
    pub fn prune(&self) {
        self.local.prune();
    }

    pub fn failure_mode(&self) -> RedisFailureMode {
        self.failure_mode
    }

    /// Takes one billable call from the key's burst, the tool's burst (when configured),
    /// the tenant's burst and the key's monthly quota.
    pub async fn check(&self, store: &Store, key: &ApiKey, tool: Option<&str>) -> Decision {
        let tool = tool
            .and_then(|t| self.tool_bursts.get_key_value(t))
            .map(|(name, burst)| (name.as_str(), *burst));
        let tier = self.tiers.get(&key.tier);
        let key_burst = tier.map(|t| t.burst_per_minute);
        let quota = tier.and_then(|t| t.monthly_quota);
        if let Some(shared) = &self.redis {
            let now = std::time::Instant::now();
            let mut down = self
                .redis_down_until
                .lock()
                .map(|g| g.is_some_and(|t| now < t))
                .unwrap_or(false);
            if !down {
                match shared
                    .check(store, key, key_burst, tool, self.tenant_burst, quota)
                    .await
                {
                    Ok(decision) => return decision,
                    Err(e) => {
                        tracing::warn!(error = %e, mode = ?self.failure_mode, "shared rate limiter unavailable");
                        if let Ok(mut until) = self.redis_down_until.lock() {
                            *until = Some(now + REDIS_RETRY_AFTER);
                        }
                        down = true;
                    }
                }
            }
            if down && self.failure_mode == RedisFailureMode::FailClosed {
                return Decision::Unavailable;
            }
        }
        self.local.check(store, key, tool, quota).await
    }
}

#[cfg(test)]
mod tests {
    use super::QuotaUse;

    #[test]
    fn each_threshold_is_reached_by_one_call() {
        let hits = |limit| {
            (1..=limit + 2)
                .filter_map(|used| QuotaUse { used, limit }.crossed().map(|p| (used, p)))
                .collect::<Vec<_>>()
        };
        assert_eq!(hits(10), [(8, 80), (10, 100)]);
        assert_eq!(hits(1000), [(800, 80), (1000, 100)]);
        // Both thresholds on one call: the higher is announced.
        assert_eq!(hits(3), [(3, 100)]);
        assert_eq!(hits(0), []);
    }
}
