use reqwest::StatusCode;
use serde_json::json;

use crate::common::{s, TestApp};

#[tokio::test]
async fn create_and_get_user() {
    let app = TestApp::start().await;
    let (status, user) = app
        .post(
            "/api/v1/users",
            json!({"email": " Ada@Example.COM ", "display_name": "Ada Lovelace", "password": "analytical engine"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    assert!(s(&user["id"]).starts_with("usr_"));
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["has_password"], true);
    let text = user.to_string();
    assert!(!text.contains("analytical") && !text.contains("argon2"), "{text}");

    let (status, fetched) = app.get(&format!("/api/v1/users/{}", s(&user["id"]))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched, user);

    let (status, body) = app.get("/api/v1/users/usr_00000000000000000000000000000000").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "user_not_found");
    let (status, _) = app.get("/api/v1/users/not-an-id").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn duplicate_email_is_case_insensitive_409() {
    let app = TestApp::start().await;
    app.user("ada@example.com").await;
    let (status, body) = app
        .post(
            "/api/v1/users",
            json!({"email": "ADA@example.com", "display_name": "Other"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "email_taken");
    let (_, list) = app.get("/api/v1/users").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn invalid_user_fields_are_422() {
    let app = TestApp::start().await;
    for case in [
        json!({"email": "not-an-email", "display_name": "x"}),
        json!({"email": "a@b.co", "display_name": ""}),
        json!({"email": "a@b.co", "display_name": "x", "password": "short"}),
        json!({"email": "a@b.co", "display_name": "line\nbreak"}),
        json!({"display_name": "x"}),
    ] {
        let (status, body) = app.post("/api/v1/users", case.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{case} -> {body}");
    }
    let (_, list) = app.get("/api/v1/users").await;
    assert_eq!(list["data"], json!([]));
}
