//! `cairn kb ingest` on a folder: files go in batches (one model call and one transaction
//! per batch), yet every file gets its own outcome, a bad file fails alone and nothing of
//! it is stored, and a second run finds everything unchanged.

use std::fmt::Write as _;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::cli::cairn_at;
use crate::common::TestApp;
use crate::kb::search;

/// More files than one batch holds, so the folder is ingested in several.
const FILES: usize = 150;

fn write_folder(dir: &std::path::Path) {
    let docs = dir.join("docs");
    std::fs::create_dir_all(docs.join("nested")).unwrap();
    for i in 0..FILES {
        let mut text = format!("# Topic {i}\n\n");
        for p in 0..4 {
            writeln!(
                text,
                "## Part {p}\n\nParagraph {p} of topic {i} describes widget number {i} and its part {p} in detail.\n"
            )
            .unwrap();
        }
        let folder = if i % 2 == 0 { docs.clone() } else { docs.join("nested") };
        std::fs::write(folder.join(format!("topic-{i:03}.md")), text).unwrap();
    }
    std::fs::write(docs.join("refunds.md"), crate::kb::BILLING).unwrap();
    // Two bad files in the middle of a batch: each fails alone.
    std::fs::write(docs.join("broken.md"), b"# Broken\n\nnot \xff\xfe utf-8\n").unwrap();
    std::fs::write(docs.join("empty.txt"), "   \n").unwrap();
}

/// Runs `cairn kb ingest` off the runtime thread: the test's server shares this
/// runtime, and a blocking wait here would freeze it mid-transaction (holding SQLite's
/// write lock while the CLI waits for it).
async fn ingest_folder(app: &TestApp, folder: &str) -> std::process::Output {
    let (url, dir) = (app.db.url.clone(), app.db.dir.path().to_owned());
    let folder = folder.to_owned();
    tokio::task::spawn_blocking(move || {
        cairn_at(
            &url,
            &dir,
            &["kb", "ingest", "--tenant", "acme", "--kb", "docs", &folder],
            None,
        )
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_folder_is_ingested_in_batches_with_one_outcome_per_file() {
    // The server runs while the CLI ingests into the same database, as on a real host.
    let app = TestApp::start().await;
    app.tenant("acme").await;
    write_folder(app.db.dir.path());
    let folder = app.db.dir.path().join("docs").to_str().unwrap().to_owned();

    let first = ingest_folder(&app, &folder).await;
    let err = String::from_utf8_lossy(&first.stderr);
    assert!(!first.status.success(), "two files are bad: {err}");
    let created = format!("{} created, 0 replaced, 0 unchanged, 2 failed", FILES + 1);
    assert!(err.contains(&created), "{err}");
    assert!(
        err.contains("broken.md") && err.contains("empty.txt"),
        "each failure is named: {err}"
    );

    let again = ingest_folder(&app, &folder).await;
    let err = String::from_utf8_lossy(&again.stderr);
    let unchanged = format!("0 created, 0 replaced, {} unchanged, 2 failed", FILES + 1);
    assert!(err.contains(&unchanged), "{err}");

    // The server serves what the CLI wrote.
    let (status, docs) = app.get("/api/v1/tenants/acme/kb/docs/documents?limit=1000").await;
    assert_eq!(status, StatusCode::OK, "{docs}");
    let docs = docs["data"].as_array().unwrap();
    assert_eq!(docs.len(), FILES + 1, "only the good files are stored");
    assert!(docs
        .iter()
        .all(|d| d["source_id"] != "broken.md" && d["source_id"] != "empty.txt"));
    assert!(
        docs.iter().any(|d| d["source_id"] == "nested/topic-001.md"),
        "source ids are relative paths"
    );
    let chunks: u64 = docs.iter().map(|d| d["chunk_count"].as_u64().unwrap()).sum();
    assert!(chunks >= FILES as u64, "{chunks}");

    // Vectors and text from the batched write are searchable and belong to the right file.
    let (status, found) = search(
        &app,
        "acme",
        "docs",
        json!({"query": "how do I get my money back", "k": 3}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["results"][0]["source_id"], "refunds.md", "{found}");
    let query = json!({"query": "widget number 137", "k": 1, "mode": "lexical"});
    let (_, found) = search(&app, "acme", "docs", query).await;
    let top: &Value = &found["results"][0];
    assert_eq!(top["source_id"], "nested/topic-137.md", "{found}");
}
