//! Limits shared by every replica through Redis: the same GCRA as in process, computed
//! atomically by a Lua script on the server's clock, and monthly counters.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use cairn_core::api_key::ApiKey;
use cairn_core::ids::ApiKeyId;
use cairn_store::Store;
use chrono::{DateTime, Utc};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;

use super::{month_start, next_month, Decision, LimitScope};

/// KEYS: key burst, tenant burst, month counter, tool burst. ARGV: key burst (0 = none),
/// tenant burst, monthly quota (-1 = none), seed for the month counter, counter TTL (s),
/// tool burst (0 = none). Returns {allowed, limit, remaining, reset_ms|retry_ms, scope,
/// month count after this call or -1}
/// with scope 1 = key, 2 = tenant, 3 = quota, 4 = tool. Nothing is consumed unless every
/// check passes.
const CHECK: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function gcra(key, burst)
  local interval = 60000 / burst
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local new_tat = tat + interval
  local allow_at = new_tat - interval * burst
  if allow_at > now then return false, math.ceil(allow_at - now), tat end
  return true, new_tat, tat
end
local key_burst = tonumber(ARGV[1])
local tenant_burst = tonumber(ARGV[2])
local quota = tonumber(ARGV[3])
local key_tat
if key_burst > 0 then
  local ok, v = gcra(KEYS[1], key_burst)
  if not ok then return {0, key_burst, 0, v, 1, -1} end
  key_tat = v
end
local tool_burst = tonumber(ARGV[6])
local tool_tat
if tool_burst > 0 then
  local ok, v = gcra(KEYS[4], tool_burst)
  if not ok then return {0, tool_burst, 0, v, 4, -1} end
  tool_tat = v
end
local ok, tenant_tat = gcra(KEYS[2], tenant_burst)
if not ok then return {0, tenant_burst, 0, tenant_tat, 2, -1} end
local used_now = -1
if quota >= 0 then
  redis.call('SET', KEYS[3], ARGV[4], 'NX', 'EX', tonumber(ARGV[5]))
  local used = tonumber(redis.call('GET', KEYS[3]))
  if used >= quota then return {0, quota, 0, -1, 3, -1} end
  used_now = redis.call('INCR', KEYS[3])
end
redis.call('SET', KEYS[2], tenant_tat, 'PX', math.ceil(tenant_tat - now) + 1000)
if tool_burst > 0 then
  redis.call('SET', KEYS[4], tool_tat, 'PX', math.ceil(tool_tat - now) + 1000)
end
if key_burst > 0 then
  redis.call('SET', KEYS[1], key_tat, 'PX', math.ceil(key_tat - now) + 1000)
  local interval = 60000 / key_burst
  return {1, key_burst, math.floor((now + interval * key_burst - key_tat) / interval), math.ceil(key_tat - now), 0, used_now}
end
local interval = 60000 / tenant_burst
return {1, tenant_burst, math.floor((now + interval * tenant_burst - tenant_tat) / interval), math.ceil(tenant_tat - now), 0, used_now}
"#;

pub struct Shared {
    conn: ConnectionManager,
    prefix: String,
    script: Script,
    /// Keys whose counter this replica has already seeded this month (so the database
    /// is asked once per key and month, not per call).
    seeded: Mutex<HashSet<(ApiKeyId, DateTime<Utc>)>>,
}

impl Shared {
    pub fn new(url: &str, prefix: &str) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("redis_url: {e}"))?;
        // Short timeouts: a slow Redis must not hold requests; the failure mode decides.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_millis(500)))
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_lazy_with_config(client, config).map_err(|e| format!("redis: {e}"))?;
        Ok(Self {
            conn,
            prefix: prefix.to_owned(),
            script: Script::new(CHECK),
            seeded: Mutex::new(HashSet::new()),
        })
    }

    pub async fn ping(&self) -> Result<(), String> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    pub async fn check(
        &self,
        store: &Store,
        key: &ApiKey,
        key_burst: Option<u32>,
        tool: Option<(&str, u32)>,
        tenant_burst: u32,
        quota: Option<u64>,
    ) -> Result<Decision, String> {
        let now = Utc::now();
        let month = month_start(now);
        let counter = format!("{}:quota:{}:{}", self.prefix, key.id, month.format("%Y%m"));
        // The seed only matters the first time this month's counter is created.
        let first = quota.is_some()
            && self
                .seeded
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert((key.id, month));
        let seed = if first {
            store
                .billable_calls_since(key.tenant_id, key.id, month)
                .await
                .unwrap_or(0)
        } else {
            0
        };
        let mut conn = self.conn.clone();
        let reply: Vec<i64> = self
            .script
            .key(format!("{}:rl:key:{}", self.prefix, key.id))
            .key(format!("{}:rl:tenant:{}", self.prefix, key.tenant_id))
            .key(counter)
            .key(format!(
                "{}:rl:tool:{}:{}",
                self.prefix,
                key.id,
                tool.map_or("", |t| t.0)
            ))
            .arg(key_burst.unwrap_or(0))
            .arg(tenant_burst.max(1))
            .arg(quota.map_or(-1, |q| i64::try_from(q).unwrap_or(i64::MAX)))
            .arg(seed)
            .arg(40 * 86_400)
            .arg(tool.map_or(0, |t| t.1))
            .invoke_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        let [allowed, limit, remaining, ms, scope, used] = reply.as_slice() else {
            return Err(format!("unexpected limiter reply {reply:?}"));
        };
        let limit = u32::try_from(*limit).unwrap_or(u32::MAX);
        let millis = |ms: i64| Duration::from_millis(u64::try_from(ms).unwrap_or(0));
        Ok(if *allowed == 1 {
            Decision::Allowed {
                limit,
                remaining: u32::try_from(*remaining).unwrap_or(0),
                reset: millis(*ms),
                quota: match (quota, u64::try_from(*used)) {
                    (Some(limit), Ok(used)) => Some(super::QuotaUse { used, limit }),
                    _ => None,
                },
            }
        } else {
            let (scope, retry_after) = match scope {
                1 => (LimitScope::Key, millis(*ms)),
                2 => (LimitScope::Tenant, millis(*ms)),
                4 => (LimitScope::Tool, millis(*ms)),
                _ => (
                    LimitScope::Quota,
                    (next_month(now) - now).to_std().unwrap_or(Duration::from_secs(1)),
                ),
            };
            Decision::Limited {
                limit,
                retry_after,
                scope,
            }
        })
    }
}
