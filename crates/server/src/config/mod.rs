//! The one typed configuration. Sources, later ones winning: built-in defaults →
//! `cairn.toml` (or `--config FILE`) → `DATABASE_URL` → `CAIRN_*` environment
//! variables → command-line flags. Loaded and validated once at start, then passed in;
//! nothing else in Cairn reads the environment.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn_store::{Backend, StoreConfig};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Deserializer, Serialize};
use url::Url;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// JSON when standard error is not a terminal, pretty otherwise.
    Auto,
    Json,
    Pretty,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// The externally visible base URL (e.g. behind a proxy). Default: `http://{listen}`.
    pub public_url: Option<Url>,
    /// `sqlite:…` or `postgres://…`. Default: `sqlite://{data_dir}/cairn.db`.
    pub database_url: Option<String>,
    /// Folder for the default SQLite database and the bootstrap operator token.
    pub data_dir: PathBuf,
    pub db_max_connections: u32,
    pub db_min_connections: u32,
    pub db_acquire_timeout_secs: u64,
    pub db_idle_timeout_secs: u64,
    pub db_max_lifetime_secs: u64,
    /// Most concurrent database operations per tenant; 0 means half the pool.
    pub db_tenant_max_concurrency: usize,
    /// Origins allowed to call the API from a browser. Empty: same-origin only.
    #[serde(deserialize_with = "string_or_list")]
    pub cors_allowed_origins: Vec<String>,
    pub log_format: LogFormat,
    /// A `tracing` filter directive, e.g. `info` or `cairn_server=debug,info`.
    pub log_level: String,
    /// Largest accepted request body.
    pub body_limit_bytes: usize,
    /// How long `/health/ready` waits for each dependency.
    pub ready_timeout_ms: u64,
    /// How long a graceful shutdown waits for in-flight requests.
    pub shutdown_timeout_secs: u64,
    /// Server-side secret (base64, 32 bytes) keying API-key hashes. Every replica needs
    /// the same one. Default: generated once into `{data_dir}/api-key-pepper`.
    pub api_key_pepper: Option<String>,
    /// The master key (KEK) wrapping every tenant's data keys: base64 of 32 bytes. None:
    /// `<data_dir>/master.key`, generated on first start.
    pub master_key: Option<String>,
    /// The version of `master_key` (raise it when replacing the key).
    pub master_key_version: u32,
    /// Earlier master keys by version, for decryption while data keys are re-wrapped.
    pub previous_master_keys: BTreeMap<String, String>,
    /// Rotate every tenant's data key this often (days); none: only on demand.
    pub key_rotation_interval_days: Option<u32>,
    /// Old data keys stay decryptable (rollback possible) this long after a rotation.
    pub key_retire_after_hours: u32,
    /// Rows re-encrypted per batch (one transaction) by the rotation job.
    pub reencrypt_batch_size: u32,
    /// How long a rotated-out API key secret keeps working, unless the rotation says.
    pub api_key_rotation_overlap_secs: u64,
    /// How long a verified API key is trusted from memory before the database is asked
    /// again (bounds how late another replica notices a revocation).
    pub api_key_cache_ttl_secs: u64,
    /// The tier new keys get unless told otherwise.
    pub default_tier: String,
    /// Rate-limit and quota tiers by name.
    pub tiers: BTreeMap<String, TierConfig>,
    /// Calls per minute one tenant may burst to across all its keys.
    pub tenant_burst_per_minute: u32,
    /// Per-tool bursts (calls per minute per key), e.g. `{ ingest_document = 10 }`.
    pub tool_burst_per_minute: BTreeMap<String, u32>,
    /// Redis for limits shared by several replicas (`redis://host:6379/0`). None: in process.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key Cairn writes.
    pub redis_key_prefix: String,
    /// What rate limiting does when Redis fails: `fail_open` (fall back to in-process
    /// limits) or `fail_closed` (refuse calls with 503).
    pub redis_failure_mode: RedisFailureMode,
    /// Test-only: accept `http://127.0.0.1|localhost` JWKS URLs for identity providers.
    pub idp_allow_http_loopback: bool,
    /// Test-only: accept `http://127.0.0.1|localhost` upstream OAuth provider URLs.
    pub upstream_allow_http_loopback: bool,
    /// Lifetime of OAuth access tokens (JWTs). Short: they are checked without a lookup
    /// of the token itself.
    pub oauth_access_token_ttl_secs: u64,
    /// Lifetime of an OAuth grant's refresh tokens (rotated on every use).
    pub oauth_refresh_token_ttl_secs: u64,
    /// Lifetime of an authorization code.
    pub oauth_code_ttl_secs: u64,
    /// Dynamic client registrations per minute from one address, per tenant.
    pub oauth_registrations_per_minute: u32,
    /// Test-only: accept `http://127.0.0.1|localhost` Client ID Metadata Document URLs.
    pub oauth_cimd_allow_http_loopback: bool,
    /// Hosts accepted in the `Host` header of MCP requests (DNS-rebinding protection).
    /// Default: localhost, 127.0.0.1, ::1 and the hosts of `listen` and `public_url`.
    #[serde(deserialize_with = "string_or_list")]
    pub mcp_allowed_hosts: Vec<String>,
    /// Knowledge base: embedder, document limits, chunking, index upkeep.
    pub kb: kb::KbConfig,
    /// Outbound webhooks: retry schedule, disabling, timeouts, address policy.
    pub webhooks: webhooks::WebhookConfig,
    /// SMTP for alert e-mail; none: alerts go by webhook only.
    pub smtp: Option<smtp::SmtpConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedisFailureMode {
    FailOpen,
    FailClosed,
}

/// Limits of one tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierConfig {
    /// Calls per minute a key of this tier may burst to.
    pub burst_per_minute: u32,
    /// Calls per calendar month (UTC); none = unlimited.
    pub monthly_quota: Option<u64>,
    /// Keys of this tier expire this many days after creation (trial keys).
    pub expires_after_days: Option<u32>,
}

fn default_tiers() -> BTreeMap<String, TierConfig> {
    let tier = |burst, quota, days| TierConfig {
        burst_per_minute: burst,
        monthly_quota: quota,
        expires_after_days: days,
    };
    BTreeMap::from([
        ("trial".to_owned(), tier(5, Some(1_000), Some(14))),
        ("starter".to_owned(), tier(60, Some(100_000), None)),
        ("pro".to_owned(), tier(600, Some(1_000_000), None)),
        ("enterprise".to_owned(), tier(6_000, None, None)),
    ])
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            database_url: None,
            data_dir: PathBuf::from("./cairn-data"),
            db_max_connections: 10,
            db_min_connections: 0,
            db_acquire_timeout_secs: 5,
            db_idle_timeout_secs: 600,
            db_max_lifetime_secs: 1800,
            db_tenant_max_concurrency: 0,
            cors_allowed_origins: Vec::new(),
            log_format: LogFormat::Auto,
            log_level: "info".into(),
            body_limit_bytes: 2 * 1024 * 1024,
            ready_timeout_ms: 2000,
            shutdown_timeout_secs: 20,
            api_key_pepper: None,
            master_key: None,
            master_key_version: 1,
            previous_master_keys: BTreeMap::new(),
            key_rotation_interval_days: None,
            reencrypt_batch_size: 500,
            key_retire_after_hours: 24,
            api_key_rotation_overlap_secs: 24 * 3600,
            api_key_cache_ttl_secs: 60,
            default_tier: "starter".into(),
            tiers: default_tiers(),
            tenant_burst_per_minute: 12_000,
            tool_burst_per_minute: BTreeMap::new(),
            redis_url: None,
            redis_key_prefix: "cairn".into(),
            redis_failure_mode: RedisFailureMode::FailOpen,
            mcp_allowed_hosts: Vec::new(),
            kb: kb::KbConfig::default(),
            webhooks: webhooks::WebhookConfig::default(),
            smtp: None,
            idp_allow_http_loopback: false,
            upstream_allow_http_loopback: false,
            oauth_access_token_ttl_secs: 600,
            oauth_refresh_token_ttl_secs: 30 * 24 * 3600,
            oauth_code_ttl_secs: 60,
            oauth_registrations_per_minute: 10,
            oauth_cimd_allow_http_loopback: false,
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("public_url", &self.public_url.as_ref().map(Url::as_str))
            .field("database_url", &cairn_store::pool::redact_url(&self.database_url()))
            .field("data_dir", &self.data_dir)
            .field("db_max_connections", &self.db_max_connections)
            .field("cors_allowed_origins", &self.cors_allowed_origins)
            .field("log_format", &self.log_format)
            .field(
                "redis_url",
                &self.redis_url.as_deref().map(cairn_store::pool::redact_url),
            )
            .finish_non_exhaustive()
    }
}

/// Command-line overrides; `None` leaves the value from the other sources.
#[derive(Debug, Clone, Default, Serialize, clap::Args)]
pub struct ConfigArgs {
    /// Configuration file (TOML). Default: ./cairn.toml if it exists.
    #[arg(long, global = true, env = "CAIRN_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:8080.
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// Database URL: sqlite://path or postgres://user@host/db.
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// Externally visible base URL.
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// Data folder (default SQLite database, bootstrap token).
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Log format: auto, json or pretty.
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Source(#[from] Box<figment::Error>),
    #[error("configuration file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("configuration: `{key}` {reason}")]
    Invalid { key: &'static str, reason: String },
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

impl Config {
    /// Loads from every source and validates.
    pub fn load(args: &ConfigArgs) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        let file = match &args.config {
            Some(path) if !path.exists() => return Err(ConfigError::MissingFile(path.clone())),
            Some(path) => Some(path.clone()),
            None => Some(PathBuf::from("cairn.toml")).filter(|p| p.exists()),
        };
        if let Some(path) = file {
            figment = figment.merge(Toml::file_exact(path));
        }
        let keys = Self::keys();
        figment = figment
            .merge(Env::raw().only(&["database_url"]))
            .merge(
                Env::prefixed("CAIRN_")
                    .filter(move |k| {
                        // The top-level key, whether figment shows it before or after splitting.
                        let top = k.as_str().split("__").next().unwrap_or_default();
                        let top = top.split('.').next().unwrap_or_default();
                        keys.iter().any(|known| top.eq_ignore_ascii_case(known))
                    })
                    // CAIRN_TIERS__TRIAL__BURST_PER_MINUTE=10 sets tiers.trial.burst_per_minute.
                    .split("__"),
            )
            .merge(Serialized::defaults(args));
        let cfg: Config = figment.extract().map_err(Box::new)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Every configuration key; `CAIRN_<KEY>` sets it.
    fn keys() -> Vec<String> {
        match serde_json::to_value(Config::default()) {
            Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.kb.validate().map_err(|e| invalid("kb", e))?;
        self.webhooks.validate().map_err(|e| invalid("webhooks", e))?;
        if let Some(smtp) = &self.smtp {
            smtp.validate().map_err(|e| invalid("smtp", e))?;
        }
        let url = self.database_url();
        Backend::from_url(&url).map_err(|e| invalid("database_url", e.to_string()))?;
        if url.contains(":memory:") || url.contains("mode=memory") {
            // Each pooled connection would get its own empty database.
            return Err(invalid("database_url", "in-memory SQLite is not supported; use a file"));
        }
        if let Some(public) = &self.public_url {
            if !matches!(public.scheme(), "http" | "https") || public.query().is_some() || public.fragment().is_some() {
                return Err(invalid(
                    "public_url",
                    "must be an http(s) URL without query or fragment",
                ));
            }
        }
        if self.db_max_connections == 0 {
            return Err(invalid("db_max_connections", "must be at least 1"));
        }
        if self.db_min_connections > self.db_max_connections {
            return Err(invalid("db_min_connections", "must not exceed db_max_connections"));
        }
        if self.db_acquire_timeout_secs == 0 {
            return Err(invalid("db_acquire_timeout_secs", "must be at least 1"));
        }
        for origin in &self.cors_allowed_origins {
            normalise_origin(origin).map_err(|reason| invalid("cors_allowed_origins", reason))?;
        }
        if self.body_limit_bytes < 1024 {
            return Err(invalid("body_limit_bytes", "must be at least 1024"));
        }
        if let Some(url) = &self.redis_url {
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                return Err(invalid("redis_url", "must start with redis:// or rediss://"));
            }
        }
        if let Some((tool, _)) = self.tool_burst_per_minute.iter().find(|(_, n)| **n == 0) {
            return Err(invalid(
                "tool_burst_per_minute",
                format!("'{tool}': must be at least 1"),
            ));
        }
        if self.tenant_burst_per_minute == 0 {
            return Err(invalid("tenant_burst_per_minute", "must be at least 1"));
        }
        for (key, v) in [
            ("oauth_access_token_ttl_secs", self.oauth_access_token_ttl_secs),
            ("oauth_refresh_token_ttl_secs", self.oauth_refresh_token_ttl_secs),
            ("oauth_code_ttl_secs", self.oauth_code_ttl_secs),
        ] {
            if v == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        if self.oauth_registrations_per_minute == 0 {
            return Err(invalid("oauth_registrations_per_minute", "must be at least 1"));
        }
        if self.ready_timeout_ms == 0 {
            return Err(invalid("ready_timeout_ms", "must be at least 1"));
        }
        if let Some(key) = &self.master_key {
            decode_key32(key).map_err(|reason| invalid("master_key", reason))?;
        }
        if self.reencrypt_batch_size == 0 || self.reencrypt_batch_size > 10_000 {
            return Err(invalid("reencrypt_batch_size", "must be 1 to 10000"));
        }
        if self.key_rotation_interval_days == Some(0) {
            return Err(invalid("key_rotation_interval_days", "must be at least 1"));
        }
        if self.master_key_version == 0 {
            return Err(invalid("master_key_version", "must be at least 1"));
        }
        for (version, key) in &self.previous_master_keys {
            let ok = version
                .parse::<u32>()
                .is_ok_and(|v| v != self.master_key_version && v > 0);
            if !ok {
                return Err(invalid(
                    "previous_master_keys",
                    format!("'{version}' is not a version other than master_key_version"),
                ));
            }
            decode_key32(key).map_err(|reason| invalid("previous_master_keys", reason))?;
        }
        if let Some(pepper) = &self.api_key_pepper {
            decode_key32(pepper).map_err(|reason| invalid("api_key_pepper", reason))?;
        }
        if !self.tiers.contains_key(&self.default_tier) {
            return Err(invalid(
                "default_tier",
                format!("names no tier in `tiers` ({})", self.tier_names()),
            ));
        }
        for (name, tier) in &self.tiers {
            cairn_core::tenant::Plan::parse(name).map_err(|e| invalid("tiers", format!("'{name}': {}", e.reason)))?;
            if tier.burst_per_minute == 0 {
                return Err(invalid(
                    "tiers",
                    format!("'{name}': burst_per_minute must be at least 1"),
                ));
            }
        }
        tracing_subscriber::EnvFilter::try_new(&self.log_level)
            .map_err(|e| invalid("log_level", format!("is not a valid filter: {e}")))?;
        Ok(())
    }

    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("cairn.db").display()))
    }

    /// The base URL clients use to reach this server, without a trailing slash.
    pub fn public_base_url(&self) -> String {
        match &self.public_url {
            Some(u) => u.as_str().trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.listen),
        }
    }

    pub fn store_config(&self) -> StoreConfig {
        let max = self.db_max_connections;
        let per_tenant = match self.db_tenant_max_concurrency {
            0 => usize::try_from(max / 2).unwrap_or(1).max(1),
            n => n,
        };
        StoreConfig {
            url: self.database_url(),
            max_connections: max,
            min_connections: self.db_min_connections,
            acquire_timeout: Duration::from_secs(self.db_acquire_timeout_secs),
            idle_timeout: Duration::from_secs(self.db_idle_timeout_secs),
            max_lifetime: Duration::from_secs(self.db_max_lifetime_secs),
            tenant_max_concurrency: per_tenant,
        }
    }

    pub fn operator_token_path(&self) -> PathBuf {
        self.data_dir.join("operator-token")
    }

    /// Normalised allowed origins (validated in [`Config::validate`]).
    pub fn cors_origins(&self) -> Vec<String> {
        self.cors_allowed_origins
            .iter()
            .filter_map(|o| normalise_origin(o).ok())
            .collect()
    }

    /// Hosts MCP requests may name; see `mcp_allowed_hosts`.
    pub fn mcp_hosts(&self) -> Vec<String> {
        if !self.mcp_allowed_hosts.is_empty() {
            return self.mcp_allowed_hosts.clone();
        }
        let mut hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
        let listen = self.listen.ip();
        if !listen.is_unspecified() {
            hosts.push(listen.to_string());
        }
        if let Some(host) = self.public_url.as_ref().and_then(|u| u.host_str()) {
            hosts.push(host.trim_start_matches('[').trim_end_matches(']').to_owned());
        }
        hosts.sort();
        hosts.dedup();
        hosts
    }

    /// Browser origins MCP requests may come from: the CORS allow-list, this server's
    /// own public origin, and loopback pages (same machine). Anything else is refused,
    /// which is what defeats DNS rebinding.
    pub fn mcp_origins(&self) -> Vec<String> {
        let mut origins = self.cors_origins();
        if let Some(public) = &self.public_url {
            origins.push(public.origin().ascii_serialization());
        }
        for host in ["localhost", "127.0.0.1", "[::1]"] {
            origins.push(format!("http://{host}:*"));
            origins.push(format!("https://{host}:*"));
        }
        origins
    }

    pub fn tier_names(&self) -> String {
        self.tiers.keys().cloned().collect::<Vec<_>>().join(", ")
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}

/// `https://App.example.com/` → `https://app.example.com`. Refuses paths and wildcards:
/// an allow-list entry names exactly one origin.
fn normalise_origin(s: &str) -> Result<String, String> {
    let url = Url::parse(s).map_err(|_| format!("'{s}' is not an origin (scheme://host[:port])"))?;
    let bare = url.path() == "/" && url.query().is_none() && url.fragment().is_none();
    if !matches!(url.scheme(), "http" | "https") || !bare || url.host().is_none() || !url.username().is_empty() {
        return Err(format!("'{s}' is not an origin (scheme://host[:port])"));
    }
    Ok(url.origin().ascii_serialization())
}

/// Decodes a base64 (standard or URL-safe) 32-byte secret.
pub fn decode_key32(s: &str) -> Result<[u8; 32], String> {
    use base64::Engine as _;
    let s = s.trim();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s))
        .map_err(|_| "must be base64".to_owned())?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| format!("must decode to 32 bytes, not {}", bytes.len()))
}

fn string_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        OneOrMany::Many(v) => v,
    })
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail fixes the closure's error type
mod tests;

pub mod kb;
pub mod smtp;
pub mod webhooks;
