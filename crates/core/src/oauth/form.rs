//! The form bodies of the OAuth endpoints (`application/x-www-form-urlencoded`, decoded by
//! the server's `Form` extractor) and the checks on them that need no I/O: client
//! credentials in an `Authorization: Basic` header, and narrowing a scope on refresh.
//! They live here, apart from the handlers, so the parsing can be fuzzed on its own.

use serde::Deserialize;

use crate::api_key::Scope;

/// The token, revocation and introspection endpoints share one form: each reads the
/// fields it needs and ignores the rest.
#[derive(Deserialize, Default)]
pub struct TokenForm {
    pub grant_type: Option<String>,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub refresh_token: Option<String>,
    pub scope: Option<String>,
    pub resource: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub token: Option<String>,
    pub token_type_hint: Option<String>,
}

/// The login form of the authorization flow. Absent fields are empty, and refused as a
/// failed sign-in rather than as a malformed request.
#[derive(Deserialize)]
pub struct LoginForm {
    /// The sealed authorization request.
    #[serde(default)]
    pub request: String,
    #[serde(default)]
    pub csrf_token: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub password: String,
}

/// The consent form: `decision` is `allow`, anything else denies.
#[derive(Deserialize)]
pub struct ConsentForm {
    #[serde(default)]
    pub request: String,
    #[serde(default)]
    pub csrf_token: String,
    #[serde(default)]
    pub decision: String,
}

/// An `Authorization: Basic` header that does not decode to `client_id:client_secret`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedBasic;

/// `client_secret_basic` (RFC 6749 §2.3.1): the client id and secret, each form-urlencoded,
/// joined by `:` and base64-encoded. `None` when the header is not Basic at all (the client
/// may authenticate in the form instead).
pub fn basic_credentials(header: &str) -> Option<Result<(String, String), MalformedBasic>> {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;

    let b64 = header
        .strip_prefix("Basic ")
        .or_else(|| header.strip_prefix("basic "))?;
    let raw = STANDARD.decode(b64.trim()).ok().and_then(|b| String::from_utf8(b).ok());
    let Some((id, secret)) = raw.as_deref().and_then(|r| r.split_once(':')) else {
        return Some(Err(MalformedBasic));
    };
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some(Ok((decode(id), decode(secret))))
}

/// The scopes of a refreshed token: those `requested`, which may narrow the grant but
/// never widen it (RFC 6749 §6); the granted ones when nothing is asked. The error is the
/// description of an `invalid_scope` answer.
pub fn narrow_scope(granted: &[Scope], requested: Option<&str>) -> Result<Vec<Scope>, String> {
    if requested.is_none_or(|s| s.trim().is_empty()) {
        return Ok(granted.to_vec());
    }
    let asked = super::parse_scope(requested)?;
    if asked.iter().any(|s| !granted.contains(s)) {
        return Err("a refresh may not widen the granted scope".to_owned());
    }
    Ok(asked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        // "my%20app:s%3Acret+x" in base64.
        let header = "Basic bXklMjBhcHA6cyUzQWNyZXQreA==";
        assert_eq!(
            basic_credentials(header),
            Some(Ok(("my app".to_owned(), "s:cret x".to_owned())))
        );
        assert_eq!(basic_credentials("Bearer abc"), None);
        assert_eq!(basic_credentials("Basic !!!"), Some(Err(MalformedBasic)));
        // "no-colon"
        assert_eq!(basic_credentials("basic bm8tY29sb24="), Some(Err(MalformedBasic)));
    }

    #[test]
    fn refresh_may_narrow_but_not_widen() {
        let granted = [Scope::McpTools, Scope::McpPrompts];
        assert_eq!(narrow_scope(&granted, None), Ok(granted.to_vec()));
        assert_eq!(narrow_scope(&granted, Some("  ")), Ok(granted.to_vec()));
        assert_eq!(narrow_scope(&granted, Some("mcp:prompts")), Ok(vec![Scope::McpPrompts]));
        assert!(narrow_scope(&granted, Some("kb:write")).is_err());
        assert!(narrow_scope(&granted, Some("admin")).is_err());
    }
}
