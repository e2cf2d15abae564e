//! SMTP for alert e-mail (`[smtp]` in cairn.toml, `CAIRN_SMTP__<KEY>`).

use std::path::PathBuf;

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
    /// PEM file of certificate authorities to trust for the server's certificate, in
    /// addition to the public roots (a relay with a certificate from a private CA).
    /// Read at every delivery, so a renewed file needs no restart.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
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
            .field("ca_file", &self.ca_file)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("from", &self.from)
            .finish()
    }
}

impl SmtpConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.ca_file.is_some() && self.tls == SmtpTls::None {
            return Err("ca_file needs tls = \"starttls\" or \"tls\"".into());
        }
        self.ca_pem().map(drop)
    }

    /// The contents of `ca_file`, checked to hold at least one PEM certificate.
    pub fn ca_pem(&self) -> Result<Option<Vec<u8>>, String> {
        let Some(path) = &self.ca_file else { return Ok(None) };
        let pem = std::fs::read(path).map_err(|e| format!("ca_file {}: {e}", path.display()))?;
        if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
            return Err(format!("ca_file {}: holds no PEM certificate", path.display()));
        }
        Ok(Some(pem))
    }
}
