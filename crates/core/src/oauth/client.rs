//! Client metadata (RFC 7591 registration requests and Client ID Metadata Documents)
//! and the redirect-URI rules of OAuth 2.1 / RFC 8252.

use serde::{Deserialize, Serialize};
use url::Url;

use crate::api_key::Scope;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApplicationType {
    Web,
    Native,
}

impl ApplicationType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Web => "web",
            Self::Native => "native",
        }
    }
}

/// What a client says about itself. Unknown members are ignored (RFC 7591 §2).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ClientMetadata {
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub redirect_uris: Option<Vec<String>>,
    #[serde(default)]
    pub application_type: Option<String>,
    #[serde(default)]
    pub token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    pub grant_types: Option<Vec<String>>,
    #[serde(default)]
    pub response_types: Option<Vec<String>>,
    #[serde(default)]
    pub client_name: Option<String>,
    #[serde(default)]
    pub client_uri: Option<String>,
    #[serde(default)]
    pub logo_uri: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
}

/// Registration refused: which RFC 7591 error, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientMetadataError {
    #[error("{0}")]
    RedirectUri(String),
    #[error("{0}")]
    Metadata(String),
}

impl ClientMetadataError {
    /// The RFC 7591 §3.2.2 error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::RedirectUri(_) => "invalid_redirect_uri",
            Self::Metadata(_) => "invalid_client_metadata",
        }
    }
}

/// Metadata that passed validation, normalised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidClient {
    pub redirect_uris: Vec<String>,
    pub application_type: ApplicationType,
    /// `none` (public client) or `client_secret_basic` / `client_secret_post`.
    pub token_endpoint_auth_method: String,
    pub grant_types: Vec<String>,
    pub client_name: Option<String>,
    pub client_uri: Option<String>,
    pub scopes: Vec<Scope>,
}

impl ValidClient {
    pub fn is_public(&self) -> bool {
        self.token_endpoint_auth_method == "none"
    }

    pub fn allows_grant(&self, grant: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant)
    }

    /// The registered redirect URI `presented` matches, if any.
    pub fn redirect_uri(&self, presented: &str) -> Option<&str> {
        self.redirect_uris
            .iter()
            .find(|r| redirect_matches(r, presented))
            .map(String::as_str)
    }
}

const MAX_REDIRECTS: usize = 10;
const MAX_URI: usize = 2000;
const AUTH_METHODS: [&str; 3] = ["none", "client_secret_basic", "client_secret_post"];
const GRANTS: [&str; 3] = ["authorization_code", "refresh_token", "client_credentials"];

/// Where the metadata came from decides what is required of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Dynamic registration: `application_type` must be given.
    Registration,
    /// An operator or tenant admin: `application_type` defaults from the redirect URIs.
    Admin,
    /// A Client ID Metadata Document at `url`: public clients only, `client_id` = `url`.
    Document,
}

impl ClientMetadata {
    pub fn validate(&self, source: Source, document_url: Option<&str>) -> Result<ValidClient, ClientMetadataError> {
        let meta = |m: &str| ClientMetadataError::Metadata(m.to_owned());
        if source == Source::Document && self.client_id.as_deref() != document_url {
            return Err(meta("client_id must equal the URL of the metadata document"));
        }
        let uris = self.redirect_uris.clone().unwrap_or_default();
        if uris.is_empty() || uris.len() > MAX_REDIRECTS {
            return Err(ClientMetadataError::RedirectUri(format!(
                "redirect_uris must list 1 to {MAX_REDIRECTS} URIs"
            )));
        }
        let app_type = match self.application_type.as_deref() {
            Some("web") => ApplicationType::Web,
            Some("native") => ApplicationType::Native,
            Some(other) => return Err(meta(&format!("application_type '{other}' is not web or native"))),
            None if source == Source::Registration => return Err(meta("application_type is required (web or native)")),
            None if uris.iter().all(|u| is_native_redirect(u)) => ApplicationType::Native,
            None => ApplicationType::Web,
        };
        for uri in &uris {
            check_redirect(uri, app_type)?;
        }
        let auth = self.token_endpoint_auth_method.clone().unwrap_or_else(|| {
            if source == Source::Document {
                "none"
            } else {
                "client_secret_basic"
            }
            .to_owned()
        });
        if !AUTH_METHODS.contains(&auth.as_str()) {
            return Err(meta(&format!(
                "token_endpoint_auth_method '{auth}' is not supported (none, client_secret_basic, client_secret_post)"
            )));
        }
        if source == Source::Document && auth != "none" {
            return Err(meta(
                "a metadata-document client is public: token_endpoint_auth_method must be none",
            ));
        }
        let grants = self
            .grant_types
            .clone()
            .unwrap_or_else(|| vec!["authorization_code".to_owned()]);
        if grants.is_empty() {
            return Err(meta("grant_types must not be empty"));
        }
        if let Some(g) = grants.iter().find(|g| !GRANTS.contains(&g.as_str())) {
            return Err(meta(&format!("grant_type '{g}' is not supported")));
        }
        if auth == "none" && grants.iter().any(|g| g == "client_credentials") {
            return Err(meta("client_credentials needs a confidential client"));
        }
        let responses = self.response_types.clone().unwrap_or_else(|| vec!["code".to_owned()]);
        if responses.iter().any(|r| r != "code") {
            return Err(meta("only the response type 'code' is supported"));
        }
        let name = self.client_name.as_deref().map(str::trim).filter(|n| !n.is_empty());
        if name.is_some_and(|n| n.chars().count() > 200 || n.chars().any(char::is_control)) {
            return Err(meta("client_name must be at most 200 printable characters"));
        }
        if let Some(u) = &self.client_uri {
            if u.len() > MAX_URI || !Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "https" | "http")) {
                return Err(meta("client_uri must be an http(s) URL"));
            }
        }
        let scopes = super::parse_scope(self.scope.as_deref()).map_err(|e| meta(&e))?;
        Ok(ValidClient {
            redirect_uris: uris,
            application_type: app_type,
            token_endpoint_auth_method: auth,
            grant_types: grants,
            client_name: name.map(str::to_owned),
            client_uri: self.client_uri.clone(),
            scopes,
        })
    }
}

fn is_loopback_host(url: &Url) -> bool {
    matches!(url.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"))
}

fn is_native_redirect(uri: &str) -> bool {
    Url::parse(uri).is_ok_and(|u| (u.scheme() == "http" && is_loopback_host(&u)) || u.scheme().contains('.'))
}

fn check_redirect(uri: &str, app: ApplicationType) -> Result<(), ClientMetadataError> {
    let bad = |why: &str| ClientMetadataError::RedirectUri(format!("redirect URI '{}': {why}", truncate(uri)));
    if uri.len() > MAX_URI {
        return Err(bad("too long"));
    }
    let url = Url::parse(uri).map_err(|_| bad("not an absolute URI"))?;
    if url.fragment().is_some() {
        return Err(bad("must not contain a fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not contain credentials"));
    }
    match url.scheme() {
        "https" if url.host().is_some() => Ok(()),
        // RFC 8252 §7.3 loopback redirects (any port at use time); also for local web development.
        "http" if is_loopback_host(&url) => Ok(()),
        "http" => Err(bad("http is only allowed for loopback hosts")),
        // RFC 8252 §7.1 private-use schemes are reverse domain names.
        s if s.contains('.') && app == ApplicationType::Native => Ok(()),
        "javascript" | "data" | "file" | "vbscript" => Err(bad("scheme not allowed")),
        _ => Err(bad(
            "must be https, loopback http, or (native apps) a private-use reverse-domain scheme",
        )),
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(100).collect()
}

/// Exact match, except that a loopback `http` redirect may use any port (RFC 8252 §7.3,
/// required by the MCP authorization spec for native clients).
pub fn redirect_matches(registered: &str, presented: &str) -> bool {
    if registered == presented {
        return true;
    }
    let (Ok(r), Ok(p)) = (Url::parse(registered), Url::parse(presented)) else {
        return false;
    };
    r.scheme() == "http"
        && p.scheme() == "http"
        && is_loopback_host(&r)
        && r.host_str() == p.host_str()
        && r.path() == p.path()
        && r.query() == p.query()
        && p.fragment().is_none()
        && p.username().is_empty()
        && p.password().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(json: serde_json::Value) -> ClientMetadata {
        serde_json::from_value(json).unwrap_or_default()
    }

    #[test]
    fn loopback_redirects_match_on_any_port_only() {
        assert!(redirect_matches("http://127.0.0.1/cb", "http://127.0.0.1:51234/cb"));
        assert!(redirect_matches("http://localhost:3000/cb", "http://localhost:9999/cb"));
        assert!(!redirect_matches("http://127.0.0.1/cb", "http://127.0.0.1:5/other"));
        assert!(!redirect_matches("http://127.0.0.1/cb", "http://localhost/cb"));
        assert!(!redirect_matches("https://app.example/cb", "https://app.example/cb/"));
        assert!(!redirect_matches(
            "https://app.example/cb",
            "https://app.example:8443/cb"
        ));
        assert!(redirect_matches("https://app.example/cb", "https://app.example/cb"));
    }

    #[test]
    fn registration_requires_application_type_and_safe_redirects() {
        let base = serde_json::json!({"redirect_uris": ["http://127.0.0.1:4000/cb"], "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"]});
        let err = meta(base.clone()).validate(Source::Registration, None);
        assert!(matches!(err, Err(ClientMetadataError::Metadata(_))));
        let mut ok = base.clone();
        ok["application_type"] = "native".into();
        let valid = meta(ok.clone()).validate(Source::Registration, None);
        assert!(valid
            .as_ref()
            .is_ok_and(|v| v.is_public() && v.allows_grant("refresh_token")));
        for bad in [
            "http://evil.example/cb",
            "https://x.example/cb#frag",
            "javascript:alert(1)",
            "/relative",
        ] {
            let mut m = ok.clone();
            m["redirect_uris"] = serde_json::json!([bad]);
            let r = meta(m).validate(Source::Registration, None);
            assert_eq!(r.err().map(|e| e.code()), Some("invalid_redirect_uri"), "{bad}");
        }
        let mut web_custom = ok.clone();
        web_custom["application_type"] = "web".into();
        web_custom["redirect_uris"] = serde_json::json!(["com.example.app:/cb"]);
        assert!(meta(web_custom).validate(Source::Registration, None).is_err());
        let mut public_cc = ok;
        public_cc["grant_types"] = serde_json::json!(["client_credentials"]);
        assert!(meta(public_cc).validate(Source::Registration, None).is_err());
    }

    #[test]
    fn documents_are_public_and_name_themselves() {
        let url = "https://client.example/meta.json";
        let doc =
            serde_json::json!({"client_id": url, "redirect_uris": ["http://127.0.0.1/cb"], "client_name": "Example"});
        let v = meta(doc.clone()).validate(Source::Document, Some(url));
        assert!(v
            .as_ref()
            .is_ok_and(|v| v.is_public() && v.application_type == ApplicationType::Native));
        assert!(meta(doc.clone())
            .validate(Source::Document, Some("https://other.example/x"))
            .is_err());
        let mut secret = doc;
        secret["token_endpoint_auth_method"] = "client_secret_basic".into();
        assert!(meta(secret).validate(Source::Document, Some(url)).is_err());
    }
}
