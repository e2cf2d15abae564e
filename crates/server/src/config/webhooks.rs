//! Outbound webhook settings (`[webhooks]` in cairn.toml, `CAIRN_WEBHOOKS__<KEY>`).

use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize)]
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
    /// The operator's endpoint for platform alert rules' `alert.fired` (signed like tenant
    /// deliveries, retried on the same schedule while the server runs).
    pub operator_url: Option<String>,
    /// Its Standard Webhooks secret (`whsec_…`). Never logged (`Debug` redacts it).
    pub operator_secret: Option<String>,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("retry_schedule_secs", &self.retry_schedule_secs)
            .field("disable_after_secs", &self.disable_after_secs)
            .field("timeout_secs", &self.timeout_secs)
            .field("poll_interval_ms", &self.poll_interval_ms)
            .field("allow_private_addresses", &self.allow_private_addresses)
            .field("response_log_bytes", &self.response_log_bytes)
            .field("operator_url", &self.operator_url)
            .field("operator_secret", &self.operator_secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
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
            operator_url: None,
            operator_secret: None,
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
        match (&self.operator_url, &self.operator_secret) {
            (None, None) => {}
            (Some(url), Some(secret)) => {
                crate::webhooks_out::check_url(url, self).map_err(|e| format!("operator_{e}"))?;
                cairn_core::webhook::WebhookSecret::parse(secret)
                    .map_err(|e| format!("operator_secret: {}", e.reason))?;
            }
            _ => return Err("operator_url and operator_secret go together".into()),
        }
        Ok(())
    }
}
