//! A tenant admin cannot reach another tenant's users: every route that takes a user id
//! or an e-mail answers the same for bravo's owner as for nobody, and people join by
//! invitation, signing in with their own account.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::audit_chain::execute;
use crate::common::{s, TestApp};
use crate::idp::{claims, serve_jwks, Key, AUDIENCE, ISSUER};
use crate::mcp_client::post;

const PASSWORD: &str = "bravo owner's long password";
const BOB: &str = "bob.secret@bravo.example";

struct World {
    app: TestApp,
    key: Key,
    bob: String,
    _idp: crate::idp::Idp,
}

async fn world() -> World {
    world_with(|_| {}).await
}

async fn world_with(tweak: impl FnOnce(&mut cairn_server::config::Config)) -> World {
    let app = TestApp::start_with(|c| {
        c.idp_allow_http_loopback = true;
        tweak(c);
    })
    .await;
    app.tenant("alpha").await;
    app.tenant("bravo").await;
    let (status, bob) = app
        .post(
            "/api/v1/users",
            json!({"email": BOB, "display_name": "Bob Bravo", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{bob}");
    let bob = s(&bob["id"]).to_owned();
    let (status, _) = app
        .post(
            "/api/v1/tenants/bravo/members",
            json!({"user_id": bob, "role": "owner"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let boss = app.user("boss@alpha.example").await;
    let (status, _) = app
        .post(
            "/api/v1/tenants/alpha/members",
            json!({"user_id": s(&boss["id"]), "role": "admin"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "operators keep the direct path");
    let key = Key::new("k1");
    let idp = serve_jwks(&[&key]).await;
    let body = json!({"issuer": ISSUER, "jwks_url": idp.url, "audience": AUDIENCE, "algorithms": ["ES256"]});
    let (status, _) = app
        .call(Method::PUT, "/api/v1/tenants/alpha/identity-provider", Some(body))
        .await;
    assert_eq!(status, StatusCode::OK);
    World {
        app,
        key,
        bob,
        _idp: idp,
    }
}

impl World {
    /// A request as alpha's admin, signed in through alpha's identity provider.
    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let token = self.key.sign(&claims("boss@alpha.example"));
        let mut req = self.app.client.request(method, self.app.url(path)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        (resp.status(), resp.json().await.unwrap_or(Value::Null))
    }

    async fn page(&self, path: &str, form: Option<&[(&str, &str)]>) -> (StatusCode, String) {
        let req = match form {
            Some(f) => self.app.client.post(self.app.url(path)).form(f),
            None => self.app.client.get(self.app.url(path)),
        };
        let resp = req.send().await.unwrap();
        (resp.status(), resp.text().await.unwrap())
    }
}

/// The request body of a probe, for a given user id.
type BodyFor = Box<dyn Fn(&str) -> Option<Value>>;

/// Replaces the id in a body so that answers for two ids can be compared.
fn masked(v: &Value, id: &str) -> String {
    v.to_string().replace(id, "<id>")
}

#[tokio::test]
async fn alpha_admin_learns_nothing_of_bravo_users_and_binds_nothing_to_them() {
    let w = world().await;
    let nobody = cairn_core::ids::UserId::new().to_string();
    let bob = w.bob.clone();
    // Each route that takes a user id: bravo's owner and an id that names no one get
    // the same answer, and it is a refusal.
    let probes: Vec<(Method, String, BodyFor, StatusCode)> = vec![
        (
            Method::POST,
            "/api/v1/tenants/alpha/members".into(),
            Box::new(|u: &str| Some(json!({"user_id": u, "role": "member"}))),
            StatusCode::FORBIDDEN,
        ),
        (
            Method::DELETE,
            "/api/v1/tenants/alpha/members".into(),
            Box::new(|u: &str| Some(json!({"user_id": u}))),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            "/api/v1/tenants/alpha/keys".into(),
            Box::new(|u: &str| Some(json!({"name": "k", "scopes": ["mcp:tools"], "user_id": u}))),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::POST,
            "/api/v1/tenants/alpha/oauth/apps".into(),
            Box::new(|u: &str| {
                Some(json!({"client_name": "t", "redirect_uris": ["https://t.example/cb"], "created_by": u}))
            }),
            StatusCode::NOT_FOUND,
        ),
    ];
    for (method, path, body, expected) in &probes {
        let (status_b, got_b) = w.admin(method.clone(), path, body(&bob)).await;
        let (status_n, got_n) = w.admin(method.clone(), path, body(&nobody)).await;
        assert_eq!(status_b, *expected, "{method} {path}: {got_b}");
        assert_eq!(status_b, status_n, "{method} {path}");
        assert_eq!(masked(&got_b, &bob), masked(&got_n, &nobody), "{method} {path}");
        assert!(!got_b.to_string().contains("bob"), "{got_b}");
    }
    for id in [&bob, &nobody] {
        let (status, got) = w
            .admin(Method::DELETE, &format!("/api/v1/tenants/alpha/members/{id}"), None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{got}");
        assert_eq!(got["error"]["code"], "membership_not_found");
        let (status, got) = w
            .admin(
                Method::GET,
                &format!("/api/v1/tenants/alpha/oauth/apps?created_by={id}"),
                None,
            )
            .await;
        assert_eq!((status, &got["data"]), (StatusCode::OK, &json!([])), "{got}");
        let (status, got) = w
            .admin(
                Method::GET,
                &format!("/api/v1/tenants/alpha/audit?actor=user:{id}"),
                None,
            )
            .await;
        assert_eq!((status, &got["data"]), (StatusCode::OK, &json!([])), "{got}");
        // Platform routes about users stay with operators.
        for path in [
            format!("/api/v1/users/{id}"),
            format!("/api/v1/users/{id}/tenants"),
            format!("/api/v1/tenants?user_id={id}"),
        ] {
            let (status, _) = w.admin(Method::GET, &path, None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        }
    }
    let (status, _) = w.admin(Method::GET, "/api/v1/users", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // An e-mail: inviting bravo's owner looks exactly like inviting an unknown address.
    let mut shapes = Vec::new();
    for email in [BOB, "nobody@nowhere.example"] {
        let (status, inv) = w
            .admin(
                Method::POST,
                "/api/v1/tenants/alpha/invitations",
                Some(json!({"email": email, "role": "member"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{inv}");
        assert_eq!(inv["status"], "pending");
        assert!(
            inv["accepted_by"].is_null() && !inv.to_string().contains("Bob Bravo"),
            "{inv}"
        );
        let mut keys: Vec<String> = inv.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        shapes.push(keys);
    }
    assert_eq!(shapes[0], shapes[1]);
    let (status, _) = w
        .admin(
            Method::POST,
            "/api/v1/tenants/alpha/invitations",
            Some(json!({"email": "x@alpha.example", "role": "owner"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "owners are made by operators");

    // Alpha's identity provider naming bob is refused like naming nobody, down to the
    // reason in alpha's trail (which alpha's admins read).
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    for email in [BOB, "nobody@nowhere.example"] {
        let token = w.key.sign(&claims(email));
        let reply = post(&w.app, "alpha", Some(&token), None, &init).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    let events = w.app.tenant_events("alpha").await;
    let reasons: Vec<&str> = events
        .iter()
        .filter(|e| e.action == "auth.failed" && e.details["credential"] == "idp_jwt")
        .map(|e| e.details["reason"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(reasons, ["not_a_member", "not_a_member"]);
    let (_, members) = w.admin(Method::GET, "/api/v1/tenants/alpha/members", None).await;
    assert!(!members.to_string().contains(BOB), "{members}");
}

#[tokio::test]
async fn the_invited_person_joins_by_signing_in_and_nobody_else_can() {
    let w = world().await;
    let (status, inv) = w
        .admin(
            Method::POST,
            "/api/v1/tenants/alpha/invitations",
            Some(json!({"email": BOB, "role": "member"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{inv}");
    let url = s(&inv["accept_url"]).to_owned();
    let path = url.split_once("/t/alpha").map(|(_, p)| format!("/t/alpha{p}")).unwrap();
    assert!(path.starts_with("/t/alpha/invitations/cairn_inv_"), "{path}");

    let (status, page) = w.page(&path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Join") && page.contains(BOB), "{page}");

    // Holding the link is not enough: a wrong password for bob, or another account
    // (an address with no account at all), are the same refusal.
    let wrong = [("email", BOB), ("password", "not bob's password at all")];
    let other = [("email", "nobody@nowhere.example"), ("password", PASSWORD)];
    for form in [&wrong[..], &other[..]] {
        let (status, page) = w.page(&path, Some(form)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{page}");
        assert!(page.contains("Wrong e-mail or password."));
    }
    let (status, got) = w
        .admin(
            Method::POST,
            "/api/v1/tenants/alpha/keys",
            Some(json!({"name": "k", "scopes": ["mcp:tools"], "user_id": w.bob})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "not joined yet: {got}");

    // Bob signs in: he joins, with the invited role.
    let (status, page) = w
        .page(
            &path,
            Some(&[("email", "Bob.Secret@bravo.example"), ("password", PASSWORD)]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Welcome"), "{page}");
    let (_, members) = w.admin(Method::GET, "/api/v1/tenants/alpha/members", None).await;
    let bob = members["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["email"] == BOB)
        .cloned();
    assert_eq!(bob.map(|m| m["role"].clone()), Some(json!("member")), "{members}");
    let (status, got) = w
        .admin(
            Method::POST,
            "/api/v1/tenants/alpha/keys",
            Some(json!({"name": "k", "scopes": ["mcp:tools"], "user_id": w.bob})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "a member now: {got}");

    // Used once.
    let (status, _) = w.page(&path, None).await;
    assert_eq!(status, StatusCode::GONE);
    let (status, _) = w.page(&path, Some(&[("email", BOB), ("password", PASSWORD)])).await;
    assert_eq!(status, StatusCode::GONE);
    let (_, list) = w.admin(Method::GET, "/api/v1/tenants/alpha/invitations", None).await;
    assert_eq!(list["data"][0]["status"], "accepted", "{list}");
    assert_eq!(list["data"][0]["accepted_by"], w.bob.as_str());
    assert!(list["data"][0]["accept_url"].is_null(), "links are shown once");

    let events = w.app.tenant_events("alpha").await;
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert!(actions.contains(&"invitation.sent"), "{actions:?}");
    let accepted = events.iter().find(|e| e.action == "invitation.accepted").unwrap();
    assert_eq!(accepted.actor_id.as_deref(), Some(w.bob.as_str()));
    let failed = events
        .iter()
        .filter(|e| e.action == "auth.failed" && e.details["credential"] == "password")
        .count();
    assert_eq!(failed, 2);
}

#[tokio::test]
async fn invitations_expire_once_and_can_be_withdrawn() {
    let w = world().await;
    let mut paths = Vec::new();
    for email in ["late@alpha.example", "gone@alpha.example"] {
        let (status, inv) = w
            .admin(
                Method::POST,
                "/api/v1/tenants/alpha/invitations",
                Some(json!({"email": email, "role": "member", "expires_in_hours": 1})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{inv}");
        let url = s(&inv["accept_url"]).to_owned();
        paths.push((
            s(&inv["id"]).to_owned(),
            url.split_once("/t/alpha").map(|(_, p)| format!("/t/alpha{p}")).unwrap(),
        ));
    }
    let (status, _) = w
        .admin(
            Method::POST,
            "/api/v1/tenants/alpha/invitations",
            Some(json!({"email": "x@alpha.example", "role": "member", "expires_in_hours": 721})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    execute(
        &w.app,
        "UPDATE invitations SET expires_at = '2001-01-01T00:00:00.000000Z' WHERE email = 'late@alpha.example'",
    )
    .await;
    let (status, _) = w.page(&paths[0].1, None).await;
    assert_eq!(status, StatusCode::GONE);
    let (status, _) = w
        .admin(
            Method::DELETE,
            &format!("/api/v1/tenants/alpha/invitations/{}", paths[1].0),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = w.page(&paths[1].1, None).await;
    assert_eq!(status, StatusCode::GONE);
    let (status, _) = w
        .admin(
            Method::DELETE,
            &format!("/api/v1/tenants/alpha/invitations/{}", paths[1].0),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no longer pending");

    let (_, list) = w.admin(Method::GET, "/api/v1/tenants/alpha/invitations", None).await;
    let status_of = |email: &str| {
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["email"] == email)
            .map(|i| i["status"].clone())
    };
    assert_eq!(status_of("late@alpha.example"), Some(json!("expired")));
    assert_eq!(status_of("gone@alpha.example"), Some(json!("revoked")));
    let events = w.app.tenant_events("alpha").await;
    let count = |action: &str| events.iter().filter(|e| e.action == action).count();
    assert_eq!(count("invitation.expired"), 1, "audited once, though seen twice");
    assert_eq!(count("invitation.revoked"), 1);
}

#[tokio::test]
async fn with_a_relay_the_link_is_emailed_to_the_address() {
    let sink = crate::smtp_sink::smtp_sink(&[]).await;
    let smtp = sink.config("Cairn <invitations@cairn.test>");
    let w = world_with(|c| c.smtp = Some(smtp)).await;
    let (status, inv) = w
        .admin(
            Method::POST,
            "/api/v1/tenants/alpha/invitations",
            Some(json!({"email": BOB, "role": "admin"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{inv}");
    assert_eq!(inv["emailed"], true, "{inv}");
    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    // The long link line travels quoted-printable: undo its soft line breaks.
    let mail = messages[0].replace("=\r\n", "").replace("=\n", "").replace("=3D", "=");
    assert!(mail.contains(&format!("To: {BOB}")), "{mail}");
    let link = mail
        .split_whitespace()
        .find(|w| w.contains("/t/alpha/invitations/cairn_inv_"))
        .unwrap();
    assert_eq!(link, s(&inv["accept_url"]));
    let path = link
        .split_once("/t/alpha")
        .map(|(_, p)| format!("/t/alpha{p}"))
        .unwrap();
    let (status, page) = w.page(&path, Some(&[("email", BOB), ("password", PASSWORD)])).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("admin"), "{page}");
}
