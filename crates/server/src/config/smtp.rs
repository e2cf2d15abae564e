//! SMTP for alert e-mail (`[smtp]` in cairn.toml, `CAIRN_SMTP__<KEY>`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain SMTP (a relay on localhost, or tests).
    None,
    /// Upgrade with STARTTLS (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    /// Never logged or echoed (`Debug` prints it redacted).
    pub password: Option<String>,
    /// Sender address, e.g. `Cairn <alerts@example.com>`.
    pub from: String,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// minijinja templates; the defaults live in `alerts::email`.
    pub subject_template: Option<String>,
    pub body_template: Option<String>,
}

fn default_timeout() -> u64 {
    15
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("from", &self.from)
            .finish()
    }
}
