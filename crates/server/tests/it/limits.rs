//! Rate limits shared through Redis by several replicas, monthly quotas, and what
//! happens when Redis is unreachable.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use cairn_server::config::{Config, RedisFailureMode, TierConfig};
use cairn_server::Server;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::{redis_prefix, redis_url, s, TestApp};
use crate::mcp_client::{call_tool, open_session, post};

/// Another Cairn process on the same database (and Redis), as a second replica.
struct Replica {
    app: TestApp,
}

async fn replica_of(primary: &TestApp) -> Replica {
    let mut config = primary.config.clone();
    config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let server = Server::build(config.clone()).await.unwrap();
    let state = server.state().clone();
    let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { server.serve(listener, std::future::pending()).await.unwrap() });
    // Same database, so the same API keys; the replica is reached through a TestApp
    // shell that only borrows the primary's client and token.
    let mut app = TestApp::shell(addr, state, primary.client.clone(), config);
    app.token = primary.token.clone();
    Replica { app }
}

fn with_tiers(config: &mut Config) {
    config.tiers = BTreeMap::from([
        (
            "trial".into(),
            TierConfig {
                burst_per_minute: 5,
                monthly_quota: None,
                expires_after_days: Some(14),
            },
        ),
        (
            "tiny".into(),
            TierConfig {
                burst_per_minute: 1000,
                monthly_quota: Some(3),
                expires_after_days: None,
            },
        ),
    ]);
    config.default_tier = "trial".into();
}

async fn key(app: &TestApp, tier: &str) -> String {
    let (status, key) = app
        .post(
            "/api/v1/tenants/acme/keys",
            json!({"name": tier, "scopes": ["mcp:tools"], "tier": tier}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    s(&key["secret"]).to_owned()
}

#[tokio::test]
async fn two_replicas_share_one_burst_limit_through_redis() {
    let primary = TestApp::start_with(|c| {
        with_tiers(c);
        c.redis_url = Some(redis_url());
        c.redis_key_prefix = redis_prefix();
    })
    .await;
    primary.tenant("acme").await;
    let secret = key(&primary, "trial").await;
    let second = replica_of(&primary).await;
    let (status, ready) = second.app.get("/health/ready").await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_eq!(ready["checks"]["redis"]["status"], "up");

    let a = open_session(&primary, "acme", Some(&secret)).await;
    let b = open_session(&second.app, "acme", Some(&secret)).await;
    let mut statuses = Vec::new();
    for i in 0..6 {
        let (app, session) = if i % 2 == 0 { (&primary, &a) } else { (&second.app, &b) };
        statuses.push(
            post(app, "acme", Some(&secret), Some(session), &call_tool(i, "whoami"))
                .await
                .status,
        );
    }
    assert_eq!(&statuses[..5], [StatusCode::OK; 5]);
    assert_eq!(
        statuses[5],
        StatusCode::TOO_MANY_REQUESTS,
        "the 6th call across both replicas is limited"
    );
    // The first replica is limited too: one shared allowance.
    let again = post(&primary, "acme", Some(&secret), Some(&a), &call_tool(7, "whoami")).await;
    assert_eq!(again.status, StatusCode::TOO_MANY_REQUESTS);
}

async fn quota_holds(shared: bool) {
    let prefix = redis_prefix();
    let primary = TestApp::start_with(|c| {
        with_tiers(c);
        if shared {
            c.redis_url = Some(redis_url());
            c.redis_key_prefix = prefix.clone();
        }
    })
    .await;
    primary.tenant("acme").await;
    let secret = key(&primary, "tiny").await;
    let session = open_session(&primary, "acme", Some(&secret)).await;
    for i in 0..3 {
        let reply = post(&primary, "acme", Some(&secret), Some(&session), &call_tool(i, "whoami")).await;
        assert_eq!(reply.status, StatusCode::OK, "call {i}");
    }
    let over = post(&primary, "acme", Some(&secret), Some(&session), &call_tool(3, "whoami")).await;
    assert_eq!(over.status, StatusCode::TOO_MANY_REQUESTS, "{}", over.text);
    assert_eq!(over.messages[0]["error"]["data"]["scope"], "monthly_quota");
    let retry: u64 = over.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry > 0 && retry <= 31 * 86_400);

    // A fresh replica (empty memory) still knows the quota is spent: it seeds from the
    // usage roll-ups (in process) or shares the counter (Redis).
    primary.state.usage.flush().await;
    let second = replica_of(&primary).await;
    let session = open_session(&second.app, "acme", Some(&secret)).await;
    let reply = post(
        &second.app,
        "acme",
        Some(&secret),
        Some(&session),
        &call_tool(9, "whoami"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS, "{}", reply.text);

    let events = primary.tenant_events("acme").await;
    assert!(events.iter().any(|e| e.action == "quota.exceeded"));
    // The call that used the quota up announced it once (80 % and 100 % fall on call 3).
    let announced: Vec<_> = events.iter().filter(|e| e.action == "quota.threshold").collect();
    assert_eq!(announced.len(), 1, "{announced:?}");
    assert_eq!(announced[0].details["percent"], 100);
    assert_eq!(announced[0].details["used"], 3);
    assert_eq!(announced[0].details["quota"], 3);
}

#[tokio::test]
async fn monthly_quota_in_process() {
    quota_holds(false).await;
}

#[tokio::test]
async fn monthly_quota_through_redis() {
    quota_holds(true).await;
}

async fn with_dead_redis(mode: RedisFailureMode) -> (TestApp, String, String) {
    // Nothing listens on port 1: Redis is "down".
    let app = TestApp::start_with(|c| {
        with_tiers(c);
        c.redis_url = Some("redis://127.0.0.1:1/0".into());
        c.redis_failure_mode = mode;
    })
    .await;
    app.tenant("acme").await;
    let secret = key(&app, "trial").await;
    let session = open_session(&app, "acme", Some(&secret)).await;
    (app, secret, session)
}

#[tokio::test]
async fn redis_down_fail_open_falls_back_to_local_limits() {
    let (app, secret, session) = with_dead_redis(RedisFailureMode::FailOpen).await;
    let (status, ready) = app.get("/health/ready").await;
    assert_eq!(status, StatusCode::OK, "failing open keeps the service ready: {ready}");
    assert_eq!(ready["checks"]["redis"]["status"], "down");
    let mut statuses = Vec::new();
    for i in 0..6 {
        statuses.push(
            post(&app, "acme", Some(&secret), Some(&session), &call_tool(i, "whoami"))
                .await
                .status,
        );
    }
    assert_eq!(&statuses[..5], [StatusCode::OK; 5]);
    assert_eq!(
        statuses[5],
        StatusCode::TOO_MANY_REQUESTS,
        "in-process limits still apply"
    );
}

#[tokio::test]
async fn redis_down_fail_closed_refuses_calls() {
    let (app, secret, session) = with_dead_redis(RedisFailureMode::FailClosed).await;
    let (status, ready) = app.get("/health/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    assert_eq!(ready["checks"]["redis"]["failure_mode"], "fail_closed");
    let reply = post(&app, "acme", Some(&secret), Some(&session), &call_tool(1, "whoami")).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{}", reply.text);
    let body: &Value = &reply.messages[0];
    assert_eq!(body["id"], 1);
    assert!(reply.headers.contains_key("retry-after"));
    // Non-billable methods are not rate limited and keep working.
    let list = post(
        &app,
        "acme",
        Some(&secret),
        Some(&session),
        &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    )
    .await;
    assert_eq!(list.status, StatusCode::OK);
}

async fn tool_limit_holds(shared: bool) {
    let primary = TestApp::start_with(|c| {
        with_tiers(c);
        c.tool_burst_per_minute = BTreeMap::from([("whoami".to_owned(), 2)]);
        if shared {
            c.redis_url = Some(redis_url());
            c.redis_key_prefix = redis_prefix();
        }
    })
    .await;
    primary.tenant("acme").await;
    let secret = key(&primary, "tiny").await;
    let session = open_session(&primary, "acme", Some(&secret)).await;
    for i in 0..2 {
        assert_eq!(
            post(&primary, "acme", Some(&secret), Some(&session), &call_tool(i, "whoami"))
                .await
                .status,
            StatusCode::OK
        );
    }
    let over = post(&primary, "acme", Some(&secret), Some(&session), &call_tool(2, "whoami")).await;
    assert_eq!(over.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(over.messages[0]["error"]["data"]["scope"], "tool");
    assert_eq!(over.headers["ratelimit-limit"], "2");
}

#[tokio::test]
async fn per_tool_limit_in_process() {
    tool_limit_holds(false).await;
}

#[tokio::test]
async fn per_tool_limit_through_redis() {
    tool_limit_holds(true).await;
}
