//! OAuth 2.1 pieces that need no I/O: PKCE, scope strings, redirect-URI rules, client
//! metadata validation (RFC 7591 / Client ID Metadata Documents), the endpoints' form
//! bodies and signing-key generation. The server wires them to HTTP and the store.

mod client;
pub mod form;
mod signing;

pub use client::{redirect_matches, ApplicationType, ClientMetadata, ClientMetadataError, Source, ValidClient};
pub use signing::{GeneratedKey, SigningAlg};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::api_key::Scope;

/// Prefix of authorization codes and refresh tokens (recognisable when leaked).
pub const CODE_PREFIX: &str = "cac";
pub const REFRESH_PREFIX: &str = "crt";
/// Prefix of client ids minted by Cairn (operator-created and dynamically registered).
pub const CLIENT_ID_PREFIX: &str = "cli_";
pub const CLIENT_SECRET_PREFIX: &str = "ccs";

/// Scopes a client may ask for. `admin` is never granted through OAuth: it stays with
/// operator-issued API keys.
pub const GRANTABLE: [Scope; 4] = [Scope::McpTools, Scope::McpResources, Scope::McpPrompts, Scope::KbWrite];
/// What a client gets when it asks for nothing.
pub const DEFAULT_SCOPES: [Scope; 3] = [Scope::McpTools, Scope::McpResources, Scope::McpPrompts];

/// Parses a space-separated `scope` parameter. Unknown or non-grantable scopes are an
/// error (`invalid_scope`); an absent or empty parameter means the defaults.
pub fn parse_scope(s: Option<&str>) -> Result<Vec<Scope>, String> {
    let s = s.map(str::trim).unwrap_or_default();
    if s.is_empty() {
        return Ok(DEFAULT_SCOPES.to_vec());
    }
    let mut out = Vec::new();
    for part in s.split(' ').filter(|p| !p.is_empty()) {
        let scope = Scope::parse(part)
            .ok()
            .filter(|sc| GRANTABLE.contains(sc))
            .ok_or_else(|| format!("scope '{part}' is not supported here"))?;
        if !out.contains(&scope) {
            out.push(scope);
        }
    }
    Ok(out)
}

/// `mcp:tools mcp:prompts` — the wire form of a scope list.
pub fn scope_string(scopes: &[Scope]) -> String {
    scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
}

/// A PKCE S256 code challenge: 43 characters of base64url (a SHA-256 digest).
pub fn valid_challenge(challenge: &str) -> bool {
    challenge.len() == 43 && challenge.bytes().all(is_b64url)
}

/// RFC 7636 §4.1: 43–128 characters of `[A-Za-z0-9-._~]`.
pub fn valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Checks `verifier` against an S256 `challenge`, in constant time.
pub fn verify_pkce(verifier: &str, challenge: &str) -> bool {
    if !valid_verifier(verifier) {
        return false;
    }
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    computed.as_bytes().ct_eq(challenge.as_bytes()).into()
}

fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_rfc7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(valid_challenge(challenge));
        assert!(verify_pkce(verifier, challenge));
        assert!(!verify_pkce("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXX", challenge));
        assert!(!verify_pkce("short", challenge));
        assert!(!valid_challenge("plain-challenge"));
    }

    #[test]
    fn scopes_default_and_refuse_admin() {
        assert_eq!(parse_scope(None).ok(), Some(DEFAULT_SCOPES.to_vec()));
        assert_eq!(
            parse_scope(Some("mcp:tools  kb:write mcp:tools")).ok(),
            Some(vec![Scope::McpTools, Scope::KbWrite])
        );
        assert!(parse_scope(Some("admin")).is_err());
        assert!(parse_scope(Some("openid")).is_err());
        assert_eq!(
            scope_string(&[Scope::McpTools, Scope::McpPrompts]),
            "mcp:tools mcp:prompts"
        );
    }
}
