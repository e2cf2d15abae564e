//! Outbound webhook settings (`[webhooks]` in cairn.toml, `CAIRN_WEBHOOKS__<KEY>`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// Delay before each attempt, in seconds: the first entry is the first attempt.
    /// Default 0, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (Svix's schedule).
    pub retry_schedule_secs: Vec<u64>,
    /// An endpoint failing for this long (no success since its first failure) is disabled.
    pub disable_after_secs: u64,
    /// Per-request timeout.
    pub timeout_secs: u64,
    /// How often the delivery worker looks for due deliveries.
    pub poll_interval_ms: u64,
    /// Allow endpoints on private, loopback and link-local addresses. For tests only:
    /// otherwise a tenant could make the server call into its own network (SSRF).
    pub allow_private_addresses: bool,
    /// Response bytes kept in the attempt log.
    pub response_log_bytes: usize,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            retry_schedule_secs: vec![0, 5, 300, 1800, 7200, 18_000, 36_000, 36_000],
            disable_after_secs: 5 * 24 * 3600,
            timeout_secs: 15,
            poll_interval_ms: 1000,
            allow_private_addresses: false,
            response_log_bytes: 2048,
        }
    }
}

impl WebhookConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.retry_schedule_secs.is_empty() || self.retry_schedule_secs.len() > 32 {
            return Err("retry_schedule_secs: 1 to 32 delays".into());
        }
        if self.timeout_secs == 0 || self.timeout_secs > 120 {
            return Err("timeout_secs: 1 to 120".into());
        }
        if self.poll_interval_ms < 50 {
            return Err("poll_interval_ms: at least 50".into());
        }
        Ok(())
    }
}
