//! The server-rendered pages of the authorize step (login, consent, errors) and the
//! sealed values they carry between requests.
//!
//! A sealed value is JSON + an HMAC under a key derived from the server's pepper, so
//! every replica can open what another sealed. It is integrity-protected, not secret:
//! nothing confidential goes in.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::Sha256;

pub struct Sealer {
    key: [u8; 32],
}

impl Sealer {
    /// Derives the sealing key from the server secret (domain-separated).
    pub fn new(secret: &[u8; 32]) -> Self {
        let mut key = [0u8; 32];
        if let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) {
            mac.update(b"cairn/oauth/seal/v1");
            key.copy_from_slice(&mac.finalize().into_bytes());
        }
        Self { key }
    }

    fn mac(&self, data: &[u8]) -> Option<Hmac<Sha256>> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).ok()?;
        mac.update(data);
        Some(mac)
    }

    pub fn seal<T: Serialize>(&self, value: &T) -> String {
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap_or_default());
        let tag = self
            .mac(body.as_bytes())
            .map(|m| URL_SAFE_NO_PAD.encode(m.finalize().into_bytes()))
            .unwrap_or_default();
        format!("{body}.{tag}")
    }

    pub fn open<T: DeserializeOwned>(&self, sealed: &str) -> Option<T> {
        let (body, tag) = sealed.split_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        self.mac(body.as_bytes())?.verify_slice(&tag).ok()?;
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()
    }
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<hidden>)")
    }
}

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// An HTML response that must not be cached, framed, or leak its URL.
pub fn html(status: StatusCode, title: &str, body: &str) -> Response {
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;color:#222}}\
         label{{display:block;margin:.8rem 0 .2rem}}input{{width:100%;padding:.5rem;box-sizing:border-box}}\
         button{{margin:1rem .5rem 0 0;padding:.5rem 1.2rem}}.err{{color:#b00020}}.muted{{color:#666;font-size:.9rem}}\
         code{{word-break:break-all}}</style></head><body>{body}</body></html>",
        escape(title)
    );
    let mut resp = (status, page).into_response();
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    resp
}

/// A page for errors that must not be sent to the client's redirect URI (unknown
/// client, unregistered redirect URI: RFC 6749 §4.1.2.1).
pub fn error_page(status: StatusCode, message: &str) -> Response {
    html(
        status,
        "Authorization error",
        &format!("<h1>Authorization error</h1><p class=\"err\">{}</p>", escape(message)),
    )
}

pub struct LoginPage<'a> {
    pub tenant_name: &'a str,
    pub client_name: &'a str,
    pub action: &'a str,
    pub request: &'a str,
    pub csrf: &'a str,
    pub email: &'a str,
    pub error: Option<&'a str>,
}

pub fn login(status: StatusCode, p: &LoginPage<'_>) -> Response {
    let error = p
        .error
        .map(|e| format!("<p class=\"err\">{}</p>", escape(e)))
        .unwrap_or_default();
    let body = format!(
        "<h1>Sign in to {tenant}</h1><p class=\"muted\"><strong>{client}</strong> wants to access your account.</p>{error}\
         <form method=\"post\" action=\"{action}\">\
         <input type=\"hidden\" name=\"request\" value=\"{request}\">\
         <input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">\
         <label for=\"email\">E-mail</label><input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"username\" value=\"{email}\" required>\
         <label for=\"password\">Password</label><input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
         <button type=\"submit\">Sign in</button></form>",
        tenant = escape(p.tenant_name),
        client = escape(p.client_name),
        action = escape(p.action),
        request = escape(p.request),
        csrf = escape(p.csrf),
        email = escape(p.email),
    );
    html(status, "Sign in", &body)
}

pub struct ConsentPage<'a> {
    pub tenant_name: &'a str,
    pub user_email: &'a str,
    pub client_name: &'a str,
    pub client_id: &'a str,
    pub redirect_host: &'a str,
    pub scopes: &'a [(&'a str, &'a str)],
    pub action: &'a str,
    pub request: &'a str,
    pub csrf: &'a str,
}

pub fn consent(p: &ConsentPage<'_>) -> Response {
    let scopes: String = p
        .scopes
        .iter()
        .map(|(s, what)| format!("<li><code>{}</code> — {}</li>", escape(s), escape(what)))
        .collect();
    let body = format!(
        "<h1>Allow access?</h1><p><strong>{client}</strong> (<code>{client_id}</code>) asks to act as \
         <strong>{user}</strong> in <strong>{tenant}</strong> with:</p><ul>{scopes}</ul>\
         <p class=\"muted\">You will be sent back to <code>{host}</code>.</p>\
         <form method=\"post\" action=\"{action}\">\
         <input type=\"hidden\" name=\"request\" value=\"{request}\">\
         <input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">\
         <button type=\"submit\" name=\"decision\" value=\"allow\">Allow</button>\
         <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></form>",
        client = escape(p.client_name),
        client_id = escape(p.client_id),
        user = escape(p.user_email),
        tenant = escape(p.tenant_name),
        host = escape(p.redirect_host),
        action = escape(p.action),
        request = escape(p.request),
        csrf = escape(p.csrf),
    );
    html(StatusCode::OK, "Allow access", &body)
}
