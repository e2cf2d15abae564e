//! The `cairn` binary, run as a user would, against the test database.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::common::{s, TestApp, TestDb};

pub fn cairn(db: &TestDb, args: &[&str], stdin: Option<&str>) -> Output {
    cairn_at(&db.url, db.dir.path(), args, stdin)
}

/// The binary against database `url`, with the data folder under `dir`.
pub fn cairn_at(url: &str, dir: &std::path::Path, args: &[&str], stdin: Option<&str>) -> Output {
    // The server's data folder: same master key and pepper, as on a real host.
    let data_dir = dir.join("data");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
    cmd.args(["--database-url", url, "--data-dir", data_dir.to_str().unwrap()])
        .args(args)
        .env_remove("DATABASE_URL")
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn ok_json(out: &Output) -> Value {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[tokio::test]
async fn cli_manages_tenants_users_and_members() {
    let db = TestDb::create().await;
    let migrate = cairn(&db, &["migrate"], None);
    assert!(migrate.status.success(), "{}", String::from_utf8_lossy(&migrate.stderr));
    let again = cairn(&db, &["migrate"], None);
    assert!(String::from_utf8_lossy(&again.stdout).contains("none pending"));

    let tenant = ok_json(&cairn(
        &db,
        &["tenant", "create", "--slug", "acme", "--name", "Acme"],
        None,
    ));
    assert_eq!(tenant["slug"], "acme");
    let user = ok_json(&cairn(
        &db,
        &[
            "user",
            "create",
            "--email",
            "ada@example.com",
            "--display-name",
            "Ada",
            "--password-stdin",
        ],
        Some("correct horse battery\n"),
    ));
    assert_eq!(user["has_password"], true);
    let uid = s(&user["id"]);
    let member = ok_json(&cairn(
        &db,
        &["member", "add", "--tenant", "acme", "--user", uid, "--role", "admin"],
        None,
    ));
    assert_eq!(member["role"], "admin");
    let list = ok_json(&cairn(&db, &["tenant", "list", "--user", uid, "--json"], None));
    assert_eq!(list["data"][0]["slug"], "acme");
    assert_eq!(list["data"][0]["role"], "admin");
    let table = cairn(&db, &["tenant", "list"], None);
    assert!(String::from_utf8_lossy(&table.stdout).contains("acme"));
    let shown = ok_json(&cairn(&db, &["tenant", "show", "acme"], None));
    assert_eq!(shown["id"], tenant["id"]);

    let dup = cairn(&db, &["tenant", "create", "--slug", "acme", "--name", "Again"], None);
    assert_eq!(dup.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&dup.stderr).contains("tenant_slug_taken"));
    let bad = cairn(&db, &["tenant", "create", "--slug", "A", "--name", "x"], None);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid_field"));
    let missing = cairn(&db, &["tenant", "show", "nope"], None);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("tenant_not_found"));
}

#[tokio::test]
async fn cli_token_authenticates_against_the_server() {
    let app = TestApp::start().await;
    let out = cairn(&app.db, &["operator", "token", "create", "--name", "laptop"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("cairn_op_"));
    let resp = app
        .client
        .get(app.url("/api/v1/tenants"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn bad_configuration_is_reported_clearly() {
    let db = TestDb::create().await;
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["--database-url", "mysql://nope", "migrate"])
        .current_dir(db.dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("database_url"));
}

#[tokio::test]
async fn mcp_over_stdio_serves_the_tenant_tools() {
    let db = TestDb::create().await;
    ok_json(&cairn(
        &db,
        &["tenant", "create", "--slug", "acme", "--name", "Acme"],
        None,
    ));
    let requests = [
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"whoami","arguments":{}}}"#,
    ];
    let input = requests.join("\n") + "\n";
    let out = cairn(&db, &["mcp", "--tenant", "acme"], Some(&input));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let replies: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let by_id = |id: i64| {
        replies
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("no reply {id}: {replies:?}"))
    };
    assert_eq!(by_id(1)["result"]["serverInfo"]["name"], "cairn");
    assert_eq!(by_id(2)["result"]["tools"][0]["name"], "whoami");
    let info: Value = serde_json::from_str(s(&by_id(3)["result"]["content"][0]["text"])).unwrap();
    assert_eq!(info["tenant"]["slug"], "acme");
    assert!(info["key"].is_null(), "stdio runs with local trust, no key");
    let unknown = cairn(&db, &["mcp", "--tenant", "nope"], Some(""));
    assert!(!unknown.status.success());
}
