//! Connected accounts against a real OAuth server on loopback: a second tenant's own
//! authorization server is the upstream provider.

use cairn_core::ids::{TenantId, UserId};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{raw_dump, s, TestApp};
use crate::mcp_client::{open_session, post};
use crate::oauth::{browser, consent, mcp_status, tenant_with_member};

async fn tool(app: &TestApp, key: &str, session: &str, name: &str, args: Value) -> Value {
    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": name, "arguments": args}});
    let reply = post(app, "acme", Some(key), Some(session), &call).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let result = reply.result(7);
    assert_ne!(result["isError"], true, "{result}");
    serde_json::from_str(s(&result["content"][0]["text"])).unwrap()
}

#[tokio::test]
async fn a_user_connects_an_upstream_account_and_tokens_refresh_once() {
    let app = TestApp::start_with(|c| c.upstream_allow_http_loopback = true).await;
    let alice = tenant_with_member(&app, "acme", "alice@example.com", "member").await;
    tenant_with_member(&app, "globex", "alice@example.com", "member").await;

    // The upstream: globex's authorization server, with a client for acme's callback.
    let (status, client) = app
        .post(
            "/api/v1/tenants/globex/oauth/apps",
            json!({"client_name": "Acme connector", "redirect_uris": [app.url("/t/acme/connections/callback")],
                "token_endpoint_auth_method": "client_secret_post", "grant_types": ["authorization_code", "refresh_token"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{client}");
    let cred = json!({"client_id": client["client_id"], "client_secret": client["client_secret"],
        "auth_url": app.url("/t/globex/oauth/authorize"), "token_url": app.url("/t/globex/oauth/token"),
        "scopes": ["mcp:tools"], "resource": app.url("/t/globex/mcp")});
    let (status, body) = app
        .call(Method::PUT, "/api/v1/tenants/acme/oauth-credentials/globex", Some(cred))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (_, key) = app
        .post(
            "/api/v1/tenants/acme/keys",
            json!({"name": "alice", "scopes": ["mcp:tools"], "user_id": alice}),
        )
        .await;
    let key = s(&key["secret"]).to_owned();
    let session = open_session(&app, "acme", Some(&key)).await;
    let link = tool(&app, &key, &session, "connect_account", json!({"provider": "globex"})).await;
    let url = url::Url::parse(s(&link["authorization_url"])).unwrap();
    let params: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let back = consent(&app, "globex", &params, "alice@example.com").await;
    assert!(
        back.as_str().starts_with(&app.url("/t/acme/connections/callback")),
        "{back}"
    );
    let landed = browser().get(back.as_str()).send().await.unwrap();
    assert_eq!(landed.status(), StatusCode::OK, "{}", landed.text().await.unwrap());

    let listed = tool(&app, &key, &session, "connections", json!({})).await;
    assert_eq!(listed["connections"][0]["provider"], "globex");
    assert_eq!(listed["connections"][0]["status"], "active");

    let (_, t) = app.get("/api/v1/tenants/acme").await;
    let acme = TenantId::parse("id", s(&t["id"])).unwrap();
    let user = UserId::parse("id", &alice).unwrap();
    let token = cairn_server::connections::access_token(&app.state, acme, user, "globex")
        .await
        .unwrap();
    assert_eq!(
        mcp_status(&app, "globex", &token).await,
        StatusCode::OK,
        "the upstream token works upstream"
    );
    let dump = raw_dump(&app.db);
    assert!(
        !dump.windows(token.len()).any(|w| w == token.as_bytes()),
        "upstream token in clear at rest"
    );

    // 50 callers at once need the (now expiring) token: one refresh upstream.
    let id = cairn_store::Store::connection_id(user, "globex");
    app.state.store.expire_connection(acme, &id).await.unwrap();
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let state = app.state.clone();
        calls.spawn(async move { cairn_server::connections::access_token(&state, acme, user, "globex").await });
    }
    let tokens: Vec<_> = calls.join_all().await;
    let first = tokens[0].as_ref().unwrap().to_string();
    assert_ne!(first, *token, "refreshed");
    assert!(
        tokens.iter().all(|t| t.as_ref().is_ok_and(|t| **t == first)),
        "everyone got the one new token"
    );
    let refreshes = app
        .tenant_events("globex")
        .await
        .iter()
        .filter(|e| e.action == "oauth.token_refreshed")
        .count();
    assert_eq!(refreshes, 1, "exactly one refresh at the upstream");

    // The upstream revokes everything: the next refresh fails and asks for consent again.
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/tenants/globex/oauth/apps/{}", s(&client["client_id"])),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    app.state.store.expire_connection(acme, &id).await.unwrap();
    let err = cairn_server::connections::access_token(&app.state, acme, user, "globex")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("consent again"), "{err}");
    let listed = tool(&app, &key, &session, "connections", json!({})).await;
    assert_eq!(listed["connections"][0]["status"], "needs_reconsent");
    let events = app.tenant_events("acme").await;
    for action in [
        "connection.connected",
        "connection.refreshed",
        "connection.refresh_failed",
    ] {
        assert!(events.iter().any(|e| e.action == action), "missing {action}");
    }
}
