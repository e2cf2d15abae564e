//! Alerting end to end: 10 failed logins in a minute from one address fire exactly one
//! alert, delivered as a signed webhook and as an e-mail caught by a real SMTP server on
//! loopback (Python aiosmtpd); further failures within the cool-down are suppressed and
//! counted; the alert is audited.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use cairn_store::alerts::AlertScope;

use crate::common::TestApp;
use crate::oauth::{auth_params, hidden, pkce, register, tenant_with_member};
use crate::oauth_refusals::{login_page, post_form};
use crate::smtp_sink::smtp_sink;
use crate::webhooks_out::{python_verifies, receiver};

#[tokio::test]
async fn ten_failed_logins_fire_one_alert_by_webhook_and_email_and_the_rest_are_suppressed() {
    let sink = smtp_sink(&[]).await;
    let smtp = sink.config("Cairn <alerts@cairn.test>");
    let app = TestApp::start_with(|c| {
        c.webhooks.allow_private_addresses = true;
        c.webhooks.poll_interval_ms = 100;
        c.smtp = Some(smtp);
    })
    .await;
    tenant_with_member(&app, "acme", "alice@example.com", "member").await;
    let (rx, url) = receiver(200).await;
    let (_, endpoint) = app
        .post(
            "/api/v1/tenants/acme/webhook-endpoints",
            json!({"url": url, "event_types": ["alert.fired"]}),
        )
        .await;
    let secret = endpoint["secret"].as_str().unwrap().to_owned();
    let (status, rule) = app
        .post(
            "/api/v1/tenants/acme/alert-rules",
            json!({"name": "brute-force", "action": "auth.failed", "threshold": 10, "window_secs": 60,
                   "group_by": "source_ip", "cooldown_secs": 600, "severity": "critical",
                   "email_to": "security@acme.test"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rule}");
    // Bad rules are refused.
    for bad in [
        json!({"name": "x", "action": "Auth", "threshold": 1, "window_secs": 60}),
        json!({"name": "y", "action": "auth.failed", "threshold": 0, "window_secs": 60}),
        json!({"name": "z", "action": "auth.failed", "threshold": 1, "window_secs": 60, "email_to": "nope"}),
    ] {
        let (status, body) = app.post("/api/v1/tenants/acme/alert-rules", bad).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }

    // 15 failed logins at the tenant's OAuth login form from 127.0.0.1: a wrong password
    // ten times, then the per-account throttle refuses the rest (still failures).
    let client_id = register(&app, "acme").await;
    let p = pkce();
    let params = auth_params(&app, "acme", &client_id, &p.challenge);
    for _ in 0..15 {
        let (html, jar) = login_page(&app, "acme", &params).await;
        let (request, csrf) = (hidden(&html, "request"), hidden(&html, "csrf_token"));
        let form = [
            ("request", request.as_str()),
            ("csrf_token", csrf.as_str()),
            ("email", "alice@example.com"),
            ("password", "not the right password"),
        ];
        let resp = post_form(&app, "/t/acme/oauth/login", &jar, &form).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    app.state.audit.flush().await;
    let tid: cairn_core::ids::TenantId = app.get("/api/v1/tenants/acme").await.1["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let rule_id = rule["id"].as_str().unwrap().to_owned();
    // Every event evaluated: the 11th to 15th were suppressed by the cool-down.
    let deadline = Instant::now() + Duration::from_secs(20);
    while app
        .state
        .store
        .suppressed_alerts(AlertScope::Tenant(tid), &rule_id)
        .await
        .unwrap()
        < 5
    {
        assert!(Instant::now() < deadline, "the evaluator did not see every event");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        app.state
            .store
            .suppressed_alerts(AlertScope::Tenant(tid), &rule_id)
            .await
            .unwrap(),
        5
    );
    // The rule list shows it too.
    let (_, rules) = app.get("/api/v1/tenants/acme/alert-rules").await;
    assert_eq!(rules["data"][0]["suppressed"], 5, "{rules}");
    assert!(rules["data"][0]["last_fired_at"].is_string(), "{rules}");

    // Exactly one e-mail and one signed webhook.
    let deadline = Instant::now() + Duration::from_secs(20);
    while sink.messages().is_empty() || rx.got.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "alert not delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.state.audit.flush().await;
    let audit = app.tenant_events("acme").await;
    let fired: Vec<_> = audit.iter().filter(|e| e.action == "alert.fired").collect();
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(fired[0].details["email"], "sent", "{:?}", fired[0]);
    let mails = sink.messages();
    assert_eq!(mails.len(), 1);
    assert!(mails[0].contains("To: security@acme.test"), "{}", mails[0]);
    assert!(mails[0].contains("brute-force"), "{}", mails[0]);
    assert!(mails[0].contains("10 events matching auth.failed"), "{}", mails[0]);
    let deliveries = rx.got.lock().unwrap().clone();
    assert_eq!(deliveries.len(), 1);
    let payload = python_verifies(&secret, &deliveries[0].0, &deliveries[0].1);
    assert_eq!(payload["type"], "alert.fired");
    assert_eq!(payload["data"]["rule"], "brute-force");
    assert_eq!(payload["data"]["count"], 10);
    assert_eq!(payload["data"]["group"], "127.0.0.1");
}
