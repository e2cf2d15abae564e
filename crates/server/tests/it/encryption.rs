//! Envelope encryption at rest: tenant OAuth credentials and signing keys never reach
//! the database in clear; ciphertexts only open in their own row; the master key is
//! checked at start.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{config_for, raw_dump, s, TestApp, TestDb};

const SECRET: &str = "gh-secret-7f3a9c2e1b4d8f6a0c5e";

fn credential(secret: &str) -> Value {
    json!({"client_id": "Iv1.acme-app", "client_secret": secret,
        "auth_url": "https://github.com/login/oauth/authorize",
        "token_url": "https://github.com/login/oauth/access_token", "scopes": ["repo", "read:user"]})
}

#[tokio::test]
async fn tenant_credentials_are_stored_encrypted_and_never_returned() {
    let app = TestApp::start().await;
    app.tenant("acme").await;
    let (status, stored) = app
        .call(
            Method::PUT,
            "/api/v1/tenants/acme/oauth-credentials/github",
            Some(credential(SECRET)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    assert!(s(&stored["secret_fingerprint"]).starts_with("fp_"));
    assert!(!stored.to_string().contains(SECRET));
    let (_, one) = app.get("/api/v1/tenants/acme/oauth-credentials/github").await;
    let (_, all) = app.get("/api/v1/tenants/acme/oauth-credentials").await;
    assert_eq!(one["client_id"], "Iv1.acme-app");
    assert_eq!(all["data"][0]["secret_fingerprint"], stored["secret_fingerprint"]);
    assert!(!one.to_string().contains(SECRET) && !all.to_string().contains(SECRET));
    // A signing key exists too (its private half must not be readable either).
    app.state.audit.flush().await;

    let dump = raw_dump(&app.db);
    assert!(
        !dump.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
        "plaintext secret at rest"
    );
    assert!(
        dump.windows(b"Iv1.acme-app".len()).any(|w| w == b"Iv1.acme-app"),
        "the dump is real: the (non-secret) client id is in it"
    );

    let (status, _) = app
        .call(
            Method::PUT,
            "/api/v1/tenants/acme/oauth-credentials/Bad Name",
            Some(credential(SECRET)),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, body) = app
        .call(
            Method::PUT,
            "/api/v1/tenants/acme/oauth-credentials/gitlab",
            Some(json!({"client_id": "x", "client_secret": "y", "auth_url": "http://evil.example/a", "token_url": "https://x.example/t"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("auth_url"))
    );
    let (status, _) = app
        .call(Method::DELETE, "/api/v1/tenants/acme/oauth-credentials/github", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.get("/api/v1/tenants/acme/oauth-credentials/github").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let events = app.tenant_events("acme").await;
    for action in [
        "oauth_credential.stored",
        "oauth_credential.read",
        "oauth_credential.deleted",
    ] {
        assert!(events.iter().any(|e| e.action == action), "missing {action}");
    }
}

#[tokio::test]
async fn a_ciphertext_opens_only_in_its_own_row_and_tenant() {
    let app = TestApp::start().await;
    let a = app.tenant("acme").await;
    let b = app.tenant("globex").await;
    let (ta, tb) = (
        cairn_core::ids::TenantId::parse("id", s(&a["id"])).unwrap(),
        cairn_core::ids::TenantId::parse("id", s(&b["id"])).unwrap(),
    );
    let (ring, store) = (&app.state.keyring, &app.state.store);
    let slot = |row| cairn_server::crypto::Slot {
        table: "tenant_oauth_credentials",
        column: "client_secret",
        row,
    };
    let sealed = ring
        .encrypt(store, ta, slot("github"), SECRET.as_bytes())
        .await
        .unwrap();
    assert_eq!(
        ring.decrypt(store, ta, slot("github"), &sealed)
            .await
            .unwrap()
            .as_slice(),
        SECRET.as_bytes()
    );
    let other_row = ring.decrypt(store, ta, slot("gitlab"), &sealed).await.unwrap_err();
    assert!(
        other_row.to_string().contains("does not belong to this row"),
        "{other_row}"
    );
    // Another tenant cannot even find the data key that sealed it.
    assert!(ring.decrypt(store, tb, slot("github"), &sealed).await.is_err());
}

#[tokio::test]
async fn a_wrong_or_malformed_master_key_stops_the_start() {
    let db = TestDb::create().await;
    let mut config = config_for(&db);
    config.master_key = Some("not base64 at all".into());
    let err = cairn_server::Server::build(config.clone())
        .await
        .err()
        .map(|e| e.to_string());
    assert!(err.as_deref().is_some_and(|e| e.contains("master_key")), "{err:?}");

    config.master_key = Some(base64_key(1));
    let app = TestApp::start_on(db, config.clone()).await;
    app.tenant("acme").await;
    let (status, _) = app
        .call(
            Method::PUT,
            "/api/v1/tenants/acme/oauth-credentials/github",
            Some(credential(SECRET)),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let token = app.token.clone();
    let db = app.stop().await;

    let mut wrong = config.clone();
    wrong.master_key = Some(base64_key(2));
    let err = cairn_server::Server::build(wrong).await.err().map(|e| e.to_string());
    assert!(err.as_deref().is_some_and(|e| e.contains("check value")), "{err:?}");
    // The right key still starts.
    let mut app = TestApp::start_on(db, config).await;
    app.token = token;
    let (status, _) = app.get("/api/v1/tenants/acme/oauth-credentials/github").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_lost_master_key_file_is_detected_at_start() {
    let app = TestApp::start().await;
    app.tenant("acme").await;
    let (status, _) = app
        .call(
            Method::PUT,
            "/api/v1/tenants/acme/oauth-credentials/github",
            Some(credential(SECRET)),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let config = app.config.clone();
    let key_file = app.data_dir().join("master.key");
    let original = std::fs::read(&key_file).unwrap();
    let db = app.stop().await;
    std::fs::remove_file(&key_file).unwrap();
    // A fresh key would be generated; the recorded check value unmasks it.
    let err = cairn_server::Server::build(config.clone())
        .await
        .err()
        .map(|e| e.to_string());
    assert!(
        err.as_deref()
            .is_some_and(|e| e.contains("check value") && e.contains("Restore")),
        "{err:?}"
    );
    std::fs::write(&key_file, original).unwrap();
    let app = TestApp::start_on(db, config).await;
    app.stop().await;
}

fn base64_key(fill: u8) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode([fill; 32])
}

#[tokio::test]
async fn the_master_key_is_replaced_by_re_wrapping_the_data_keys() {
    let db = TestDb::create().await;
    let mut config = config_for(&db);
    config.master_key = Some(base64_key(1));
    let app = TestApp::start_on(db, config.clone()).await;
    app.tenant("acme").await;
    let (status, _) = app
        .call(
            Method::PUT,
            "/api/v1/tenants/acme/oauth-credentials/github",
            Some(credential(SECRET)),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let token = app.token.clone();
    let db = app.stop().await;

    // The new key alone cannot start: data keys are still wrapped under version 1.
    let mut only_new = config.clone();
    only_new.master_key = Some(base64_key(2));
    only_new.master_key_version = 2;
    let err = cairn_server::Server::build(only_new.clone())
        .await
        .err()
        .map(|e| e.to_string());
    assert!(err.as_deref().is_some_and(|e| e.contains("not configured")), "{err:?}");

    // New key + the old one as previous: the start re-wraps.
    let mut both = only_new.clone();
    both.previous_master_keys.insert("1".into(), base64_key(1));
    let mut app = TestApp::start_on(db, both).await;
    app.token = token.clone();
    let (_, st) = app.get("/api/v1/tenants/acme/encryption").await;
    assert_eq!(st["data_keys"][0]["kek_version"], 2);
    let db = app.stop().await;

    // Now the old key can go.
    let mut app = TestApp::start_on(db, only_new).await;
    app.token = token;
    let (_, t) = app.get("/api/v1/tenants/acme").await;
    let tenant = cairn_core::ids::TenantId::parse("id", s(&t["id"])).unwrap();
    let cred = app
        .state
        .store
        .get_oauth_credential(tenant, "github")
        .await
        .unwrap()
        .unwrap();
    let slot = cairn_server::crypto::Slot {
        table: "tenant_oauth_credentials",
        column: "client_secret",
        row: "github",
    };
    let plain = app
        .state
        .keyring
        .decrypt(&app.state.store, tenant, slot, &cred.sealed_secret)
        .await
        .unwrap();
    assert_eq!(plain.as_slice(), SECRET.as_bytes());
}
