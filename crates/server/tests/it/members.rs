use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{s, TestApp};

#[tokio::test]
async fn membership_lifecycle_and_tenants_for_user() {
    let app = TestApp::start().await;
    let acme = app.tenant("acme").await;
    app.tenant("globex").await;
    app.tenant("initech").await;
    let ada = app.user("ada@example.com").await;
    let ada_id = s(&ada["id"]);

    let (status, member) = app
        .post(
            "/api/v1/tenants/acme/members",
            json!({"user_id": ada_id, "role": "admin"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{member}");
    assert_eq!(member["role"], "admin");
    assert_eq!(member["email"], "ada@example.com");
    let (status, _) = app
        .post(
            "/api/v1/tenants/initech/members",
            json!({"user_id": ada_id, "role": "member"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, body) = app
        .post(
            "/api/v1/tenants/acme/members",
            json!({"user_id": ada_id, "role": "owner"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "membership_exists");

    let (status, list) = app.get(&format!("/api/v1/tenants?user_id={ada_id}")).await;
    assert_eq!(status, StatusCode::OK);
    let slugs: Vec<_> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (s(&t["slug"]), s(&t["role"])))
        .collect();
    assert_eq!(slugs, [("acme", "admin"), ("initech", "member")]);
    let (_, same) = app.get(&format!("/api/v1/users/{ada_id}/tenants")).await;
    assert_eq!(same["data"], list["data"]);
    assert_eq!(same["data"][0]["id"], acme["id"]);

    let (_, members) = app.get("/api/v1/tenants/acme/members").await;
    assert_eq!(members["data"].as_array().unwrap().len(), 1);
    let (_, members) = app.get("/api/v1/tenants/globex/members").await;
    assert_eq!(members["data"], json!([]));

    let (status, _) = app
        .call(Method::DELETE, &format!("/api/v1/tenants/acme/members/{ada_id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app
        .call(Method::DELETE, &format!("/api/v1/tenants/acme/members/{ada_id}"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "membership_not_found");
    let (status, _) = app
        .call(
            Method::DELETE,
            "/api/v1/tenants/initech/members",
            Some(json!({"user_id": ada_id})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, list) = app.get(&format!("/api/v1/tenants?user_id={ada_id}")).await;
    assert_eq!(list["data"], json!([]));
}

#[tokio::test]
async fn membership_errors() {
    let app = TestApp::start().await;
    app.tenant("acme").await;
    let ada = app.user("ada@example.com").await;
    let ghost = "usr_0190aaaaaaaa7aaa8aaaaaaaaaaaaaaa";

    let (status, body) = app
        .post(
            "/api/v1/tenants/acme/members",
            json!({"user_id": ghost, "role": "admin"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "user_not_found");
    let (status, body) = app
        .post(
            "/api/v1/tenants/nope/members",
            json!({"user_id": s(&ada["id"]), "role": "admin"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "tenant_not_found");
    let (status, body) = app
        .post(
            "/api/v1/tenants/acme/members",
            json!({"user_id": s(&ada["id"]), "role": "root"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "role");
    let (status, _) = app
        .post(
            "/api/v1/tenants/acme/members",
            json!({"user_id": "ten_123", "role": "admin"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, body) = app.get(&format!("/api/v1/tenants?user_id={ghost}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (_, members) = app.get("/api/v1/tenants/acme/members").await;
    assert_eq!(members["data"], json!([]));
}

#[tokio::test]
async fn deleting_a_tenant_removes_its_memberships_not_its_users() {
    let app = TestApp::start().await;
    app.tenant("acme").await;
    let ada = app.user("ada@example.com").await;
    let ada_id = s(&ada["id"]);
    app.post(
        "/api/v1/tenants/acme/members",
        json!({"user_id": ada_id, "role": "owner"}),
    )
    .await;
    let (status, _) = app.call(Method::DELETE, "/api/v1/tenants/acme", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.get(&format!("/api/v1/users/{ada_id}")).await;
    assert_eq!(status, StatusCode::OK);
    let (_, list) = app.get(&format!("/api/v1/users/{ada_id}/tenants")).await;
    assert_eq!(list["data"], json!([]));
}
