//! The tamper-evident audit chain: concurrent writers (two "replicas" racing on the same
//! database) still produce one valid chain per tenant; editing a stored row makes
//! `cairn audit verify` name that row; a corrupted chain head makes the writer set the
//! events aside instead of retrying forever.

use cairn_core::audit::{Actor, AuditEvent, Outcome};
use reqwest::Method;
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
    execute(&app, sql).await;
    let (ok, report, err) = verify_cli(&app, &["audit", "verify", "--tenant", "acme"]).await;
    assert!(!ok, "an edited row must fail verification: {report}");
    assert_eq!(report[0]["first_break"]["seq"], 7, "{report}");
    assert_eq!(report[0]["first_break"]["reason"], "content_changed", "{report}");
    assert!(err.contains("acme at seq 7"), "{err}");
}

#[tokio::test]
async fn retention_is_at_least_90_days_and_a_purge_keeps_the_chain_verifiable() {
    use cairn_server::service::audit::purge_chain;
    let app = TestApp::start().await;
    let tenant = app.tenant("acme").await;
    assert_eq!(tenant["audit_retention_days"], 365, "{tenant}");
    let patch = |days: i64| {
        app.call(
            Method::PATCH,
            "/api/v1/tenants/acme",
            Some(json!({"audit_retention_days": days})),
        )
    };
    let (status, body) = patch(89).await;
    assert_eq!(status.as_u16(), 422, "{body}");
    assert_eq!(body["error"]["field"], "audit_retention_days", "{body}");
    let (status, body) = patch(90).await;
    assert_eq!(status.as_u16(), 200, "{body}");
    assert_eq!(body["audit_retention_days"], 90);

    // A tenant created straight in the store (no creation event), so its chain starts with
    // 25 events 200 days old, followed by 5 from today.
    let new = cairn_core::tenant::NewTenant {
        slug: cairn_core::tenant::Slug::parse("globex").unwrap(),
        name: cairn_core::tenant::TenantName::parse("Globex").unwrap(),
        plan: cairn_core::tenant::Plan::default(),
        region: None,
    };
    let gid = app.state.store.create_tenant(&new).await.unwrap().id;
    let now = chrono::Utc::now();
    let event = |days: i64, i: i64| {
        let mut e = AuditEvent::new(Actor::System, "test.event", Outcome::Success)
            .tenant(gid)
            .details(json!({"i": i}));
        e.occurred_at = now - chrono::Duration::days(days);
        e
    };
    let old: Vec<AuditEvent> = (0..25).map(|i| event(200, i)).collect();
    app.state.store.insert_audit_events(&old).await.unwrap();
    let recent: Vec<AuditEvent> = (0..5).map(|i| event(0, i)).collect();
    app.state.store.insert_audit_events(&recent).await.unwrap();

    // Within 365 days nothing goes; with 90, the 25 old ones in batches of 7.
    let kept = purge_chain(&app.state, Some(gid), "globex", 365, now, 7).await.unwrap();
    assert_eq!(kept.deleted, 0);
    let purged = purge_chain(&app.state, Some(gid), "globex", 90, now, 7).await.unwrap();
    assert_eq!((purged.deleted, purged.through_seq), (25, Some(25)), "{purged:?}");
    app.state.audit.flush().await;
    let left = app.state.store.audit_chain_page(Some(gid), 0, 100).await.unwrap();
    assert_eq!(
        left.first().map(|l| l.seq),
        Some(26),
        "what remains is the chain's suffix"
    );
    assert!(
        left.iter().any(|l| l.event.action == "audit.purged"),
        "the purge is itself audited"
    );

    let (ok, report, err) = verify_cli(&app, &["audit", "verify", "--tenant", "globex"]).await;
    assert!(ok, "{err} {report}");
    assert_eq!(report[0]["verified"], 6, "5 recent events and audit.purged: {report}");

    // Tampering after a purge is still found.
    let sql = "UPDATE audit_events SET target = 'x' WHERE seq = 27 AND \
               tenant_id = (SELECT id FROM tenants WHERE slug = 'globex')";
    execute(&app, sql).await;
    let (ok, report, _) = verify_cli(&app, &["audit", "verify", "--tenant", "globex"]).await;
    assert!(!ok);
    assert_eq!(report[0]["first_break"]["seq"], 27, "{report}");
}

#[tokio::test]
async fn a_corrupted_chain_head_sets_events_aside_and_flush_returns() {
    let app = TestApp::start().await;
    let ids = |v: &Value| -> cairn_core::ids::TenantId { v["id"].as_str().unwrap().parse().unwrap() };
    let acme = ids(&app.tenant("acme").await);
    let globex = ids(&app.tenant("globex").await);
    let event = |t, i: i32| {
        AuditEvent::new(Actor::System, "test.event", Outcome::Success)
            .tenant(t)
            .details(json!({"i": i}))
    };
    for i in 0..5 {
        app.state.audit.emit(event(acme, i)).await;
    }
    app.state.audit.flush().await;
    let (head, _) = app.state.store.audit_chain_head(Some(acme)).await.unwrap().unwrap();

    // Move acme's head back two links: the next append collides with a stored seq.
    execute(
        &app,
        "UPDATE audit_chain_heads SET seq = seq - 2 WHERE chain_id = (SELECT id FROM tenants WHERE slug = 'acme')",
    )
    .await;
    let (lost, kept) = ([event(acme, 10), event(acme, 11), event(acme, 12)], event(globex, 13));
    for e in lost.iter().chain([&kept]) {
        app.state.audit.emit(e.clone()).await;
    }
    // Returning at all is the point: before, the writer retried this batch forever. The
    // timeout only turns a hang into a readable failure.
    tokio::time::timeout(std::time::Duration::from_secs(120), app.state.audit.flush())
        .await
        .expect("flush hung on a batch the chain refuses");

    // globex's event (most likely in the same batch) is in its chain; acme's three are
    // set aside whole.
    let chained = |slug: &'static str| app.tenant_events(slug);
    assert!(chained("globex").await.iter().any(|e| e.id == kept.id));
    let acme_ids: Vec<_> = chained("acme").await.into_iter().map(|e| e.id).collect();
    assert!(lost.iter().all(|e| !acme_ids.contains(&e.id)), "{acme_ids:?}");
    assert_eq!(app.state.store.audit_dead_letter_count(Some(acme)).await.unwrap(), 3);
    let rows = dead_letters(&app).await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    for e in &lost {
        let (_, action, event, error) = rows
            .iter()
            .find(|r| r.0 == e.id.as_uuid().hyphenated().to_string())
            .unwrap_or_else(|| panic!("{} not set aside: {rows:?}", e.id));
        assert_eq!(action, "test.event");
        let stored: Value = serde_json::from_str(event).unwrap();
        assert_eq!(stored["details"], e.details, "the whole event is kept");
        assert!(error.to_lowercase().contains("unique"), "{error}");
    }

    // verify still reports the corruption (and the set-aside events); globex is intact.
    let (ok, report, err) = verify_cli(&app, &["audit", "verify", "--tenant", "acme"]).await;
    assert!(!ok, "{report}");
    assert_eq!(report[0]["first_break"]["reason"], "head_mismatch", "{report}");
    assert_eq!(report[0]["first_break"]["seq"], head - 2, "{report}");
    assert_eq!(report[0]["set_aside"], 3, "{report}");
    assert!(err.contains("3 events set aside"), "{err}");
    let (ok, report, err) = verify_cli(&app, &["audit", "verify", "--tenant", "globex"]).await;
    assert!(ok, "{err} {report}");
    assert_eq!(report[0]["set_aside"], 0, "{report}");
}

/// (id, action, event JSON, error) of every set-aside event, read as the database owner.
async fn dead_letters(app: &TestApp) -> Vec<(String, String, String, String)> {
    use sqlx::Connection;
    match backend() {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&app.db.url).await.unwrap();
            sqlx::query_as("SELECT id, action, event, error FROM audit_dead_letters")
                .fetch_all(&mut c)
                .await
                .unwrap()
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
            sqlx::query_as("SELECT id::text, action, event, error FROM audit_dead_letters")
                .fetch_all(&mut c)
                .await
                .unwrap()
        }
    }
}

/// Runs SQL on the test database behind the application's back (as its owner).
pub(crate) async fn execute(app: &TestApp, sql: &str) {
    use sqlx::Connection;
    let n = match backend() {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&app.db.url).await.unwrap();
            sqlx::query(sql).execute(&mut c).await.unwrap().rows_affected()
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
            sqlx::query(sql).execute(&mut c).await.unwrap().rows_affected()
        }
    };
    assert_eq!(n, 1, "{sql}");
}
