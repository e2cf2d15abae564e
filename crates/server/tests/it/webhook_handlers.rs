//! Inbound events handed to handlers by type (the built-in one ingests a document into a
//! knowledge base), the received-events API with re-runs, secret rotation with a grace
//! period, re-enabling an outbound endpoint, and platform-wide (operator) alert rules.

use std::time::{Duration, Instant};

use cairn_core::webhook::standard::{sign, WebhookSecret};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{s, TestApp};
use crate::webhooks_out::{python_verifies, receiver};

pub(crate) async fn deliver(app: &TestApp, secret: &WebhookSecret, id: &str, body: &Value) -> (StatusCode, Value) {
    let body = body.to_string();
    let ts = chrono::Utc::now().timestamp();
    let resp = app
        .client
        .post(app.url("/hooks/acme/cms"))
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", sign(secret, id, ts, body.as_bytes()))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn page(id: &str, text: Value) -> Value {
    json!({"type": "page.updated", "data": {"id": id, "title": "Refunds", "body": text}})
}

#[tokio::test]
async fn events_are_handed_to_handlers_by_type_and_can_be_rerun() {
    let app = TestApp::start().await;
    app.tenant("acme").await;
    let (status, kb) = app.post("/api/v1/tenants/acme/kb", json!({"name": "docs"})).await;
    assert_eq!(status, StatusCode::CREATED, "{kb}");
    let handlers = json!([
        {"event_type": "page.draft", "action": "store"},
        {"event_type": "page.*", "action": "kb_ingest", "kb": "docs",
         "source_id": "/data/id", "content": "/data/body", "title": "/data/title"}
    ]);
    // Handlers that could never run are refused up front.
    for bad in [
        json!([{"event_type": "page.*", "action": "shell"}]),
        json!([{"event_type": "a*b", "action": "store"}]),
        json!([{"event_type": "x", "action": "kb_ingest", "kb": "docs", "source_id": "data.id", "content": "/b"}]),
    ] {
        let (status, body) = app
            .post(
                "/api/v1/tenants/acme/webhook-sources",
                json!({"name": "cms", "scheme": "standard", "handlers": bad}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error"]["field"], "handlers", "{body}");
    }
    let (status, created) = app
        .post(
            "/api/v1/tenants/acme/webhook-sources",
            json!({"name": "cms", "scheme": "standard", "handlers": handlers}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = WebhookSecret::parse(s(&created["secret"])).unwrap();

    // page.updated → ingested into the base.
    let text = "# Refunds\n\nRefunds are issued within fourteen days of a return.";
    let (status, got) = deliver(&app, &secret, "msg_a", &page("pg-1", json!(text))).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["handled"]["status"], "processed", "{got}");
    assert_eq!(got["handled"]["handler"], "kb_ingest");
    let doc_id = s(&got["handled"]["result"]["document_id"]).to_owned();
    let (status, hits) = app
        .post(
            "/api/v1/tenants/acme/kb/docs/search",
            json!({"query": "when are refunds issued", "k": 3}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{hits}");
    assert_eq!(hits["results"][0]["document_id"], doc_id.as_str(), "{hits}");
    assert_eq!(hits["results"][0]["source_id"], "pg-1");

    // page.draft → the explicit store handler; another type → no handler.
    let (_, got) = deliver(&app, &secret, "msg_b", &json!({"type": "page.draft", "data": {}})).await;
    assert_eq!(got["handled"]["status"], "processed");
    assert_eq!(got["handled"]["handler"], "store");
    let (_, got) = deliver(&app, &secret, "msg_c", &json!({"type": "user.created"})).await;
    assert_eq!(got["handled"]["status"], "stored");
    assert_eq!(got["handled"]["handler"], Value::Null);

    // Payloads the handler cannot use: recorded, answered 200, marked failed.
    let (status, got) = deliver(&app, &secret, "msg_d", &page("pg-2", json!({"nested": true}))).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["handled"]["status"], "failed", "{got}");
    let failed_id = s(&got["id"]).to_owned();
    let (status, got) = deliver(
        &app,
        &secret,
        "msg_e",
        &json!({"type": "page.updated", "data": {"id": "pg-3"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["handled"]["status"], "failed", "{got}");
    assert_eq!(got["handled"]["result"]["error"], "missing_field", "{got}");
    let missing_id = s(&got["id"]).to_owned();

    // The events list: newest first, by pages, filtered by source.
    let (status, first) = app.get("/api/v1/tenants/acme/webhook-events?limit=2").await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let items = first["data"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], missing_id.as_str());
    assert_eq!(items[0]["status"], "failed");
    let cursor = s(&first["next_cursor"]).to_owned();
    let mut seen: Vec<String> = items.iter().map(|e| s(&e["id"]).to_owned()).collect();
    let mut cursor = Some(cursor);
    while let Some(c) = cursor {
        let (_, next) = app
            .get(&format!(
                "/api/v1/tenants/acme/webhook-events?limit=2&source=cms&cursor={}",
                urlencoding(&c)
            ))
            .await;
        seen.extend(next["data"].as_array().unwrap().iter().map(|e| s(&e["id"]).to_owned()));
        cursor = next["next_cursor"].as_str().map(str::to_owned);
    }
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert!(seen.contains(&failed_id));
    assert!(items[0].get("payload").is_none(), "lists leave payloads out: {first}");
    let (status, one) = app
        .get(&format!("/api/v1/tenants/acme/webhook-events/{failed_id}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{one}");
    let payload: Value = serde_json::from_str(s(&one["payload"])).unwrap();
    assert_eq!(payload["data"]["id"], "pg-2");
    assert_eq!(one["result"]["error"], "missing_field", "{one}");
    let (status, body) = app.get("/api/v1/tenants/acme/webhook-events?cursor=nope").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, _) = app.get("/api/v1/tenants/acme/webhook-events?source=nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Change the handler (content from /data/id), re-run the failed event: processed.
    let fixed = json!([{"event_type": "page.updated", "action": "kb_ingest", "kb": "docs",
        "source_id": "/data/id", "content": "/data/id"}]);
    let (status, body) = app
        .call(
            Method::PUT,
            "/api/v1/tenants/acme/webhook-sources/cms/handlers",
            Some(fixed),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, rerun) = app
        .post(
            &format!("/api/v1/tenants/acme/webhook-events/{missing_id}/rerun"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rerun}");
    assert_eq!(rerun["status"], "processed", "{rerun}");
    let (status, _) = app
        .post("/api/v1/tenants/acme/webhook-events/whe_nope/rerun", json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let audit = app.tenant_events("acme").await;
    let handled: Vec<_> = audit.iter().filter(|e| e.action == "webhook.handled").collect();
    assert!(handled.len() >= 5, "{handled:?}");
    assert!(audit
        .iter()
        .any(|e| e.action == "kb.document_ingested" && e.actor_kind == "system"));
}

fn urlencoding(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn a_rotated_source_secret_keeps_the_old_one_for_the_grace_period() {
    let app = TestApp::start().await;
    app.tenant("acme").await;
    let (_, created) = app
        .post(
            "/api/v1/tenants/acme/webhook-sources",
            json!({"name": "cms", "scheme": "standard"}),
        )
        .await;
    let old = WebhookSecret::parse(s(&created["secret"])).unwrap();
    let (status, rotated) = app
        .post(
            "/api/v1/tenants/acme/webhook-sources/cms/rotate-secret",
            json!({"grace_secs": 3600}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new = WebhookSecret::parse(s(&rotated["secret"])).unwrap();
    assert_ne!(s(&rotated["secret"]), s(&created["secret"]));
    assert!(rotated["previous_until"].is_string(), "{rotated}");
    let ping = json!({"type": "ping"});
    assert_eq!(deliver(&app, &old, "msg_1", &ping).await.0, StatusCode::OK);
    assert_eq!(deliver(&app, &new, "msg_2", &ping).await.0, StatusCode::OK);

    // Rotating again without grace: only the newest secret verifies.
    let (_, again) = app
        .post(
            "/api/v1/tenants/acme/webhook-sources/cms/rotate-secret",
            json!({"grace_secs": 0}),
        )
        .await;
    let newest = WebhookSecret::parse(s(&again["secret"])).unwrap();
    let (status, body) = deliver(&app, &new, "msg_3", &ping).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(deliver(&app, &newest, "msg_4", &ping).await.0, StatusCode::OK);
    let (status, _) = app
        .post(
            "/api/v1/tenants/acme/webhook-sources/cms/rotate-secret",
            json!({"grace_secs": 999_999_999}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = app
        .post("/api/v1/tenants/acme/webhook-sources/nope/rotate-secret", json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let audit = app.tenant_events("acme").await;
    assert_eq!(
        audit
            .iter()
            .filter(|e| e.action == "webhook_source.secret_rotated")
            .count(),
        2
    );
}

#[tokio::test]
async fn platform_alert_rules_count_across_tenants_and_reach_the_operator() {
    let (rx, url) = receiver(200).await;
    let secret = WebhookSecret::generate();
    let shown = secret.expose_encoded();
    let shown = secrecy::ExposeSecret::expose_secret(&shown).to_owned();
    let hook = shown.clone();
    let app = TestApp::start_with(move |c| {
        c.webhooks.allow_private_addresses = true;
        c.webhooks.operator_url = Some(url);
        c.webhooks.operator_secret = Some(hook);
    })
    .await;
    app.tenant("acme").await;
    app.tenant("globex").await;
    // group_by tenant is for platform rules only.
    let (status, body) = app
        .post(
            "/api/v1/tenants/acme/alert-rules",
            json!({"name": "x", "action": "auth.failed", "threshold": 1, "window_secs": 60, "group_by": "tenant"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, rule) = app
        .post(
            "/api/v1/alert-rules",
            json!({"name": "stuffing", "action": "auth.failed", "threshold": 6, "window_secs": 60,
                   "group_by": "source_ip", "cooldown_secs": 600, "severity": "critical"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rule}");
    // A prefix pattern counted per tenant: fires once for each (four failures each).
    let (status, body) = app
        .post(
            "/api/v1/alert-rules",
            json!({"name": "per-tenant", "action": "auth.*", "threshold": 4, "window_secs": 60,
                   "group_by": "tenant", "webhook": false}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, listed) = app.get("/api/v1/alert-rules").await;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(2), "{listed}");
    // A tenant admin path does not list the operator's rules.
    let (_, tenant_rules) = app.get("/api/v1/tenants/acme/alert-rules").await;
    assert_eq!(tenant_rules["data"].as_array().map(Vec::len), Some(0));

    // Four bad keys at acme and four at globex: neither tenant alone reaches 6.
    for slug in ["acme", "globex", "acme", "globex", "acme", "globex", "acme", "globex"] {
        let resp = app
            .client
            .post(app.url(&format!("/t/{slug}/mcp")))
            .bearer_auth("cairn_live_nope_0000000000000000000000000000000000000000")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    app.state.audit.flush().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while rx.got.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "operator alert not delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rule_id = s(&rule["id"]).to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n = app
            .state
            .store
            .suppressed_alerts(cairn_store::alerts::AlertScope::Platform, &rule_id)
            .await
            .unwrap();
        if n == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "suppressed {n}, expected 2");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = rx.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    let payload = python_verifies(&shown, &got[0].0, &got[0].1);
    assert_eq!(payload["type"], "alert.fired");
    assert_eq!(payload["data"]["scope"], "platform");
    assert_eq!(payload["data"]["rule"], "stuffing");
    assert_eq!(payload["data"]["count"], 6);
    app.state.audit.flush().await;
    let platform = app.state.store.recent_platform_audit_events(100).await.unwrap();
    // Rules are evaluated in name order per event, so "per-tenant" fired for the last
    // event before "stuffing" counted its second suppression (waited for above).
    let fired = |rule: &str| -> Vec<_> {
        platform
            .iter()
            .filter(|e| e.action == "alert.fired" && e.details["alert"]["rule"] == rule)
            .collect()
    };
    assert_eq!(fired("stuffing").len(), 1, "{platform:?}");
    assert_eq!(fired("stuffing")[0].details["webhook"], "queued");
    let mut groups: Vec<_> = fired("per-tenant")
        .iter()
        .map(|e| e.details["alert"]["group"].as_str().unwrap().to_owned())
        .collect();
    groups.sort();
    let mut ids = vec![
        s(&app.get("/api/v1/tenants/acme").await.1["id"]).to_owned(),
        s(&app.get("/api/v1/tenants/globex").await.1["id"]).to_owned(),
    ];
    ids.sort();
    assert_eq!(groups, ids);
    for slug in ["acme", "globex"] {
        let events = app.tenant_events(slug).await;
        assert!(!events.iter().any(|e| e.action == "alert.fired"), "{slug}");
    }
    let (status, _) = app.call(Method::DELETE, "/api/v1/alert-rules/stuffing", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}
