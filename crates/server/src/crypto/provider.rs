//! Where master keys (KEKs) come from. Behind a small trait so an external KMS can
//! replace the configuration-file provider; the rest of Cairn only asks for "the key of
//! version N" and "the version to wrap new data keys under".

use std::collections::BTreeMap;
use std::path::Path;

use cairn_core::crypto::Key32;

use crate::config::{decode_key32, Config};

pub trait KekProvider: Send + Sync + std::fmt::Debug {
    /// Recorded next to each version's check value.
    fn name(&self) -> &'static str;
    /// The version new data keys are wrapped under.
    fn active_version(&self) -> u32;
    /// The key of `version`, if this provider holds it.
    fn key(&self, version: u32) -> Option<&Key32>;
    /// Every version this provider holds.
    fn versions(&self) -> Vec<u32>;
}

/// Master keys from configuration: `master_key` (version `master_key_version`) and
/// `previous_master_keys` (decrypt-only, during a master-key rotation). Without
/// `master_key`, `<data_dir>/master.key` is used, and created on first start.
#[derive(Debug)]
pub struct ConfigKeks {
    active: u32,
    keys: BTreeMap<u32, Key32>,
}

impl ConfigKeks {
    pub fn load(config: &Config) -> Result<Self, String> {
        let active = config.master_key_version;
        let current = match &config.master_key {
            Some(v) => decode_key32(v).map_err(|e| format!("master_key {e}"))?,
            None => from_file(&config.data_dir.join("master.key"))?,
        };
        let mut keys = BTreeMap::from([(active, Key32::from_bytes(current))]);
        for (version, value) in &config.previous_master_keys {
            let v: u32 = version
                .parse()
                .map_err(|_| format!("previous_master_keys: '{version}' is not a version number"))?;
            let key = decode_key32(value).map_err(|e| format!("previous_master_keys.{version} {e}"))?;
            if keys.insert(v, Key32::from_bytes(key)).is_some() {
                return Err(format!(
                    "previous_master_keys.{version} repeats the active master_key_version"
                ));
            }
        }
        Ok(Self { active, keys })
    }
}

impl KekProvider for ConfigKeks {
    fn name(&self) -> &'static str {
        "config"
    }

    fn active_version(&self) -> u32 {
        self.active
    }

    fn key(&self, version: u32) -> Option<&Key32> {
        self.keys.get(&version)
    }

    fn versions(&self) -> Vec<u32> {
        self.keys.keys().copied().collect()
    }
}

fn from_file(path: &Path) -> Result<[u8; 32], String> {
    match std::fs::read_to_string(path) {
        Ok(text) => decode_key32(&text).map_err(|e| format!("{}: the master key {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use base64::Engine as _;
            let key = Key32::generate();
            let text = base64::engine::general_purpose::STANDARD.encode(key.expose());
            crate::service::operator_tokens::write_secret_file(path, &text)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            tracing::warn!(
                path = %path.display(),
                "GENERATED A NEW MASTER KEY. Everything secret in the database is encrypted under it: back it up \
                 apart from the database, and set CAIRN_MASTER_KEY in production. Losing it loses those secrets."
            );
            Ok(*key.expose())
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}
