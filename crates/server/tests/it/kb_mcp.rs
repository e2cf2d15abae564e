//! The knowledge base as an MCP client sees it: tools, document resources, the prompt.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::{s, TestApp};
use crate::kb::{ingest, BILLING, GARDEN, SECURITY};
use crate::mcp_client::{open_session, post};

async fn key(app: &TestApp, scopes: &[&str]) -> String {
    let (status, body) = app
        .post(
            "/api/v1/tenants/acme/keys",
            json!({"name": "assistant", "scopes": scopes}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    s(&body["secret"]).to_owned()
}

async fn rpc(app: &TestApp, key: &str, session: &str, method: &str, params: Value) -> Value {
    let reply = post(
        app,
        "acme",
        Some(key),
        Some(session),
        &json!({"jsonrpc": "2.0", "id": 9, "method": method, "params": params}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.response(9).cloned().unwrap_or(Value::Null)
}

async fn tool(app: &TestApp, key: &str, session: &str, name: &str, args: Value) -> Value {
    let r = rpc(
        app,
        key,
        session,
        "tools/call",
        json!({"name": name, "arguments": args}),
    )
    .await;
    r["result"].clone()
}

#[tokio::test]
async fn an_assistant_searches_reads_and_cites_over_mcp() {
    let app = TestApp::start().await;
    app.tenant("acme").await;
    for (id, text) in [
        ("billing.md", BILLING),
        ("security.md", SECURITY),
        ("garden.md", GARDEN),
    ] {
        ingest(&app, "acme", "default", id, text).await;
    }
    let key = key(&app, &["mcp:tools", "mcp:resources", "mcp:prompts"]).await;
    let session = open_session(&app, "acme", Some(&key)).await;

    let tools = rpc(&app, &key, &session, "tools/list", json!({})).await;
    let names: Vec<&str> = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| s(&t["name"]))
        .collect();
    for t in ["search_knowledge", "get_document", "ingest_document"] {
        assert!(names.contains(&t), "{names:?}");
    }

    let found = tool(
        &app,
        &key,
        &session,
        "search_knowledge",
        json!({"query": "when do I get a refund?", "k": 2}),
    )
    .await;
    assert_ne!(found["isError"], true, "{found}");
    let top = &found["structuredContent"]["results"][0];
    assert_eq!(top["source_id"], "billing.md", "{found}");
    assert_eq!(top["heading_path"], json!(["Billing", "Refunds"]));
    assert!(top["start"].is_number() && top["end"].is_number() && top["document_id"].is_string());
    let text = s(&found["content"][0]["text"]);
    assert!(text.contains("[1] Billing › Refunds (source: billing.md"), "{text}");

    // Bad arguments are tool errors the model can read, not protocol failures.
    for args in [
        json!({"query": "x", "k": 0}),
        json!({"query": "x", "k": 10000}),
        json!({"query": "x", "kb": "nope"}),
    ] {
        let r = tool(&app, &key, &session, "search_knowledge", args.clone()).await;
        assert_eq!(r["isError"], true, "{args}: {r}");
    }

    let doc_id = s(&top["document_id"]).to_owned();
    let doc = tool(&app, &key, &session, "get_document", json!({"document_id": doc_id})).await;
    assert!(s(&doc["content"][0]["text"]).contains("Invoices are issued"), "{doc}");

    // Writing needs kb:write.
    let denied = tool(
        &app,
        &key,
        &session,
        "ingest_document",
        json!({"source_id": "x.md", "content": "# X\n\nsomething"}),
    )
    .await;
    assert_eq!(denied["isError"], true);
    assert!(s(&denied["content"][0]["text"]).contains("kb:write"));

    // Documents are resources, readable through the template's URI.
    let listed = rpc(&app, &key, &session, "resources/list", json!({})).await;
    let uri = format!("cairn://kb/default/documents/{doc_id}");
    assert!(
        listed["result"]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["uri"] == json!(uri)),
        "{listed}"
    );
    let templates = rpc(&app, &key, &session, "resources/templates/list", json!({})).await;
    assert!(templates.to_string().contains("cairn://kb/{kb}/documents/{id}"));
    let read = rpc(&app, &key, &session, "resources/read", json!({"uri": uri})).await;
    assert!(
        s(&read["result"]["contents"][0]["text"]).contains("# Billing"),
        "{read}"
    );
    let missing = rpc(
        &app,
        &key,
        &session,
        "resources/read",
        json!({"uri": "cairn://kb/default/documents/doc_00000000000000000000000000000000"}),
    )
    .await;
    assert!(missing.get("error").is_some(), "{missing}");

    let prompt = rpc(
        &app,
        &key,
        &session,
        "prompts/get",
        json!({"name": "answer_with_sources", "arguments": {"question": "How long are reset links valid?"}}),
    )
    .await;
    let text = s(&prompt["result"]["messages"][0]["content"]["text"]);
    assert!(
        text.contains("Reset links expire after one hour") && text.contains("Question: How long"),
        "{text}"
    );
}

#[tokio::test]
async fn a_kb_write_key_ingests_through_the_tool() {
    let app = TestApp::start().await;
    app.tenant("acme").await;
    let key = key(&app, &["mcp:tools", "kb:write"]).await;
    let session = open_session(&app, "acme", Some(&key)).await;
    let done = tool(
        &app,
        &key,
        &session,
        "ingest_document",
        json!({"source_id": "faq.md", "content": GARDEN, "tags": ["faq"]}),
    )
    .await;
    assert_ne!(done["isError"], true, "{done}");
    assert_eq!(done["structuredContent"]["outcome"], "created");
    let empty = tool(
        &app,
        &key,
        &session,
        "ingest_document",
        json!({"source_id": "e.md", "content": " "}),
    )
    .await;
    assert_eq!(empty["isError"], true);
    assert!(s(&empty["content"][0]["text"]).contains("empty_document"), "{empty}");
    let found = tool(
        &app,
        &key,
        &session,
        "search_knowledge",
        json!({"query": "tomato plants", "tags": ["faq"]}),
    )
    .await;
    assert_eq!(
        found["structuredContent"]["results"][0]["source_id"], "faq.md",
        "{found}"
    );
    let events = app.tenant_events("acme").await;
    assert!(events.iter().any(|e| e.action == "kb.document_ingested"), "audited");
}
