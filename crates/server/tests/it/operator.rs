use reqwest::StatusCode;
use serde_json::json;

use crate::common::{config_for, s, TestApp};

#[tokio::test]
async fn first_start_writes_a_private_token_file_once() {
    let app = TestApp::start().await;
    assert!(app.token.starts_with("cairn_op_"));
    let path = app.data_dir().join("operator-token");
    let on_disk = std::fs::read_to_string(&path).unwrap();
    assert_eq!(on_disk.trim(), app.token);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "token file mode {mode:o}");
    }
    let (status, _) = app.get("/api/v1/tenants").await;
    assert_eq!(status, StatusCode::OK);

    // A restart on the same database mints nothing new and the old token still works.
    let token = app.token.clone();
    let db = app.stop().await;
    let config = config_for(&db);
    let mut again = TestApp::start_on(db, config).await;
    assert!(again.token.is_empty(), "no second bootstrap token");
    again.token = token;
    let (status, _) = again.get("/api/v1/tenants").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn operators_can_mint_more_tokens() {
    let app = TestApp::start().await;
    let (status, body) = app.post("/api/v1/operator/tokens", json!({"name": "ci"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let second = s(&body["token"]).to_owned();
    assert!(second.starts_with("cairn_op_") && second != app.token);
    let resp = app
        .client
        .get(app.url("/api/v1/tenants"))
        .bearer_auth(&second)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let (status, _) = app.post("/api/v1/operator/tokens", json!({"name": ""})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}
