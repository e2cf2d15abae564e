//! Documents built to break a parser: the nested HTML that used to abort the whole
//! process is refused at every door (REST JSON, multipart upload, the MCP tool, a signed
//! webhook's kb_ingest handler) and every tenant keeps being served; an extraction
//! worker killed in the middle of a document fails that document only.

use std::time::{Duration, Instant};

use cairn_core::webhook::standard::WebhookSecret;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::{s, TestApp};
use crate::kb::upload;
use crate::mcp_client::{open_session, post};
use crate::webhook_handlers::deliver;

/// The three shapes reported in issue 14 (each 2 500–50 000 levels deep once parsed).
fn hostile() -> Vec<(&'static str, String)> {
    vec![
        (
            "deep-div",
            format!("{}x{}", "<div>".repeat(2500), "</div>".repeat(2500)),
        ),
        ("unclosed-b-i", "<b><i>".repeat(50_000)),
        ("tables", "<table><tr><td>".repeat(3000)),
    ]
}

/// An ordinary HTML document is still ingested into `slug` (a new source id each time).
async fn still_serving(app: &TestApp, slug: &str, round: usize) {
    let (status, body) = app
        .post(
            &format!("/api/v1/tenants/{slug}/kb/default/documents"),
            json!({"source_id": format!("ok-{round}.html"), "content_type": "text/html",
                   "content": "<h1>Still here</h1><p>Every tenant is still served.</p>"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn hostile_html_is_refused_at_every_door_and_every_tenant_keeps_being_served() {
    let app = TestApp::start().await;
    app.tenant("acme").await;
    app.tenant("globex").await;
    let (status, key) = app
        .post(
            "/api/v1/tenants/acme/keys",
            json!({"name": "writer", "scopes": ["mcp:tools", "kb:write"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let key = s(&key["secret"]).to_owned();
    let session = open_session(&app, "acme", Some(&key)).await;
    let handlers = json!([{"event_type": "page.*", "action": "kb_ingest", "kb": "default",
        "source_id": "/data/id", "content": "/data/body", "content_type": "/data/type"}]);
    let (status, source) = app
        .post(
            "/api/v1/tenants/acme/webhook-sources",
            json!({"name": "cms", "scheme": "standard", "handlers": handlers}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{source}");
    let secret = WebhookSecret::parse(s(&source["secret"])).unwrap();

    for (round, (name, doc)) in hostile().into_iter().enumerate() {
        // REST, JSON body.
        let (status, body) = app
            .post(
                "/api/v1/tenants/acme/kb/default/documents",
                json!({"source_id": format!("{name}.html"), "content_type": "text/html", "content": doc}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{name}: {body}");
        assert_eq!(body["error"]["code"], "document_too_complex", "{name}: {body}");
        still_serving(&app, "globex", round * 4).await;

        // REST, multipart upload.
        let (status, body) = upload(&app, &format!("{name}.html"), "text/html", doc.as_bytes()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{name}: {body}");
        assert_eq!(body["error"]["code"], "document_too_complex", "{name}: {body}");
        still_serving(&app, "globex", round * 4 + 1).await;

        // The MCP tool: a tool error the model can read.
        let call = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
            "name": "ingest_document",
            "arguments": {"source_id": format!("{name}.html"), "content_type": "text/html", "content": doc}}});
        let reply = post(&app, "acme", Some(&key), Some(&session), &call).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        let result = &reply.result(3);
        assert_eq!(result["isError"], true, "{name}: {result}");
        assert!(
            result["content"][0]["text"]
                .as_str()
                .unwrap_or_default()
                .contains("document_too_complex"),
            "{name}: {result}"
        );
        still_serving(&app, "globex", round * 4 + 2).await;

        // A correctly signed webhook whose handler takes the content type from the payload.
        let event = json!({"type": "page.updated", "data": {"id": name, "type": "text/html", "body": doc}});
        let (status, got) = deliver(&app, &secret, &format!("msg_{name}"), &event).await;
        assert_eq!(status, StatusCode::OK, "{got}");
        assert_eq!(got["handled"]["status"], "failed", "{name}: {got}");
        assert_eq!(
            got["handled"]["result"]["error"], "document_too_complex",
            "{name}: {got}"
        );
        still_serving(&app, "globex", round * 4 + 3).await;
    }

    // Nothing of them was stored; the refusals are counted; the server is ready.
    let (status, docs) = app.get("/api/v1/tenants/acme/kb/default/documents").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(docs["data"].as_array().map(Vec::len), Some(0), "{docs}");
    let (status, ready) = app.get("/health/ready").await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_eq!(ready["checks"]["extraction"]["refused"], 12, "{ready}");
    assert_eq!(ready["checks"]["extraction"]["crashed"], 0, "{ready}");
}

/// Processes whose parent is this test process and whose command is the worker.
fn extract_workers() -> Vec<i32> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let ppid = status.lines().find_map(|l| l.strip_prefix("PPid:")).map(str::trim);
        let zombie = status.lines().any(|l| l.starts_with("State:") && l.contains('Z'));
        if ppid == Some(me.as_str()) && !zombie && String::from_utf8_lossy(&cmdline).contains("extract-worker") {
            found.push(pid);
        }
    }
    found
}

fn signal(pid: i32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

async fn extraction(app: &TestApp) -> Value {
    app.get("/health/ready").await.1["checks"]["extraction"].clone()
}

#[tokio::test]
async fn a_worker_killed_mid_document_fails_that_document_only() {
    let app = TestApp::start_with(|c| c.kb.extract.workers = 1).await;
    app.tenant("acme").await;
    let page = |n: usize| {
        json!({"source_id": format!("p{n}.html"), "content_type": "text/html",
                                 "content": format!("<h1>Page {n}</h1><p>Refunds take {n} days.</p>")})
    };
    let (status, body) = app.post("/api/v1/tenants/acme/kb/default/documents", page(1)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let workers = extract_workers();
    assert_eq!(
        workers.len(),
        1,
        "one worker after the first HTML document: {workers:?}"
    );
    let pid = workers[0];

    // Freeze the worker, hand it a document, and kill it while the document is inside.
    signal(pid, "-STOP");
    let doc = {
        let (client, url, token) = (
            app.client.clone(),
            app.url("/api/v1/tenants/acme/kb/default/documents"),
            app.token.clone(),
        );
        let body = page(2);
        tokio::spawn(async move { client.post(url).bearer_auth(token).json(&body).send().await })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while extraction(&app).await["in_flight"] != 1 {
        assert!(Instant::now() < deadline, "the document never reached the worker");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    signal(pid, "-KILL");
    let resp = doc.await.unwrap().unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "extraction_failed", "{body}");

    // That document only: the next one gets a new worker, the first is still there.
    let (status, body) = app.post("/api/v1/tenants/acme/kb/default/documents", page(3)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let stats = extraction(&app).await;
    assert_eq!(stats["crashed"], 1, "{stats}");
    assert_eq!(stats["workers_started"], 2, "{stats}");
    assert_eq!(stats["in_flight"], 0, "{stats}");
    let (_, docs) = app.get("/api/v1/tenants/acme/kb/default/documents").await;
    let mut ids: Vec<&str> = docs["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| s(&d["source_id"]))
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["p1.html", "p3.html"], "{docs}");
    assert!(!extract_workers().contains(&pid), "the killed worker was reaped");
}

#[tokio::test]
async fn a_document_past_the_time_limit_is_killed_with_its_worker() {
    let app = TestApp::start_with(|c| {
        c.kb.extract.workers = 1;
        c.kb.extract.timeout_secs = 1;
    })
    .await;
    app.tenant("acme").await;
    let page = |n: usize| {
        json!({"source_id": format!("t{n}.html"), "content_type": "text/html",
                                 "content": format!("<p>Page {n}</p>")})
    };
    let (status, body) = app.post("/api/v1/tenants/acme/kb/default/documents", page(1)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let pid = extract_workers()[0];
    // A worker that never answers stands for a document that never finishes.
    signal(pid, "-STOP");
    let (status, body) = app.post("/api/v1/tenants/acme/kb/default/documents", page(2)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "extraction_failed", "{body}");
    assert!(s(&body["error"]["message"]).contains("time"), "{body}");
    let (status, body) = app.post("/api/v1/tenants/acme/kb/default/documents", page(3)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let stats = extraction(&app).await;
    assert_eq!(
        (stats["timed_out"].clone(), stats["workers_started"].clone()),
        (json!(1), json!(2)),
        "{stats}"
    );
    assert!(
        !extract_workers().contains(&pid),
        "the stuck worker was killed and reaped"
    );
}

#[tokio::test]
async fn a_document_past_the_memory_ceiling_fails_alone() {
    let app = TestApp::start_with(|c| c.kb.extract.memory_mb = 128).await;
    app.tenant("acme").await;
    // 10 MB of unclosed paragraphs: a flat tree, but 5 million nodes take far more than
    // 128 MiB to build, so the worker's allocation fails and it dies.
    let bomb = json!({"source_id": "bomb.html", "content_type": "text/html", "content": "<p>x".repeat(2_500_000)});
    let (status, body) = app.post("/api/v1/tenants/acme/kb/default/documents", bomb).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "extraction_failed", "{body}");
    assert_eq!(extraction(&app).await["crashed"], 1);
    still_serving(&app, "acme", 0).await;
}
