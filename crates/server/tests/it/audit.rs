use reqwest::StatusCode;
use serde_json::json;

use crate::common::{s, TestApp};

#[tokio::test]
async fn admin_actions_are_audited_with_request_ids() {
    let app = TestApp::start().await;
    let resp = app
        .client
        .post(app.url("/api/v1/tenants"))
        .bearer_auth(&app.token)
        .header("x-request-id", "req-create-acme")
        .json(&json!({"slug": "acme", "name": "Acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let tenant: serde_json::Value = resp.json().await.unwrap();
    let user = app.user("ada@example.com").await;
    app.post(
        "/api/v1/tenants/acme/members",
        json!({"user_id": s(&user["id"]), "role": "admin"}),
    )
    .await;
    let resp = app
        .client
        .get(app.url("/api/v1/tenants"))
        .bearer_auth("cairn_op_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    app.state.audit.flush().await;
    let store = &app.state.store;
    let tenant_id = s(&tenant["id"]).parse().unwrap();
    let events = store.recent_audit_events(tenant_id, 50).await.unwrap();
    let actions: Vec<_> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["member.added", "tenant.created"]);
    let created = &events[1];
    assert_eq!(created.request_id.as_deref(), Some("req-create-acme"));
    assert_eq!(created.actor_kind, "operator");
    assert!(created.actor_id.as_deref().unwrap().starts_with("otk_"));
    assert_eq!(created.source_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(events[0].target.as_deref(), Some(s(&user["id"])));

    let platform = store.recent_platform_audit_events(50).await.unwrap();
    let actions: Vec<_> = platform
        .iter()
        .map(|e| (e.action.as_str(), e.outcome.as_str()))
        .collect();
    assert!(actions.contains(&("auth.failed", "denied")), "{actions:?}");
    assert!(actions.contains(&("user.created", "success")), "{actions:?}");
    assert!(actions.contains(&("operator_token.created", "success")), "{actions:?}");
    let text = serde_json::to_string(&platform).unwrap();
    assert!(
        !text.contains(&app.token) && !text.contains("cairn_op_wrong"),
        "audit must not store tokens"
    );
}

#[tokio::test]
async fn audit_writes_are_batched_and_complete_under_concurrency() {
    let app = TestApp::start().await;
    app.tenant("acme").await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let client = app.client.clone();
        let url = app.url("/api/v1/tenants/acme");
        let token = app.token.clone();
        tasks.push(tokio::spawn(async move {
            client
                .patch(url)
                .bearer_auth(token)
                .json(&json!({"name": format!("Acme {i}")}))
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    let events = app.tenant_events("acme").await;
    assert_eq!(events.iter().filter(|e| e.action == "tenant.updated").count(), 40);
}
