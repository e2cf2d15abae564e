//! The tamper-evident audit chain: concurrent writers (two "replicas" racing on the same
//! database) still produce one valid chain per tenant; editing a stored row makes
//! `cairn audit verify` name that row.

use cairn_core::audit::{Actor, AuditEvent, Outcome};
use serde_json::{json, Value};

use crate::cli::cairn_at;
use crate::common::{backend, TestApp};
use cairn_store::Backend;

async fn verify_cli(app: &TestApp, args: &'static [&'static str]) -> (bool, Value, String) {
    let (url, dir) = (app.db.url.clone(), app.db.dir.path().to_owned());
    let out = tokio::task::spawn_blocking(move || cairn_at(&url, &dir, args, None))
        .await
        .unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status.success(),
        report,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn concurrent_writers_keep_one_chain_and_an_edited_row_is_named() {
    let app = TestApp::start().await;
    let tenant = app.tenant("acme").await;
    let tid: cairn_core::ids::TenantId = tenant["id"].as_str().unwrap().parse().unwrap();
    // Two writers racing on their own connections, as two replicas would.
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..2 {
        let store = app.state.store.clone();
        tasks.spawn(async move {
            for i in 0..40 {
                let event = || {
                    AuditEvent::new(Actor::System, "test.event", Outcome::Success)
                        .tenant(tid)
                        .details(json!({"writer": w, "i": i, "nested": {"b": 1, "a": [1, 2]}}))
                };
                store.insert_audit_events(&[event(), event()]).await.unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    app.state.audit.flush().await;

    let (ok, report, err) = verify_cli(&app, &["audit", "verify", "--tenant", "acme"]).await;
    assert!(ok, "{err} {report}");
    assert_eq!(report[0]["ok"], true, "{report}");
    assert!(report[0]["verified"].as_u64().unwrap() >= 160, "{report}");
    let (ok, all, err) = verify_cli(&app, &["audit", "verify"]).await;
    assert!(ok, "{err} {all}");
    assert!(
        all.as_array().unwrap().iter().any(|r| r["chain"] == "platform"),
        "{all}"
    );

    // Edit one stored row behind the application's back.
    let sql = "UPDATE audit_events SET action = 'tampered' WHERE seq = 7 AND \
               tenant_id = (SELECT id FROM tenants WHERE slug = 'acme')";
    match backend() {
        Backend::Sqlite => {
            use sqlx::Connection;
            let mut c = sqlx::SqliteConnection::connect(&app.db.url).await.unwrap();
            assert_eq!(sqlx::query(sql).execute(&mut c).await.unwrap().rows_affected(), 1);
        }
        Backend::Postgres => {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
            assert_eq!(sqlx::query(sql).execute(&mut c).await.unwrap().rows_affected(), 1);
        }
    }
    let (ok, report, err) = verify_cli(&app, &["audit", "verify", "--tenant", "acme"]).await;
    assert!(!ok, "an edited row must fail verification: {report}");
    assert_eq!(report[0]["first_break"]["seq"], 7, "{report}");
    assert_eq!(report[0]["first_break"]["reason"], "content_changed", "{report}");
    assert!(err.contains("acme at seq 7"), "{err}");
}
