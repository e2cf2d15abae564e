use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{s, TestApp};
use crate::mcp_client::{call_tool, open_session, post, post_raw};

async fn key(app: &TestApp, slug: &str, body: Value) -> Value {
    let (status, key) = app.post(&format!("/api/v1/tenants/{slug}/keys"), body).await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    key
}

async fn tools_key(app: &TestApp, slug: &str) -> String {
    s(&key(app, slug, json!({"name": "k", "scopes": ["mcp:tools"]})).await["secret"]).to_owned()
}

#[tokio::test]
async fn whoami_over_http_with_a_tenant_key() {
    let app = TestApp::start().await;
    let acme = app.tenant("acme").await;
    let k = key(
        &app,
        "acme",
        json!({"name": "assistant", "scopes": ["mcp:tools", "mcp:resources"]}),
    )
    .await;
    let secret = s(&k["secret"]);
    let session = open_session(&app, "acme", Some(secret)).await;

    let list = post(
        &app,
        "acme",
        Some(secret),
        Some(&session),
        &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
    )
    .await;
    let names: Vec<_> = list.result(1)["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| s(&t["name"]).to_owned())
        .collect();
    assert_eq!(
        names,
        [
            "whoami",
            "connections",
            "connect_account",
            "search_knowledge",
            "get_document",
            "ingest_document"
        ],
        "a normal tenant serves its built-in tools, no conformance fixtures"
    );

    let reply = post(&app, "acme", Some(secret), Some(&session), &call_tool(2, "whoami")).await;
    assert_eq!(reply.status, StatusCode::OK);
    let text = s(&reply.result(2)["content"][0]["text"]);
    let info: Value = serde_json::from_str(text).unwrap();
    assert_eq!(info["tenant"]["slug"], "acme");
    assert_eq!(info["tenant"]["id"], acme["id"]);
    assert_eq!(info["key"]["id"], k["id"]);
    assert_eq!(info["scopes"], json!(["mcp:tools", "mcp:resources"]));
    assert_eq!(info["tier"], "starter");
    assert!(info["remaining"]["burst_remaining"].as_u64().is_some());
    assert!(reply.headers.contains_key("ratelimit-remaining"));
}

#[tokio::test]
async fn keys_are_refused_outside_their_tenant_and_lifetime() {
    let app = TestApp::start().await;
    app.tenant("acme").await;
    app.tenant("globex").await;
    let globex_key = tools_key(&app, "globex").await;
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    for (slug, token) in [
        ("acme", Some(globex_key.as_str())),
        ("acme", None),
        ("acme", Some("ck_live_bogus")),
        ("nosuch", Some(globex_key.as_str())),
    ] {
        let reply = post(&app, slug, token, None, &init).await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "{slug} {token:?}: {}",
            reply.text
        );
        let challenge = reply.headers["www-authenticate"].to_str().unwrap();
        let metadata = format!(
            "resource_metadata=\"{}\"",
            app.url(&format!("/.well-known/oauth-protected-resource/t/{slug}/mcp"))
        );
        assert!(
            challenge.starts_with("Bearer ") && challenge.contains(&metadata),
            "{challenge}"
        );
    }

    // Revoked.
    let revoked = key(&app, "acme", json!({"name": "r", "scopes": ["mcp:tools"]})).await;
    app.call(
        Method::DELETE,
        &format!("/api/v1/tenants/acme/keys/{}", s(&revoked["id"])),
        None,
    )
    .await;
    assert_eq!(
        post(&app, "acme", Some(s(&revoked["secret"])), None, &init)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );

    // Rotated out without overlap: the old secret fails, the new one works.
    let rotated = key(&app, "acme", json!({"name": "o", "scopes": ["mcp:tools"]})).await;
    let (_, fresh) = app
        .call(
            Method::POST,
            &format!("/api/v1/tenants/acme/keys/{}/rotate", s(&rotated["id"])),
            Some(json!({"overlap_secs": 0})),
        )
        .await;
    assert_eq!(
        post(&app, "acme", Some(s(&rotated["secret"])), None, &init)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post(&app, "acme", Some(s(&fresh["secret"])), None, &init).await.status,
        StatusCode::OK
    );

    // Expired: valid until its expiry passes, refused after.
    let expires_at = chrono::Utc::now() + chrono::Duration::milliseconds(3000);
    let short = key(
        &app,
        "acme",
        json!({"name": "e", "scopes": ["mcp:tools"], "expires_at": expires_at}),
    )
    .await;
    let secret = s(&short["secret"]);
    assert_eq!(
        post(&app, "acme", Some(secret), None, &init).await.status,
        StatusCode::OK
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if post(&app, "acme", Some(secret), None, &init).await.status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "expired key still accepted");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(chrono::Utc::now() >= expires_at, "refused only after the expiry");

    let events = app.tenant_events("acme").await;
    let reasons: Vec<_> = events
        .iter()
        .filter(|e| e.action == "auth.failed")
        .map(|e| e.details["reason"].as_str().unwrap_or("").to_owned())
        .collect();
    for reason in [
        "key_of_another_tenant",
        "revoked",
        "secret_mismatch",
        "expired",
        "malformed",
    ] {
        assert!(
            reasons.iter().any(|r| r == reason),
            "no auth.failed with reason {reason}: {reasons:?}"
        );
    }
    // The denied cross-tenant attempt is in the key owner's trail (without naming where)
    // and, with both tenants, in the platform's.
    let globex = app.tenant_events("globex").await;
    let crossed: Vec<_> = globex
        .iter()
        .filter(|e| e.action == "auth.cross_tenant_denied")
        .collect();
    assert_eq!(crossed.len(), 1, "{crossed:?}");
    assert!(crossed[0].details.get("target_tenant").is_none());
    let platform = app.state.store.recent_platform_audit_events(100).await.unwrap();
    let both: Vec<_> = platform
        .iter()
        .filter(|e| e.action == "auth.cross_tenant_denied")
        .collect();
    assert_eq!(both.len(), 1, "{both:?}");
    assert_eq!(
        both[0].details["owner_tenant"],
        s(&app.get("/api/v1/tenants/globex").await.1["id"])
    );
}

#[tokio::test]
async fn missing_scope_is_403_insufficient_scope() {
    let app = TestApp::start().await;
    app.tenant("acme").await;
    let k = key(&app, "acme", json!({"name": "res", "scopes": ["mcp:resources"]})).await;
    let secret = s(&k["secret"]);
    let session = open_session(&app, "acme", Some(secret)).await;
    let reply = post(&app, "acme", Some(secret), Some(&session), &call_tool(1, "whoami")).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
    let challenge = reply.headers["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains("insufficient_scope") && challenge.contains("mcp:tools"),
        "{challenge}"
    );
    assert_eq!(reply.messages[0]["error"]["code"], "insufficient_scope");
    let ok = post(
        &app,
        "acme",
        Some(secret),
        Some(&session),
        &json!({"jsonrpc": "2.0", "id": 2, "method": "resources/list"}),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
}

#[tokio::test]
async fn trial_burst_limit_answers_429_with_headers() {
    let app = TestApp::start().await;
    app.tenant("acme").await;
    let k = key(
        &app,
        "acme",
        json!({"name": "trial", "scopes": ["mcp:tools"], "tier": "trial"}),
    )
    .await;
    let secret = s(&k["secret"]);
    let session = open_session(&app, "acme", Some(secret)).await;
    for i in 1..=5 {
        let reply = post(&app, "acme", Some(secret), Some(&session), &call_tool(i, "whoami")).await;
        assert_eq!(reply.status, StatusCode::OK, "call {i}");
        assert_eq!(reply.headers["ratelimit-limit"], "5");
        assert_eq!(
            reply.headers["ratelimit-remaining"].to_str().unwrap(),
            (5 - i).to_string()
        );
    }
    let limited = post(&app, "acme", Some(secret), Some(&session), &call_tool(6, "whoami")).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS, "{}", limited.text);
    for h in [
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
        "retry-after",
    ] {
        assert!(limited.headers.contains_key(h), "missing {h}");
    }
    let retry: u64 = limited.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=12).contains(&retry), "one call frees up every 12 s, got {retry}");
    let err = &limited.messages[0];
    assert_eq!(err["id"], 6);
    assert_eq!(err["error"]["code"], -32029);
    assert_eq!(err["error"]["data"]["retry_after_secs"], retry);
    // Listing is not billable and still works.
    let list = post(
        &app,
        "acme",
        Some(secret),
        Some(&session),
        &json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list"}),
    )
    .await;
    assert_eq!(list.status, StatusCode::OK);

    let events = app.tenant_events("acme").await;
    assert!(events
        .iter()
        .any(|e| e.action == "rate_limit.exceeded" && e.target.as_deref() == Some(s(&k["id"]))));
}

#[tokio::test]
async fn sessions_are_bound_to_their_key() {
    let app = TestApp::start().await;
    app.tenant("acme").await;
    let first = tools_key(&app, "acme").await;
    let second = tools_key(&app, "acme").await;
    let session = open_session(&app, "acme", Some(&first)).await;
    let stolen = post(&app, "acme", Some(&second), Some(&session), &call_tool(1, "whoami")).await;
    assert_eq!(stolen.status, StatusCode::NOT_FOUND, "{}", stolen.text);
    let own = post(&app, "acme", Some(&first), Some(&session), &call_tool(2, "whoami")).await;
    assert_eq!(own.status, StatusCode::OK);
}

#[tokio::test]
async fn bad_mcp_input_never_yields_5xx() {
    let app = TestApp::start().await;
    app.tenant("acme").await;
    let k = tools_key(&app, "acme").await;
    let session = open_session(&app, "acme", Some(&k)).await;
    let cases: Vec<(&str, &str, Vec<u8>, Option<&str>)> = vec![
        (
            "malformed json",
            "application/json",
            b"{\"jsonrpc\":".to_vec(),
            Some(session.as_str()),
        ),
        (
            "not json-rpc",
            "application/json",
            b"{\"hello\":1}".to_vec(),
            Some(session.as_str()),
        ),
        (
            "batch",
            "application/json",
            b"[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]".to_vec(),
            Some(session.as_str()),
        ),
        (
            "wrong content type",
            "text/plain",
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}".to_vec(),
            Some(session.as_str()),
        ),
        (
            "bogus session",
            "application/json",
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#.to_vec(),
            Some("not-a-session"),
        ),
        (
            "oversized",
            "application/json",
            vec![b' '; 3 * 1024 * 1024],
            Some(session.as_str()),
        ),
    ];
    for (name, ctype, body, sid) in cases {
        let reply = post_raw(&app, "acme", Some(&k), sid, ctype, body).await;
        assert!(
            reply.status.is_client_error(),
            "{name}: {} {}",
            reply.status,
            reply.text
        );
    }
    let unknown = post(
        &app,
        "acme",
        Some(&k),
        Some(&session),
        &json!({"jsonrpc": "2.0", "id": 9, "method": "no/such"}),
    )
    .await;
    assert!(unknown.status.is_success() || unknown.status.is_client_error());
    assert_eq!(unknown.response(9).unwrap()["error"]["code"], -32601);
    let unknown_tool = post(&app, "acme", Some(&k), Some(&session), &call_tool(10, "nope")).await;
    assert_eq!(unknown_tool.response(10).unwrap()["error"]["code"], -32602);
    // The session still works afterwards.
    assert_eq!(
        post(&app, "acme", Some(&k), Some(&session), &call_tool(11, "whoami"))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn usage_is_metered_per_key_and_tool() {
    let app = TestApp::start().await;
    app.tenant("acme").await;
    let a = key(&app, "acme", json!({"name": "a", "scopes": ["mcp:tools"]})).await;
    let b = key(
        &app,
        "acme",
        json!({"name": "b", "scopes": ["mcp:tools"], "tier": "trial"}),
    )
    .await;
    for (k, calls) in [(&a, 3), (&b, 7)] {
        let secret = s(&k["secret"]);
        let session = open_session(&app, "acme", Some(secret)).await;
        for i in 0..calls {
            post(&app, "acme", Some(secret), Some(&session), &call_tool(i, "whoami")).await;
        }
    }
    let (status, by_key) = app.get("/api/v1/tenants/acme/usage?group_by=key").await;
    assert_eq!(status, StatusCode::OK, "{by_key}");
    let rows = by_key["data"].as_array().unwrap();
    let calls_of = |id: &Value| {
        rows.iter()
            .find(|r| r["group"] == *id)
            .map(|r| r["calls"].as_u64().unwrap())
    };
    // initialize + calls (b's last two were rate limited but still metered as calls).
    assert_eq!(calls_of(&a["id"]), Some(1 + 3));
    assert_eq!(calls_of(&b["id"]), Some(1 + 7));
    let b_row = rows.iter().find(|r| r["group"] == b["id"]).unwrap();
    assert_eq!(b_row["errors"], 2, "two calls over the trial burst of 5");

    let (_, by_tool) = app.get("/api/v1/tenants/acme/usage?group_by=tool").await;
    let whoami = by_tool["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["group"] == "whoami")
        .unwrap()
        .clone();
    assert_eq!(whoami["calls"], 10);
    assert!(whoami["request_bytes"].as_u64().unwrap() > 0);
    let (_, by_day) = app.get("/api/v1/tenants/acme/usage?group_by=day").await;
    assert_eq!(by_day["total_calls"], 12);
    let (status, _) = app.get("/api/v1/tenants/acme/usage?group_by=week").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = app
        .get("/api/v1/tenants/acme/usage?from=2030-01-01T00:00:00Z&to=2029-01-01T00:00:00Z")
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn conformance_tenant_serves_only_fixtures_without_auth() {
    let app = TestApp::start().await;
    let created = app.tenant("conf").await;
    assert_eq!(created["conformance_fixtures"], false, "off by default");
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    assert_eq!(
        post(&app, "conf", None, None, &init).await.status,
        StatusCode::UNAUTHORIZED
    );

    let (status, patched) = app
        .call(
            Method::PATCH,
            "/api/v1/tenants/conf",
            Some(json!({"conformance_fixtures": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["conformance_fixtures"], true);
    let session = open_session(&app, "conf", None).await;
    let list = post(
        &app,
        "conf",
        None,
        Some(&session),
        &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
    )
    .await;
    let names: Vec<_> = list.result(1)["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| s(&t["name"]).to_owned())
        .collect();
    assert!(names.contains(&"test_simple_text".to_owned()));
    assert!(!names.contains(&"whoami".to_owned()), "exactly the fixtures");
    let text = post(&app, "conf", None, Some(&session), &call_tool(2, "test_simple_text")).await;
    assert_eq!(
        text.result(2)["content"][0]["text"],
        "This is a simple text response for testing."
    );
    let (_, list) = app.get("/api/v1/tenants").await;
    assert_eq!(list["data"][0]["conformance_fixtures"], true);
}
