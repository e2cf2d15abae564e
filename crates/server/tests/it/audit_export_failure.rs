//! An export that fails part-way never leaves something that looks like a complete
//! export. The failure is real: one stored event on the export's second page holds a
//! number the server cannot read back (`1e400` overflows a double), so the store errors
//! after the first 1 000 events have already been written out.

use cairn_core::audit::{Actor, AuditEvent, Outcome};
use reqwest::StatusCode;
use serde_json::json;

use crate::audit_chain::execute;
use crate::cli::cairn_at;
use crate::common::{s, TestApp};

#[tokio::test]
async fn an_export_failing_part_way_leaves_no_complete_looking_output() {
    let app = TestApp::start().await;
    let acme = s(&app.tenant("acme").await["id"]).parse().unwrap();
    let start = chrono::Utc::now() - chrono::Duration::hours(2);
    let events: Vec<AuditEvent> = (0..2_500)
        .map(|i| {
            let mut e = AuditEvent::new(Actor::System, "test.bulk", Outcome::Success)
                .tenant(acme)
                .details(json!({ "i": i }));
            e.occurred_at = start + chrono::Duration::seconds(i);
            e
        })
        .collect();
    app.state.store.insert_audit_events(&events).await.unwrap();
    let poisoned = events[1_500].id.as_uuid().hyphenated().to_string();
    execute(
        &app,
        &format!("UPDATE audit_events SET details = '{{\"i\": 1e400}}' WHERE id = '{poisoned}'"),
    )
    .await;
    app.state.audit.flush().await;

    // The CLI: the file of that name keeps what it held, and no temporary file is left.
    let dir = app.db.dir.path().to_owned();
    let file = dir.join("trail.jsonl");
    std::fs::write(&file, "an earlier export\n").unwrap();
    let run = |args: Vec<String>| {
        let (url, dir) = (app.db.url.clone(), dir.clone());
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            cairn_at(&url, &dir, &args, None)
        })
    };
    let to_file = [
        "audit",
        "export",
        "--tenant",
        "acme",
        "--output",
        file.to_str().unwrap(),
    ];
    let out = run(to_file.iter().map(|a| (*a).to_owned()).collect()).await.unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("events written"));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "an earlier export\n");
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("trail"))
        .collect();
    assert_eq!(leftovers, ["trail.jsonl"]);
    // To standard output the first page is already out: the exit status says it failed.
    let out = run(["audit", "export", "--tenant", "acme"].map(str::to_owned).to_vec())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let lines = String::from_utf8_lossy(&out.stdout).lines().count();
    assert!((1_000..2_500).contains(&lines), "{lines} lines before the failure");

    // HTTP: the download starts (200), then ends in a broken transfer, not a clean end.
    let mut resp = app
        .client
        .get(app.url("/api/v1/tenants/acme/audit/export"))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut received = 0usize;
    let ended = loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => received += chunk.len(),
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    assert!(ended.is_err(), "the transfer ended cleanly after {received} bytes");
    assert!(received > 0, "the first page was sent before the failure");
}
