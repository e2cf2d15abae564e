use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{s, TestApp};

#[tokio::test]
async fn tenant_lifecycle() {
    let app = TestApp::start().await;
    let created = app.tenant("acme").await;
    assert!(s(&created["id"]).starts_with("ten_"));
    assert_eq!(created["status"], "active");
    assert_eq!(created["plan"], "free");

    let (status, shown) = app.get("/api/v1/tenants/acme").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown, created);

    let (status, patched) = app
        .call(
            Method::PATCH,
            "/api/v1/tenants/acme",
            Some(json!({"name": "Acme Inc", "plan": "pro"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["name"], "Acme Inc");
    assert_eq!(patched["plan"], "pro");
    assert_eq!(patched["slug"], "acme");

    let (status, suspended) = app
        .call(
            Method::PATCH,
            "/api/v1/tenants/acme",
            Some(json!({"status": "suspended"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(suspended["status"], "suspended");
    assert_eq!(suspended["name"], "Acme Inc");

    let (status, body) = app.call(Method::DELETE, "/api/v1/tenants/acme", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = app.get("/api/v1/tenants/acme").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "tenant_not_found");
    let (status, _) = app.call(Method::DELETE, "/api/v1/tenants/acme", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn duplicate_slug_is_409_and_leaves_one_row() {
    let app = TestApp::start().await;
    app.tenant("acme").await;
    let (status, body) = app
        .post("/api/v1/tenants", json!({"slug": "acme", "name": "Other"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "tenant_slug_taken");
    let (_, list) = app.get("/api/v1/tenants").await;
    let rows = list["data"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["name"], "acme");
}

#[tokio::test]
async fn invalid_fields_are_422_and_create_nothing() {
    let app = TestApp::start().await;
    let cases = [
        json!({"slug": "ab", "name": "x"}),
        json!({"slug": "Acme", "name": "x"}),
        json!({"slug": "acme_corp", "name": "x"}),
        json!({"slug": "-acme", "name": "x"}),
        json!({"slug": "a".repeat(64), "name": "x"}),
        json!({"slug": "acme", "name": "   "}),
        json!({"slug": "acme", "name": "x", "plan": "Gold!"}),
        json!({"slug": "acme", "name": "x", "region": "EU WEST"}),
        json!({"slug": "acme"}),
        json!({"slug": 42, "name": "x"}),
        json!({"slug": "acme", "name": "x", "unexpected": true}),
    ];
    for case in cases {
        let (status, body) = app.post("/api/v1/tenants", case.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{case} -> {body}");
        assert_eq!(body["error"]["code"], "invalid_field", "{case}");
        assert!(!s(&body["error"]["message"]).is_empty());
    }
    let (status, body) = app.post("/api/v1/tenants", json!({"slug": "ab", "name": "x"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "slug");
    let (status, body) = app
        .call(
            Method::PATCH,
            "/api/v1/tenants/nope",
            Some(json!({"status": "deleted"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (_, list) = app.get("/api/v1/tenants").await;
    assert_eq!(list["data"], json!([]));
}

#[tokio::test]
async fn listing_pages_with_cursor() {
    let app = TestApp::start().await;
    for slug in ["t-05", "t-01", "t-04", "t-02", "t-03"] {
        app.tenant(slug).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/tenants?limit=2&cursor={c}"),
            None => "/api/v1/tenants?limit=2".to_string(),
        };
        let (status, page) = app.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let rows = page["data"].as_array().unwrap();
        assert!(rows.len() <= 2);
        seen.extend(rows.iter().map(|t| s(&t["slug"]).to_owned()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ["t-01", "t-02", "t-03", "t-04", "t-05"]);
    let (status, body) = app.get("/api/v1/tenants?limit=abc").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}
