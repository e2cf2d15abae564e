//! Discovery: protected-resource metadata (RFC 9728), authorization-server metadata
//! (RFC 8414, also served as an OpenID configuration) and the JWKS.

use axum::http::header::CACHE_CONTROL;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cairn_core::oauth::GRANTABLE;
use serde_json::{json, Value};

use super::error::OAuthError;
use super::AuthServer;

/// Public documents, cacheable (CORS for browser-based clients: see `oauth::router`).
fn public_json(body: Value, max_age: &'static str) -> Response {
    let mut resp = Json(body).into_response();
    let h = resp.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static(max_age));
    resp
}

fn scopes() -> Vec<&'static str> {
    GRANTABLE.iter().map(|s| s.as_str()).collect()
}

pub async fn protected_resource(server: AuthServer) -> Response {
    let body = json!({
        "resource": server.resource,
        "authorization_servers": [server.issuer],
        "scopes_supported": scopes(),
        "bearer_methods_supported": ["header"],
        "resource_name": format!("{} (Cairn MCP)", server.tenant.name.as_str()),
    });
    public_json(body, "public, max-age=300")
}

pub async fn authorization_server(server: AuthServer) -> Response {
    let i = &server.issuer;
    let mut body = json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/oauth/authorize"),
        "token_endpoint": format!("{i}/oauth/token"),
        "jwks_uri": format!("{i}/jwks.json"),
        "scopes_supported": scopes(),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "revocation_endpoint": format!("{i}/oauth/revoke"),
        "revocation_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "introspection_endpoint": format!("{i}/oauth/introspect"),
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
        "client_id_metadata_document_supported": true,
        "subject_types_supported": ["public"],
    });
    if server.tenant.oauth_dynamic_registration {
        body["registration_endpoint"] = json!(format!("{i}/oauth/register"));
    }
    public_json(body, "public, max-age=300")
}

pub async fn jwks(server: AuthServer) -> Result<Response, OAuthError> {
    let keys = server
        .oauth()
        .signer
        .jwks(&server.state.store, server.tenant.id)
        .await?;
    // Short: a rotation must reach resource servers before the new key's tokens do.
    Ok(public_json(json!({ "keys": keys }), "public, max-age=60"))
}
