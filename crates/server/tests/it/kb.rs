//! Knowledge base over REST: ingest, replace, delete, hybrid search with citations,
//! tenant isolation, refusals of bad input, encrypted bases.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{raw_dump, s, TestApp};

pub const BILLING: &str = "# Billing\n\nInvoices are issued on the first day of every month and are payable within \
    thirty days.\n\n## Refunds\n\nA customer who cancels within fourteen days of purchase receives a full refund \
    to the original payment method. Refunds take five business days to appear.\n\n## Currencies\n\nPrices are \
    shown in euros; card payments in other currencies are converted by the card issuer.\n";
pub const SECURITY: &str = "# Security\n\nAll data is encrypted at rest with AES-256-GCM.\n\n## Passwords\n\n\
    To reset a forgotten password, open the sign-in page, choose 'Forgot password' and follow the link sent \
    by e-mail. Reset links expire after one hour.\n\n## Sessions\n\nIdle sessions end after thirty minutes.\n";
pub const GARDEN: &str = "# Gardening\n\nTomatoes need six hours of sun a day. Water them at the base in the \
    morning, and stake the plants once they reach knee height.\n";

pub async fn ingest(app: &TestApp, slug: &str, kb: &str, source_id: &str, content: &str) -> (StatusCode, Value) {
    app.post(
        &format!("/api/v1/tenants/{slug}/kb/{kb}/documents"),
        json!({"source_id": source_id, "content_type": "text/markdown", "content": content, "tags": ["handbook"]}),
    )
    .await
}

pub async fn search(app: &TestApp, slug: &str, kb: &str, body: Value) -> (StatusCode, Value) {
    app.post(&format!("/api/v1/tenants/{slug}/kb/{kb}/search"), body).await
}

async fn seeded(slug: &str) -> TestApp {
    let app = TestApp::start().await;
    app.tenant(slug).await;
    for (id, text) in [
        ("billing.md", BILLING),
        ("security.md", SECURITY),
        ("garden.md", GARDEN),
    ] {
        let (status, body) = ingest(&app, slug, "default", id, text).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["outcome"], "created");
        assert!(body["chunks"].as_u64().unwrap() >= 1);
    }
    app
}

#[tokio::test]
async fn hybrid_search_finds_the_passage_with_its_citation() {
    let app = seeded("acme").await;
    let (status, found) = search(
        &app,
        "acme",
        "default",
        json!({"query": "how do I get my money back", "k": 3}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    let top = &found["results"][0];
    assert_eq!(top["source_id"], "billing.md", "{found}");
    assert_eq!(top["heading_path"], json!(["Billing", "Refunds"]), "{top}");
    assert!(s(&top["text"]).contains("full refund"));
    assert!(s(&top["snippet"]).len() <= 320);

    // Offsets point into the stored document text.
    let doc_id = s(&top["document_id"]);
    let (status, doc) = app
        .get(&format!("/api/v1/tenants/acme/kb/default/documents/{doc_id}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    let (start, end) = (
        top["start"].as_u64().unwrap() as usize,
        top["end"].as_u64().unwrap() as usize,
    );
    assert_eq!(doc["text"].as_str().unwrap()[start..end].trim(), s(&top["text"]).trim());

    // Each mode on its own, and the keyword-only query lexical search is for.
    for mode in ["lexical", "vector", "hybrid"] {
        let (status, found) = search(
            &app,
            "acme",
            "default",
            json!({"query": "reset forgotten password", "mode": mode}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{found}");
        assert_eq!(found["results"][0]["source_id"], "security.md", "{mode}: {found}");
    }
    // Filters: tags every document has, and a source restriction.
    let (_, found) = search(
        &app,
        "acme",
        "default",
        json!({"query": "refund", "source_ids": ["garden.md"], "tags": ["handbook"]}),
    )
    .await;
    let sources: Vec<&str> = found["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| s(&r["source_id"]))
        .collect();
    assert!(
        !sources.is_empty() && sources.iter().all(|s| *s == "garden.md"),
        "{found}"
    );
    let (_, found) = search(&app, "acme", "default", json!({"query": "refund", "tags": ["nope"]})).await;
    assert_eq!(found["results"], json!([]), "{found}");
}

#[tokio::test]
async fn reingest_skips_unchanged_content_and_replaces_changed_content() {
    let app = seeded("acme").await;
    let (_, again) = ingest(&app, "acme", "default", "garden.md", GARDEN).await;
    assert_eq!(again["outcome"], "unchanged", "{again}");
    let id = again["document"]["id"].clone();

    let changed = "# Gardening\n\nCucumbers climb a trellis and want daily watering in July.\n";
    let (status, replaced) = ingest(&app, "acme", "default", "garden.md", changed).await;
    assert_eq!(status, StatusCode::CREATED, "{replaced}");
    assert_eq!(replaced["outcome"], "replaced");
    assert_eq!(replaced["document"]["id"], id, "the document keeps its id");

    let (_, found) = search(
        &app,
        "acme",
        "default",
        json!({"query": "tomatoes sun stake", "mode": "lexical"}),
    )
    .await;
    assert_eq!(found["results"], json!([]), "old chunks are gone: {found}");
    let (_, found) = search(&app, "acme", "default", json!({"query": "cucumbers trellis"})).await;
    assert_eq!(found["results"][0]["source_id"], "garden.md");

    let (_, list) = app.get("/api/v1/tenants/acme/kb/default/documents").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 3);

    // Delete: gone from search and from the API.
    let path = format!("/api/v1/tenants/acme/kb/default/documents/{}", s(&id));
    let (status, _) = app.call(Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app.get(&path).await;
    assert_eq!(
        (status, s(&body["error"]["code"])),
        (StatusCode::NOT_FOUND, "document_not_found")
    );
    let (_, found) = search(&app, "acme", "default", json!({"query": "cucumbers trellis"})).await;
    assert!(found["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["source_id"] != "garden.md"));
}

#[tokio::test]
async fn a_tenant_never_sees_another_tenants_chunks() {
    let app = seeded("acme").await;
    app.tenant("globex").await;
    let (_, mine) = ingest(&app, "globex", "default", "billing.md", BILLING).await;
    let globex_doc = mine["document"]["id"].clone();
    for mode in ["hybrid", "lexical", "vector"] {
        let (status, found) = search(
            &app,
            "globex",
            "default",
            json!({"query": "refund invoices", "k": 50, "mode": mode}),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let results = found["results"].as_array().unwrap();
        assert!(!results.is_empty());
        assert!(
            results.iter().all(|r| r["document_id"] == globex_doc),
            "{mode}: {found}"
        );
    }
    // acme's document id is not reachable through globex's path.
    let (_, acme) = search(&app, "acme", "default", json!({"query": "refund"})).await;
    let acme_doc = s(&acme["results"][0]["document_id"]);
    assert_ne!(acme_doc, s(&globex_doc));
    let (status, _) = app
        .get(&format!("/api/v1/tenants/globex/kb/default/documents/{acme_doc}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

fn multipart(file_name: &str, content_type: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = "cairn-test-boundary-7f3a";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\n\
             Content-Type: {content_type}\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

pub(crate) async fn upload(app: &TestApp, name: &str, ty: &str, bytes: &[u8]) -> (StatusCode, Value) {
    let (ct, body) = multipart(name, ty, bytes);
    let resp = app
        .client
        .post(app.url("/api/v1/tenants/acme/kb/default/documents"))
        .bearer_auth(&app.token)
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn bad_input_is_refused_and_leaves_nothing_behind() {
    let app = seeded("acme").await;
    let code = |v: &Value| v["error"]["code"].as_str().unwrap_or_default().to_owned();

    let (status, body) = ingest(&app, "acme", "default", "empty.md", "  \n ").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "empty_document".into())
    );

    let huge = "a".repeat(50 * 1024 * 1024);
    let (status, body) = ingest(&app, "acme", "default", "huge.md", &huge).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large".into())
    );
    let (status, body) = upload(&app, "huge.md", "text/markdown", huge.as_bytes()).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large".into())
    );

    let (status, body) = upload(&app, "latin1.txt", "text/plain", b"caf\xe9 cr\xe8me \xff\xfe").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_encoding".into()),
        "{body}"
    );

    let (status, body) = app
        .post(
            "/api/v1/tenants/acme/kb/nope/documents",
            json!({"source_id": "x", "content": "hello"}),
        )
        .await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "kb_not_found".into()));
    let (status, body) = search(&app, "acme", "nope", json!({"query": "x"})).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "kb_not_found".into()));

    for k in [0, 10_000] {
        let (status, body) = search(&app, "acme", "default", json!({"query": "refund", "k": k})).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field".into()),
            "k={k}"
        );
    }
    let (status, body) = search(&app, "acme", "default", json!({"query": ""})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = app
        .post(
            "/api/v1/tenants/acme/kb/default/documents",
            json!({"source_id": "x.pdf", "content_type": "application/pdf", "content": "%PDF"}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type".into())
    );
    let (status, body) = app
        .post(
            "/api/v1/tenants/acme/kb/default/documents",
            json!({"source_id": "nul.md", "content": "a\u{0}b"}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_encoding".into()),
        "{body}"
    );

    // HTML: scripts and styles never reach the stored text or the index.
    let html = "<html><head><script>steal('token')</script><style>.x{}</style></head><body>\
                <h1>Holidays</h1><p>The office closes on public holidays.</p><script>evil()</script></body></html>";
    let (status, doc) = app
        .post(
            "/api/v1/tenants/acme/kb/default/documents",
            json!({"source_id": "holidays.html", "content_type": "text/html", "content": html}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{doc}");
    let (_, stored) = app
        .get(&format!(
            "/api/v1/tenants/acme/kb/default/documents/{}",
            s(&doc["document"]["id"])
        ))
        .await;
    let text = s(&stored["text"]);
    assert!(
        text.contains("# Holidays") && !text.contains("steal") && !text.contains("evil"),
        "{text}"
    );
    let (_, found) = search(
        &app,
        "acme",
        "default",
        json!({"query": "steal evil", "mode": "lexical"}),
    )
    .await;
    assert_eq!(found["results"], json!([]));

    // Only the three seeded documents and the HTML one exist: no half-ingested rows.
    let (_, list) = app.get("/api/v1/tenants/acme/kb/default/documents").await;
    let mut ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| s(&d["source_id"]))
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["billing.md", "garden.md", "holidays.html", "security.md"]);
}

#[tokio::test]
async fn an_encrypted_base_stores_no_clear_text_and_stays_searchable_by_meaning() {
    let app = TestApp::start().await;
    app.tenant("acme").await;
    let (status, kb) = app
        .post("/api/v1/tenants/acme/kb", json!({"name": "vault", "encrypted": true}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{kb}");
    assert_eq!(kb["encrypted"], true);
    let (status, body) = ingest(&app, "acme", "vault", "security.md", SECURITY).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let (_, found) = search(&app, "acme", "vault", json!({"query": "I forgot my password"})).await;
    assert_eq!(found["results"][0]["source_id"], "security.md", "{found}");
    assert!(s(&found["results"][0]["text"]).contains("Forgot password"));
    // No lexical index over ciphertext.
    let (_, found) = search(&app, "acme", "vault", json!({"query": "password", "mode": "lexical"})).await;
    assert_eq!(found["results"], json!([]));

    app.state.store.close().await;
    let dump = raw_dump(&app.db);
    let needle = b"Reset links expire after one hour";
    assert!(
        !dump.windows(needle.len()).any(|w| w == needle),
        "chunk text found in clear"
    );
}

#[tokio::test]
async fn bases_are_created_listed_and_deleted() {
    let app = TestApp::start().await;
    app.tenant("acme").await;
    let (status, list) = app.get("/api/v1/tenants/acme/kb").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["data"][0]["name"], "default", "every tenant has a default base");
    assert!(s(&list["data"][0]["model_id"]).starts_with("minishlab/potion-base-8M"));
    let (status, body) = app.post("/api/v1/tenants/acme/kb", json!({"name": "Bad Name"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, _) = app
        .post("/api/v1/tenants/acme/kb", json!({"name": "docs", "vectors": false}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = app.post("/api/v1/tenants/acme/kb", json!({"name": "docs"})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    ingest(&app, "acme", "docs", "garden.md", GARDEN).await;
    let (status, body) = search(&app, "acme", "docs", json!({"query": "tomatoes", "mode": "vector"})).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a base without vectors: {body}"
    );
    let (_, found) = search(&app, "acme", "docs", json!({"query": "tomatoes"})).await;
    assert_eq!(
        found["results"][0]["source_id"], "garden.md",
        "lexical works without a model"
    );
    let (status, _) = app.call(Method::DELETE, "/api/v1/tenants/acme/kb/docs", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = search(&app, "acme", "docs", json!({"query": "tomatoes"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn postgres_searches_through_hnsw_even_before_the_first_analyze() {
    let app = seeded("acme").await;
    let slug = cairn_core::tenant::Slug::parse("acme").unwrap();
    let tenant = app.state.store.get_tenant_by_slug(&slug).await.unwrap();
    let kb = cairn_server::service::kb::resolve_kb(&app.state, tenant.id, "default")
        .await
        .unwrap();
    let model = cairn_server::kb::embed::BuiltinEmbedder::shared().unwrap();
    let query = model.embed(&["refund".to_owned()]).unwrap().remove(0);
    let plan = app
        .state
        .store
        .kb_explain_nearest(tenant.id, kb.id, &query, 10)
        .await
        .unwrap();
    match crate::common::backend() {
        cairn_store::Backend::Postgres => {
            let plan = plan.unwrap();
            assert!(plan.contains("kb_chunks_hnsw_256"), "{plan}");
        }
        // SQLite has no planner path: its vector search is the in-memory exact scan.
        cairn_store::Backend::Sqlite => assert!(plan.is_none()),
    }
}
