//! Secrets never reach the log.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::json;
use tracing_subscriber::fmt::MakeWriter;

use crate::common::{s, TestApp};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn tokens_and_passwords_are_not_logged() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_env_filter("trace")
        .with_writer(capture.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // set_default is per-thread: run everything on this thread.
    let app = TestApp::start().await;
    let password = "pa55word-that-must-not-leak";
    let (status, user) = app
        .post(
            "/api/v1/users",
            json!({"email": "ada@example.com", "display_name": "Ada", "password": password}),
        )
        .await;
    assert_eq!(status, 201);
    let resp = app
        .client
        .get(app.url("/api/v1/tenants"))
        .bearer_auth("cairn_op_not-a-real-token-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    app.post("/api/v1/tenants", json!({"slug": "acme", "name": "Acme"}))
        .await;
    app.state.audit.flush().await;

    let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("request done"),
        "request lines are logged: {}",
        &text[..text.len().min(500)]
    );
    assert!(
        text.contains(s(&user["id"])) || text.contains("/api/v1/users"),
        "log has useful context"
    );
    for secret in [
        app.token.as_str(),
        password,
        "cairn_op_not-a-real-token-123",
        "$argon2id$",
    ] {
        assert!(!text.contains(secret), "log contains a secret: {secret}");
    }
}
