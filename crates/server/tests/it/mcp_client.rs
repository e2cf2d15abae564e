//! A minimal Streamable HTTP MCP client for the tests (JSON and SSE responses).

use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::TestApp;

pub const PROTOCOL: &str = "2025-11-25";

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The JSON-RPC messages of the body (one for JSON, every `data:` event for SSE).
    pub messages: Vec<Value>,
    pub text: String,
}

impl Reply {
    /// The response to request `id`, if any.
    pub fn response(&self, id: i64) -> Option<&Value> {
        self.messages
            .iter()
            .find(|m| m["id"] == json!(id) && (m.get("result").is_some() || m.get("error").is_some()))
    }

    pub fn result(&self, id: i64) -> &Value {
        let r = self
            .response(id)
            .unwrap_or_else(|| panic!("no response to {id}: {} {}", self.status, self.text));
        r.get("result")
            .unwrap_or_else(|| panic!("error instead of result: {r}"))
    }
}

pub async fn post(app: &TestApp, slug: &str, token: Option<&str>, session: Option<&str>, body: &Value) -> Reply {
    post_raw(
        app,
        slug,
        token,
        session,
        "application/json",
        serde_json::to_vec(body).unwrap(),
    )
    .await
}

pub async fn post_raw(
    app: &TestApp,
    slug: &str,
    token: Option<&str>,
    session: Option<&str>,
    content_type: &str,
    body: Vec<u8>,
) -> Reply {
    let mut req = app
        .client
        .post(app.url(&format!("/t/{slug}/mcp")))
        .header("content-type", content_type)
        .header("accept", "application/json, text/event-stream")
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(s) = session {
        req = req.header("mcp-session-id", s).header("mcp-protocol-version", PROTOCOL);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let messages = if text.trim_start().starts_with('{') {
        serde_json::from_str(&text).map(|v| vec![v]).unwrap_or_default()
    } else {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str(d.trim()).ok())
            .collect()
    };
    Reply {
        status,
        headers,
        messages,
        text,
    }
}

/// initialize + notifications/initialized; returns the session id.
pub async fn open_session(app: &TestApp, slug: &str, token: Option<&str>) -> String {
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "cairn-tests", "version": "1"}}});
    let reply = post(app, slug, token, None, &init).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.result(0)["protocolVersion"], PROTOCOL);
    let session = reply.headers["mcp-session-id"].to_str().unwrap().to_owned();
    let done = post(
        app,
        slug,
        token,
        Some(&session),
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    assert_eq!(done.status, StatusCode::ACCEPTED, "{}", done.text);
    session
}

pub fn call_tool(id: i64, name: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": {}}})
}
