use reqwest::header::{ACCESS_CONTROL_ALLOW_ORIGIN, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::TestApp;

async fn raw(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    ctype: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut req = app.client.request(method, app.url(path)).body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(c) = ctype {
        req = req.header(CONTENT_TYPE, c);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn malformed_bodies() {
    let app = TestApp::start().await;
    let t = Some(app.token.as_str());
    let json_ct = Some("application/json");
    for garbage in [
        &b"{\"slug\":"[..],
        b"not json",
        b"",
        b"{\"slug\":\"acme\",}",
        b"\xff\xfe",
    ] {
        let (status, _, body) = raw(&app, Method::POST, "/api/v1/tenants", t, json_ct, garbage.to_vec()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{garbage:?} -> {body}");
        assert_eq!(body["error"]["code"], "invalid_json");
    }
    let (status, _, body) = raw(
        &app,
        Method::POST,
        "/api/v1/tenants",
        t,
        Some("text/plain"),
        br#"{"slug":"acme","name":"a"}"#.to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(body["error"]["code"], "unsupported_media_type");
    let (status, _, body) = raw(&app, Method::POST, "/api/v1/tenants", t, json_ct, b"[1,2]".to_vec()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    let huge = serde_json::to_vec(&json!({"slug": "acme", "name": "x".repeat(3 * 1024 * 1024)})).unwrap();
    let (status, _, body) = raw(&app, Method::POST, "/api/v1/tenants", t, json_ct, huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"]["code"], "payload_too_large");

    let (_, list) = app.get("/api/v1/tenants").await;
    assert_eq!(list["data"], json!([]), "no failed request may leave a row");
}

#[tokio::test]
async fn authentication_is_required() {
    let app = TestApp::start().await;
    let body = br#"{"slug":"acme","name":"Acme"}"#.to_vec();
    let ct = Some("application/json");
    let forged = format!("{}x", app.token);
    for token in [
        None,
        Some("nonsense"),
        Some("cairn_op_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        Some(forged.as_str()),
    ] {
        let (status, headers, err) = raw(&app, Method::POST, "/api/v1/tenants", token, ct, body.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(headers[WWW_AUTHENTICATE], "Bearer");
        assert_eq!(err["error"]["code"], "unauthorized");
    }
    // The scheme must be Bearer.
    let resp = app
        .client
        .get(app.url("/api/v1/tenants"))
        .header("authorization", format!("Basic {}", app.token))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    for path in ["/api/v1/tenants", "/api/v1/users", "/api/v1/tenants/acme/members"] {
        let (status, _, _) = raw(&app, Method::GET, path, None, None, Vec::new()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
    }
    let (_, list) = app.get("/api/v1/tenants").await;
    assert_eq!(list["data"], json!([]));
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let app = TestApp::start().await;
    let (status, body) = app.get("/api/v1/nothing-here").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
    let (status, body) = app.call(Method::PUT, "/api/v1/tenants", Some(json!({}))).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["error"]["code"], "method_not_allowed");
}

#[tokio::test]
async fn request_ids_are_echoed() {
    let app = TestApp::start().await;
    let resp = app.client.get(app.url("/health/live")).send().await.unwrap();
    let generated = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(generated.len(), 36);
    let resp = app
        .client
        .get(app.url("/health/live"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "trace-me-42");
}

#[tokio::test]
async fn cors_follows_the_allow_list() {
    let closed = TestApp::start().await;
    let resp = closed
        .client
        .request(Method::OPTIONS, closed.url("/api/v1/tenants"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none());

    let open = TestApp::start_with(|c| c.cors_allowed_origins = vec!["https://console.example".into()]).await;
    let preflight = |origin: &'static str| {
        open.client
            .request(Method::OPTIONS, open.url("/api/v1/tenants"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization,content-type")
            .send()
    };
    let ok = preflight("https://console.example").await.unwrap();
    assert_eq!(ok.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], "https://console.example");
    let denied = preflight("https://evil.example").await.unwrap();
    assert!(denied.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
}

/// A refused request whose body arrives after its headers still gets a full answer on a
/// connection that stays usable (clients reuse it, e.g. for OAuth discovery after a 401).
#[tokio::test]
async fn a_refusal_mid_upload_keeps_the_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::start().await;
    let mut tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let body = br#"{"slug":"acme","name":"Acme"}"#;
    let head = format!(
        "POST /api/v1/tenants HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        app.addr,
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.flush().await.unwrap();
    // The body in a later segment: the server has routed the request by then.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    tcp.write_all(body).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tcp.read(&mut buf).await.unwrap();
    let first = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(first.starts_with("HTTP/1.1 401"), "{first}");
    assert!(!first.to_ascii_lowercase().contains("connection: close"), "{first}");
    let second = format!("GET /health/live HTTP/1.1\r\nHost: {}\r\n\r\n", app.addr);
    tcp.write_all(second.as_bytes()).await.unwrap();
    let n = tcp.read(&mut buf).await.unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "the connection is still usable"
    );
}
