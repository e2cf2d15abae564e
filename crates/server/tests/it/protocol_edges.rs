//! Edges found by probing from outside: registration bodies must say they are JSON,
//! ending an unknown MCP session is a 404, and JSON nested beyond the parser's limit is
//! a 4xx wherever Cairn must read it (a genuine webhook delivery is kept as text).

use cairn_core::webhook::standard::{sign, WebhookSecret};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::{s, TestApp};
use crate::mcp_client::{open_session, post, post_raw};

fn registration() -> Value {
    json!({"client_name": "probe", "redirect_uris": ["http://127.0.0.1:9/cb"],
           "token_endpoint_auth_method": "none", "application_type": "native"})
}

#[tokio::test]
async fn dynamic_registration_requires_a_json_body() {
    let app = TestApp::start().await;
    app.tenant("acme").await;
    let body = registration().to_string();
    for content_type in [
        None,
        Some("multipart/form-data; boundary=x"),
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut req = app.client.post(app.url("/t/acme/oauth/register")).body(body.clone());
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{content_type:?}");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["error"], "invalid_request", "{err}");
    }
    for content_type in ["application/json", "Application/JSON; charset=utf-8"] {
        let resp = app
            .client
            .post(app.url("/t/acme/oauth/register"))
            .header("content-type", content_type)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED, "{content_type}");
    }
}

async fn delete_session(app: &TestApp, key: &str, session: &str) -> StatusCode {
    app.client
        .delete(app.url("/t/acme/mcp"))
        .bearer_auth(key)
        .header("mcp-session-id", session)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn ending_an_unknown_mcp_session_is_not_found() {
    let app = TestApp::start().await;
    app.tenant("acme").await;
    let (status, key) = app
        .post(
            "/api/v1/tenants/acme/keys",
            json!({"name": "k", "scopes": ["mcp:tools"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let key = s(&key["secret"]).to_owned();
    assert_eq!(
        delete_session(&app, &key, "no-such-session").await,
        StatusCode::NOT_FOUND
    );
    let session = open_session(&app, "acme", Some(&key)).await;
    assert!(delete_session(&app, &key, &session).await.is_success());
    // Ended: gone for every later request.
    assert_eq!(delete_session(&app, &key, &session).await, StatusCode::NOT_FOUND);
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    let reply = post(&app, "acme", Some(&key), Some(&session), &ping).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);
}

fn nested(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

#[tokio::test]
async fn json_nested_past_the_parser_limit_is_a_4xx_or_kept_as_text() {
    let app = TestApp::start().await;
    app.tenant("acme").await;
    let deep = nested(100_000);

    // REST.
    let resp = app
        .client
        .post(app.url("/api/v1/tenants/acme/webhook-sources"))
        .bearer_auth(&app.token)
        .header("content-type", "application/json")
        // `handlers` is read as free JSON first, so the parser really descends.
        .body(format!(
            "{{\"name\":\"deep\",\"scheme\":\"standard\",\"handlers\":{deep}}}"
        ))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert!(status.is_client_error(), "{status} {body}");
    assert_eq!(body["error"]["code"], "invalid_json", "{body}");

    // MCP: a JSON-RPC message with deep params gets a JSON-RPC parse error, not a crash.
    let (_, key) = app
        .post(
            "/api/v1/tenants/acme/keys",
            json!({"name": "k", "scopes": ["mcp:tools"]}),
        )
        .await;
    let key = s(&key["secret"]).to_owned();
    let session = open_session(&app, "acme", Some(&key)).await;
    let msg = format!("{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{{\"name\":\"whoami\",\"arguments\":{{\"x\":{deep}}}}}}}");
    let reply = post_raw(
        &app,
        "acme",
        Some(&key),
        Some(&session),
        "application/json",
        msg.into_bytes(),
    )
    .await;
    assert!(reply.status.is_client_error(), "{} {}", reply.status, reply.text);

    // A signed webhook delivery: genuine, so it is kept as it came (as text: it is not
    // JSON Cairn can read, so no type and no handler), and reads back whole.
    let (_, source) = app
        .post(
            "/api/v1/tenants/acme/webhook-sources",
            json!({"name": "cms", "scheme": "standard"}),
        )
        .await;
    let secret = WebhookSecret::parse(s(&source["secret"])).unwrap();
    let body = format!("{{\"type\":\"x\",\"data\":{deep}}}");
    let body_len = body.len();
    let ts = chrono::Utc::now().timestamp();
    let resp = app
        .client
        .post(app.url("/hooks/acme/cms"))
        .header("webhook-id", "msg_deep")
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", sign(&secret, "msg_deep", ts, body.as_bytes()))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let got: Value = resp.json().await.unwrap();
    let (status, event) = app
        .get(&format!("/api/v1/tenants/acme/webhook-events/{}", s(&got["id"])))
        .await;
    assert_eq!(status, StatusCode::OK, "{event}");
    assert!(event["event_type"].is_null(), "{event}");
    assert_eq!(event["payload"].as_str().map(str::len), Some(body_len));

    // Still serving.
    let (status, _) = app.get("/api/v1/tenants/acme").await;
    assert_eq!(status, StatusCode::OK);
}
