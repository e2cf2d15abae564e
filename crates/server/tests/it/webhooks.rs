//! Inbound webhooks: Standard Webhooks and GitHub-style HMAC deliveries are verified,
//! recorded once, and every bad delivery is refused with a stable code and audited.
//! Secrets are shown once and stored sealed. On PostgreSQL, events live in monthly
//! partitions and retention drops whole partitions.

use cairn_core::webhook::generic::{sign_generic, HmacScheme};
use cairn_core::webhook::standard::{sign, WebhookSecret};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::{backend, python, raw_dump, TestApp};
use cairn_store::Backend;

async fn deliver(app: &TestApp, path: &str, headers: &[(&str, String)], body: &str) -> (StatusCode, Value) {
    let mut req = app
        .client
        .post(format!("http://{}{path}", app.addr))
        .body(body.to_owned());
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn standard_headers(secret: &WebhookSecret, id: &str, ts: i64, body: &str) -> Vec<(&'static str, String)> {
    vec![
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", ts.to_string()),
        ("webhook-signature", sign(secret, id, ts, body.as_bytes())),
    ]
}

/// The tenant's recorded events, newest first.
async fn recorded(app: &TestApp, tid: cairn_core::ids::TenantId) -> Vec<cairn_store::webhooks::StoredWebhookEvent> {
    let q = cairn_store::webhooks::EventQuery {
        limit: 10,
        ..Default::default()
    };
    app.state.store.webhook_events(tid, &q).await.unwrap()
}

#[tokio::test]
async fn standard_webhooks_are_verified_recorded_once_and_bad_ones_refused() {
    let app = TestApp::start().await;
    app.tenant("acme").await;
    let (status, created) = app
        .post(
            "/api/v1/tenants/acme/webhook-sources",
            json!({"name": "billing", "scheme": "standard"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let shown = created["secret"].as_str().unwrap().to_owned();
    assert!(shown.starts_with("whsec_"), "{created}");
    assert_eq!(created["endpoint"], "/hooks/acme/billing");
    let secret = WebhookSecret::parse(&shown).unwrap();
    let (_, listed) = app.get("/api/v1/tenants/acme/webhook-sources").await;
    assert!(
        !listed.to_string().contains(&shown[6..]),
        "the secret is shown once: {listed}"
    );
    assert!(
        !String::from_utf8_lossy(&raw_dump(&app.db)).contains(&shown),
        "sealed at rest"
    );

    let now = chrono::Utc::now().timestamp();
    let body = r#"{"type":"invoice.paid","data":{"id":"in_1"}}"#;
    let ok = standard_headers(&secret, "msg_1", now, body);
    let (status, got) = deliver(&app, "/hooks/acme/billing", &ok, body).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["event_type"], "invoice.paid");

    let refused = |code: &'static str| {
        move |(status, body): (StatusCode, Value)| {
            assert!(status.is_client_error(), "{status} {body}");
            assert_eq!(body["error"]["code"], code, "{body}");
            body["error"]["message"].as_str().unwrap_or_default().to_owned()
        }
    };
    // The same message again: a replay.
    refused("webhook_replayed")(deliver(&app, "/hooks/acme/billing", &ok, body).await);
    // Tampered body, wrong secret, a timestamp 6 minutes old, one 6 minutes ahead.
    let tampered = body.replace("in_1", "in_2");
    let m = refused("webhook_verification_failed")(deliver(&app, "/hooks/acme/billing", &ok, &tampered).await);
    assert!(m.contains("signature_mismatch"), "{m}");
    let other = WebhookSecret::generate();
    let wrong = standard_headers(&other, "msg_2", now, body);
    refused("webhook_verification_failed")(deliver(&app, "/hooks/acme/billing", &wrong, body).await);
    let stale = standard_headers(&secret, "msg_3", now - 360, body);
    let m = refused("webhook_verification_failed")(deliver(&app, "/hooks/acme/billing", &stale, body).await);
    assert!(m.contains("timestamp_too_old"), "{m}");
    let future = standard_headers(&secret, "msg_4", now + 360, body);
    let m = refused("webhook_verification_failed")(deliver(&app, "/hooks/acme/billing", &future, body).await);
    assert!(m.contains("timestamp_in_future"), "{m}");
    // Missing and malformed headers.
    let m = refused("webhook_verification_failed")(deliver(&app, "/hooks/acme/billing", &ok[..2], body).await);
    assert!(m.contains("missing_header"), "{m}");
    let garbled = vec![
        ok[0].clone(),
        ok[1].clone(),
        ("webhook-signature", "v1,not base64!".to_owned()),
    ];
    refused("webhook_verification_failed")(deliver(&app, "/hooks/acme/billing", &garbled, body).await);
    // Unknown source or tenant; a body over the limit.
    refused("webhook_source_not_found")(deliver(&app, "/hooks/acme/nope", &ok, body).await);
    refused("webhook_source_not_found")(deliver(&app, "/hooks/nobody/billing", &ok, body).await);
    let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(1024 * 1024 + 10));
    let bigh = standard_headers(&secret, "msg_5", now, &big);
    refused("payload_too_large")(deliver(&app, "/hooks/acme/billing", &bigh, &big).await);
    // Over the server-wide limit too (2 MiB): still refused by the source, and audited.
    let huge = format!(r#"{{"pad":"{}"}}"#, "x".repeat(3 * 1024 * 1024));
    let hugeh = standard_headers(&secret, "msg_6", now, &huge);
    refused("payload_too_large")(deliver(&app, "/hooks/acme/billing", &hugeh, &huge).await);

    // Exactly one event stored; every refusal audited with its reason.
    let tid: cairn_core::ids::TenantId = app.get("/api/v1/tenants/acme").await.1["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let events = recorded(&app, tid).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].message_id.as_deref(), Some("msg_1"));
    app.state.audit.flush().await;
    let audit = app.tenant_events("acme").await;
    let rejected = audit.iter().filter(|e| e.action == "webhook.rejected").count();
    assert_eq!(rejected, 10, "{audit:?}");
    assert_eq!(audit.iter().filter(|e| e.action == "webhook.received").count(), 1);
}

#[tokio::test]
async fn github_style_hmac_deliveries_are_verified() {
    let app = TestApp::start().await;
    app.tenant("acme").await;
    let (status, created) = app
        .post(
            "/api/v1/tenants/acme/webhook-sources",
            json!({"name": "gh", "scheme": "github", "secret": "a-secret-chosen-at-github"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let body = r#"{"action":"opened","number":7}"#;
    let sig = sign_generic(&HmacScheme::github(), b"a-secret-chosen-at-github", body.as_bytes(), 0);
    let headers = vec![
        ("X-Hub-Signature-256", sig.clone()),
        ("X-GitHub-Event", "pull_request".to_owned()),
        ("X-GitHub-Delivery", "d-1".to_owned()),
    ];
    let (status, got) = deliver(&app, "/hooks/acme/gh", &headers, body).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["event_type"], "pull_request");
    // Same delivery id again: refused; a forged signature: refused.
    let (status, _) = deliver(&app, "/hooks/acme/gh", &headers, body).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let forged = vec![
        ("X-Hub-Signature-256", sig.replace('a', "b")),
        ("X-GitHub-Delivery", "d-2".to_owned()),
    ];
    let (status, got) = deliver(&app, "/hooks/acme/gh", &forged, body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{got}");

    // Bad source definitions are refused before anything is stored.
    for bad in [
        json!({"name": "Bad Name", "scheme": "standard"}),
        json!({"name": "x", "scheme": "nonsense"}),
        json!({"name": "y", "scheme": "standard", "secret": "not-a-whsec"}),
        json!({"name": "z", "scheme": "github", "secret": "short"}),
    ] {
        let (status, body) = app.post("/api/v1/tenants/acme/webhook-sources", bad.clone()).await;
        assert!(status.is_client_error(), "{bad} → {status} {body}");
    }
    let (status, _) = app
        .post(
            "/api/v1/tenants/acme/webhook-sources",
            json!({"name": "gh", "scheme": "github"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "names are unique per tenant");
    let (status, _) = app
        .call(reqwest::Method::DELETE, "/api/v1/tenants/acme/webhook-sources/gh", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = deliver(&app, "/hooks/acme/gh", &headers, body).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn postgres_events_live_in_monthly_partitions_and_retention_drops_old_ones() {
    use cairn_store::webhook_partitions::{ensure_webhook_partitions, expire_webhook_events, webhook_partitions};
    use cairn_store::webhooks::NewWebhookEvent;
    let app = TestApp::start().await;
    app.tenant("acme").await;
    let (_, created) = app
        .post(
            "/api/v1/tenants/acme/webhook-sources",
            json!({"name": "s", "scheme": "standard"}),
        )
        .await;
    let source: cairn_core::ids::WebhookSourceId = created["id"].as_str().unwrap().parse().unwrap();
    let tid: cairn_core::ids::TenantId = app.get("/api/v1/tenants/acme").await.1["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let cfg = app.config.store_config();
    let now = chrono::Utc::now();
    let old = now - chrono::Duration::days(200);
    ensure_webhook_partitions(&cfg, old, 0).await.unwrap();
    for (at, id) in [(old, "old"), (now, "new")] {
        let e = NewWebhookEvent {
            source,
            message_id: Some(id),
            event_type: None,
            payload: "{}",
            received_at: at,
        };
        app.state.store.record_webhook_event(tid, &e).await.unwrap().unwrap();
    }
    let before = webhook_partitions(&cfg).await.unwrap();
    let expired = expire_webhook_events(&app.state.store, &cfg, now - chrono::Duration::days(90))
        .await
        .unwrap();
    let after = webhook_partitions(&cfg).await.unwrap();
    let events = recorded(&app, tid).await;
    assert_eq!(events.len(), 1, "only the recent event is left: {events:?}");
    assert_eq!(events[0].message_id.as_deref(), Some("new"));
    match backend() {
        Backend::Postgres => {
            // The server created this month's and the next two months' partitions at start.
            assert!(before.len() >= 4, "{before:?}");
            assert_eq!(expired.dropped_partitions.len(), 1, "{expired:?}");
            assert_eq!(after.len(), before.len() - 1);
            assert!(!after.contains(&expired.dropped_partitions[0]));
        }
        Backend::Sqlite => {
            assert!(before.is_empty() && after.is_empty());
            assert_eq!(expired.deleted_rows, 1);
        }
    }
}

/// Signs with the official Python library: (webhook-id, webhook-timestamp, webhook-signature).
fn python_sign(secret: &str, msg_id: &str, age_secs: i64, body: &str) -> Vec<(&'static str, String)> {
    let script = "import sys, datetime\n\
from standardwebhooks.webhooks import Webhook\n\
secret, msg_id, age = sys.argv[1], sys.argv[2], int(sys.argv[3])\n\
body = sys.stdin.read()\n\
ts = datetime.datetime.now(tz=datetime.timezone.utc) - datetime.timedelta(seconds=age)\n\
print(int(ts.timestamp()))\n\
print(Webhook(secret).sign(msg_id, ts, body))\n";
    let mut child = std::process::Command::new(python())
        .args(["-c", script, secret, msg_id, &age_secs.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python standardwebhooks failed");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let ts = lines.next().unwrap().to_owned();
    let sig = lines.next().unwrap().to_owned();
    vec![
        ("webhook-id", msg_id.to_owned()),
        ("webhook-timestamp", ts),
        ("webhook-signature", sig),
    ]
}

#[tokio::test]
async fn deliveries_signed_by_the_official_python_library_are_accepted() {
    let app = TestApp::start().await;
    app.tenant("acme").await;
    let (_, created) = app
        .post(
            "/api/v1/tenants/acme/webhook-sources",
            json!({"name": "py", "scheme": "standard"}),
        )
        .await;
    let secret = created["secret"].as_str().unwrap().to_owned();
    let body = r#"{"type":"user.created","data":{"name":"Zoë","n":1.5}}"#;
    let signed = python_sign(&secret, "msg_py_1", 0, body);
    let (status, got) = deliver(&app, "/hooks/acme/py", &signed, body).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["event_type"], "user.created");
    // Same library: tampered body, 6 minutes old, replayed id, another secret.
    let (status, _) = deliver(&app, "/hooks/acme/py", &signed, &body.replace("1.5", "2.5")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let stale = python_sign(&secret, "msg_py_2", 360, body);
    let (status, got) = deliver(&app, "/hooks/acme/py", &stale, body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{got}");
    let (status, _) = deliver(&app, "/hooks/acme/py", &signed, body).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let other = python_sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_py_3", 0, body);
    let (status, _) = deliver(&app, "/hooks/acme/py", &other, body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
