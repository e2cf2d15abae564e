use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{s, TestApp};

async fn create_key(app: &TestApp, slug: &str, body: Value) -> Value {
    let (status, key) = app.post(&format!("/api/v1/tenants/{slug}/keys"), body).await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    key
}

#[tokio::test]
async fn key_lifecycle_over_rest() {
    let app = TestApp::start().await;
    app.tenant("acme").await;
    let key = create_key(&app, "acme", json!({"name": "ci", "scopes": ["mcp:tools", "kb:write"]})).await;
    let secret = s(&key["secret"]).to_owned();
    assert!(secret.starts_with(&format!("ck_live_{}_", s(&key["public_id"]))));
    assert!(s(&key["id"]).starts_with("key_"));
    assert_eq!(key["scopes"], json!(["mcp:tools", "kb:write"]));
    assert_eq!(key["tier"], "starter");
    assert!(key["expires_at"].is_null());

    let (status, list) = app.get("/api/v1/tenants/acme/keys").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert!(
        !list.to_string().contains(&secret[20..]),
        "listing must not reveal the secret"
    );
    assert!(list["data"][0].get("secret").is_none());

    let id = s(&key["id"]);
    let (status, rotated) = app
        .call(Method::POST, &format!("/api/v1/tenants/acme/keys/{id}/rotate"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    assert_ne!(s(&rotated["secret"]), secret);
    assert_eq!(rotated["public_id"], key["public_id"]);
    assert!(!rotated["previous_expires_at"].is_null());

    let (status, revoked) = app
        .call(Method::DELETE, &format!("/api/v1/tenants/acme/keys/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!revoked["revoked_at"].is_null());
    let (status, body) = app
        .call(Method::POST, &format!("/api/v1/tenants/acme/keys/{id}/rotate"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    let events = app.tenant_events("acme").await;
    let actions: Vec<_> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(&actions[..3], ["api_key.revoked", "api_key.rotated", "api_key.created"]);
    let text = serde_json::to_string(&events).unwrap();
    assert!(!text.contains(&secret) && !text.contains(s(&rotated["secret"])));
}

#[tokio::test]
async fn key_input_is_validated() {
    let app = TestApp::start().await;
    app.tenant("acme").await;
    let outsider = app.user("out@example.com").await;
    for (body, field) in [
        (json!({"name": "x", "scopes": []}), "scopes"),
        (json!({"name": "x", "scopes": ["root"]}), "scopes"),
        (
            json!({"name": "x", "scopes": ["mcp:tools"], "tier": "platinum"}),
            "tier",
        ),
        (
            json!({"name": "x", "scopes": ["mcp:tools"], "environment": "prod"}),
            "environment",
        ),
        (json!({"name": "", "scopes": ["mcp:tools"]}), "name"),
        (
            json!({"name": "x", "scopes": ["mcp:tools"], "expires_at": "2001-01-01T00:00:00Z"}),
            "expires_at",
        ),
        (
            json!({"name": "x", "scopes": ["mcp:tools"], "user_id": s(&outsider["id"])}),
            "user_id",
        ),
    ] {
        let (status, err) = app.post("/api/v1/tenants/acme/keys", body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body} -> {err}");
        assert_eq!(err["error"]["field"], field, "{body}");
    }
    let (status, _) = app
        .get("/api/v1/tenants/acme/keys/key_00000000000000000000000000000000")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = app.get("/api/v1/tenants/acme/keys").await;
    assert_eq!(list["data"], json!([]));
}

#[tokio::test]
async fn trial_keys_expire_and_test_keys_are_marked() {
    let app = TestApp::start().await;
    app.tenant("acme").await;
    let key = create_key(
        &app,
        "acme",
        json!({"name": "t", "scopes": ["mcp:tools"], "tier": "trial", "environment": "test"}),
    )
    .await;
    assert!(s(&key["secret"]).starts_with("ck_test_"));
    let expires: chrono::DateTime<chrono::Utc> = s(&key["expires_at"]).parse().unwrap();
    let days = (expires - chrono::Utc::now()).num_hours() as f64 / 24.0;
    assert!(
        (13.9..=14.0).contains(&days),
        "trial lasts the configured 14 days, got {days}"
    );
}

#[tokio::test]
async fn verification_rules_and_warm_cache() {
    let app = TestApp::start().await;
    let acme = app.tenant("acme").await;
    let globex = app.tenant("globex").await;
    let acme_id = s(&acme["id"]).parse().unwrap();
    let globex_id = s(&globex["id"]).parse().unwrap();
    let key = create_key(&app, "acme", json!({"name": "k", "scopes": ["mcp:tools"]})).await;
    let secret = s(&key["secret"]).to_owned();
    let (keys, store) = (&app.state.keys, &app.state.store);

    let ok = keys.verify(store, acme_id, &secret).await.unwrap().unwrap();
    assert_eq!(ok.id.to_string(), s(&key["id"]));
    assert!(
        keys.verify(store, globex_id, &secret).await.unwrap().is_err(),
        "another tenant's key is unknown here"
    );
    assert!(keys
        .verify(store, acme_id, &secret.replace("ck_live_", "ck_test_"))
        .await
        .unwrap()
        .is_err());
    let mut tampered = secret.clone();
    tampered.pop();
    tampered.push(if secret.ends_with('A') { 'B' } else { 'A' });
    assert!(keys.verify(store, acme_id, &tampered).await.unwrap().is_err());

    // Rotation without overlap: the old secret stops at once, the new one works.
    let id = s(&key["id"]);
    let (_, rotated) = app
        .call(
            Method::POST,
            &format!("/api/v1/tenants/acme/keys/{id}/rotate"),
            Some(json!({"overlap_secs": 0})),
        )
        .await;
    let new_secret = s(&rotated["secret"]).to_owned();
    assert!(keys.verify(store, acme_id, &secret).await.unwrap().is_err());
    assert!(keys.verify(store, acme_id, &new_secret).await.unwrap().is_ok());
    // With overlap both work.
    let (_, again) = app
        .call(
            Method::POST,
            &format!("/api/v1/tenants/acme/keys/{id}/rotate"),
            Some(json!({"overlap_secs": 3600})),
        )
        .await;
    assert!(keys.verify(store, acme_id, &new_secret).await.unwrap().is_ok());
    assert!(keys.verify(store, acme_id, s(&again["secret"])).await.unwrap().is_ok());

    // Last use is recorded in batches, not per call.
    assert!(app.get(&format!("/api/v1/tenants/acme/keys/{id}")).await.1["last_used_at"].is_null());
    keys.flush_last_used(store).await.unwrap();
    assert!(!app.get(&format!("/api/v1/tenants/acme/keys/{id}")).await.1["last_used_at"].is_null());

    // A warm verification does not touch the database: it still works with the pool closed.
    let warm = s(&again["secret"]).to_owned();
    store.close().await;
    assert!(keys.verify(store, acme_id, &warm).await.unwrap().is_ok());
}

#[tokio::test]
async fn revocation_is_immediate_on_this_replica() {
    let app = TestApp::start().await;
    let acme = app.tenant("acme").await;
    let acme_id = s(&acme["id"]).parse().unwrap();
    let key = create_key(&app, "acme", json!({"name": "k", "scopes": ["mcp:tools"]})).await;
    let secret = s(&key["secret"]);
    assert!(app
        .state
        .keys
        .verify(&app.state.store, acme_id, secret)
        .await
        .unwrap()
        .is_ok());
    app.call(
        Method::DELETE,
        &format!("/api/v1/tenants/acme/keys/{}", s(&key["id"])),
        None,
    )
    .await;
    let refused = app.state.keys.verify(&app.state.store, acme_id, secret).await.unwrap();
    assert_eq!(refused.err(), Some(cairn_server::keys::Refusal::Revoked));
}
