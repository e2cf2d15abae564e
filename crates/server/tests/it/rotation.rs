//! Data-key rotation: the background job re-encrypts every sealed row while reads and
//! writes go on, survives being cut off mid-way, and can be rolled back.

use std::time::{Duration, Instant};

use cairn_core::ids::TenantId;
use cairn_server::crypto::Slot;
use cairn_store::crypto_jobs::SEALED_COLUMNS;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{s, TestApp};

fn credential(secret: &str) -> Value {
    json!({"client_id": "id", "client_secret": secret, "auth_url": "https://a.example/a", "token_url": "https://a.example/t"})
}

async fn seed(app: &TestApp, slug: &str, n: usize) -> TenantId {
    let t = app.tenant(slug).await;
    for i in 0..n {
        let path = format!("/api/v1/tenants/{slug}/oauth-credentials/p{i:04}");
        let (status, body) = app
            .call(Method::PUT, &path, Some(credential(&format!("secret-{i}"))))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    TenantId::parse("id", s(&t["id"])).unwrap()
}

/// Every credential decrypts to what was stored; returns the data key ids in use.
async fn check_all(app: &TestApp, tenant: TenantId) -> std::collections::BTreeSet<uuid::Uuid> {
    let creds = app.state.store.list_oauth_credentials(tenant).await.unwrap();
    let mut keys = std::collections::BTreeSet::new();
    for c in creds {
        let slot = Slot {
            table: "tenant_oauth_credentials",
            column: "client_secret",
            row: &c.provider,
        };
        let plain = app
            .state
            .keyring
            .decrypt(&app.state.store, tenant, slot, &c.sealed_secret)
            .await
            .unwrap();
        let expected = format!("secret-{}", c.provider.trim_start_matches('p').trim_start_matches('0'));
        let got = String::from_utf8(plain.to_vec()).unwrap();
        assert!(
            got == expected || (expected == "secret-" && got == "secret-0") || got.starts_with("rewritten-"),
            "{got}"
        );
        keys.insert(cairn_core::crypto::header(&c.sealed_secret).unwrap().dek_id);
    }
    keys
}

async fn wait_job(app: &TestApp, slug: &str, job: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, status) = app.get(&format!("/api/v1/tenants/{slug}/encryption")).await;
        let found = status["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["id"] == job)
            .cloned()
            .unwrap();
        if found["state"] != "running" {
            return found;
        }
        assert!(Instant::now() < deadline, "job did not finish: {found}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn rotation_re_encrypts_every_row_while_reads_and_writes_go_on() {
    let app = TestApp::start_with(|c| c.reencrypt_batch_size = 25).await;
    let tenant = seed(&app, "acme", 200).await;
    let before = check_all(&app, tenant).await;
    assert_eq!(before.len(), 1);

    let (status, job) = app.post("/api/v1/tenants/acme/encryption/rotate", json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    assert_eq!(job["progress"]["tenant_oauth_credentials.client_secret"]["total"], 200);
    let job_id = s(&job["id"]).to_owned();

    // Load while the job runs: writes (new and rewritten rows) and reads, no errors.
    let mut writes = 0;
    let finished = loop {
        let path = format!("/api/v1/tenants/acme/oauth-credentials/p{:04}", writes % 200);
        let (status, _) = app
            .call(Method::PUT, &path, Some(credential(&format!("rewritten-{writes}"))))
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = app.get("/api/v1/tenants/acme/oauth-credentials").await;
        assert_eq!(status, StatusCode::OK);
        check_all(&app, tenant).await;
        writes += 1;
        let (_, st) = app.get("/api/v1/tenants/acme/encryption").await;
        let j = st["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["id"] == job_id.as_str())
            .cloned()
            .unwrap();
        if j["state"] != "running" {
            break j;
        }
    };
    assert_eq!(finished["state"], "done", "{finished}");
    let after = check_all(&app, tenant).await;
    assert_eq!(after.len(), 1, "every row under one key");
    assert!(before.is_disjoint(&after), "and it is the new one");
    for col in SEALED_COLUMNS {
        let active = *after.iter().next().unwrap();
        assert_eq!(
            app.state
                .store
                .count_sealed_not_under(tenant, col, active)
                .await
                .unwrap(),
            0,
            "{}",
            col.name()
        );
    }
    let (_, st) = app.get("/api/v1/tenants/acme/encryption").await;
    assert_eq!(st["data_keys"][0]["state"], "active");
    assert_eq!(st["data_keys"][1]["state"], "decrypt_only", "kept for a rollback");
    app.state.audit.flush().await;
    let events = app.state.store.recent_audit_events(tenant, 10_000).await.unwrap();
    assert!(events.iter().any(|e| e.action == "key_rotation.started"));
    assert!(events.iter().any(|e| e.action == "key_rotation.finished"));
}

#[tokio::test]
async fn a_job_cut_off_mid_way_resumes_where_it_stopped() {
    let app = TestApp::start_with(|c| c.reencrypt_batch_size = 10).await;
    let tenant = seed(&app, "acme", 60).await;
    let job = cairn_server::crypto::rotation::rotate(&app.state, tenant)
        .await
        .unwrap();
    // A runner that dies after a moment (the future is dropped, like a killed process).
    let owner = "runner-a";
    let _ = tokio::time::timeout(
        Duration::from_millis(30),
        cairn_server::crypto::rotation::run_job(&app.state, tenant, job.id, owner, 10),
    )
    .await;
    let mid = app.state.store.get_crypto_job(tenant, job.id).await.unwrap().unwrap();
    assert_eq!(mid.state, "running");
    // The same runner identity comes back (its lease is still its own) and finishes.
    let done = cairn_server::crypto::rotation::run_job(&app.state, tenant, job.id, owner, 10)
        .await
        .unwrap();
    let end = app.state.store.get_crypto_job(tenant, job.id).await.unwrap().unwrap();
    assert!(done || end.state == "done", "{end:?}");
    let keys = check_all(&app, tenant).await;
    assert_eq!(keys.into_iter().collect::<Vec<_>>(), vec![job.target_key]);
    let p = &end.progress["tenant_oauth_credentials.client_secret"];
    assert_eq!((p.done, p.total), (60, 60), "progress survived the cut");
}

#[tokio::test]
async fn rollback_returns_to_the_previous_key_until_it_is_retired() {
    let app = TestApp::start().await;
    let tenant = seed(&app, "acme", 20).await;
    let (status, _) = app.post("/api/v1/tenants/acme/encryption/rollback", json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "nothing to roll back to yet");
    let v1 = check_all(&app, tenant).await;
    let (_, job) = app.post("/api/v1/tenants/acme/encryption/rotate", json!({})).await;
    assert_eq!(wait_job(&app, "acme", s(&job["id"])).await["state"], "done");
    let (status, back) = app.post("/api/v1/tenants/acme/encryption/rollback", json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{back}");
    assert_eq!(wait_job(&app, "acme", s(&back["id"])).await["state"], "done");
    assert_eq!(check_all(&app, tenant).await, v1, "every row back under the first key");

    // Retiring the unused key ends the rollback window.
    let retired = cairn_server::crypto::rotation::retire_old_keys(&app.state, tenant)
        .await
        .unwrap();
    assert_eq!(retired, 1);
    let (_, st) = app.get("/api/v1/tenants/acme/encryption").await;
    assert_eq!(st["min_decryption_version"], 1);
    let (status, _) = app.post("/api/v1/tenants/acme/encryption/rollback", json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    check_all(&app, tenant).await;
}
