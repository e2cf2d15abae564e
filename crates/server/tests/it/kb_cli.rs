//! `cairn kb ingest` on a folder: files go in batches (one model call and one transaction
//! per batch), yet every file gets its own outcome, a bad file fails alone and nothing of
//! it is stored, and a second run finds everything unchanged.

use std::fmt::Write as _;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::cli::cairn;
use crate::common::{config_for, TestApp, TestDb};
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

#[tokio::test]
async fn a_folder_is_ingested_in_batches_with_one_outcome_per_file() {
    let owned = TestDb::create().await;
    let db = &owned;
    assert!(cairn(db, &["migrate"], None).status.success());
    assert!(
        cairn(db, &["tenant", "create", "--slug", "acme", "--name", "Acme"], None)
            .status
            .success()
    );
    write_folder(db.dir.path());
    let folder = db.dir.path().join("docs");
    let folder = folder.to_str().unwrap();

    let first = cairn(db, &["kb", "ingest", "--tenant", "acme", "--kb", "docs", folder], None);
    let err = String::from_utf8_lossy(&first.stderr);
    assert!(!first.status.success(), "two files are bad: {err}");
    assert!(
        err.contains(&format!("{} created, 0 replaced, 0 unchanged, 2 failed", FILES + 1)),
        "{err}"
    );
    assert!(
        err.contains("broken.md") && err.contains("empty.txt"),
        "each failure is named: {err}"
    );

    let again = cairn(db, &["kb", "ingest", "--tenant", "acme", "--kb", "docs", folder], None);
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains(&format!("0 created, 0 replaced, {} unchanged, 2 failed", FILES + 1)),
        "{err}"
    );

    // The server then serves what the CLI wrote.
    let config = config_for(&owned);
    let app = TestApp::start_on(owned, config).await;

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
    let (_, found) = search(
        &app,
        "acme",
        "docs",
        json!({"query": "widget number 137", "k": 1, "mode": "lexical"}),
    )
    .await;
    let top: &Value = &found["results"][0];
    assert_eq!(top["source_id"], "nested/topic-137.md", "{found}");
}
