//! Querying and exporting the audit trail: filters, keyset pages across ties, tenant
//! isolation, refusals, JSONL and CSV exports parsed back, and the CLI export.

use std::collections::HashSet;

use cairn_core::audit::{Actor, AuditEvent, Outcome};
use cairn_core::ids::{OperatorTokenId, TenantId, UserId};
use chrono::{DateTime, Duration, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::cli::cairn_at;
use crate::common::{s, TestApp};
use crate::idp::{claims, serve_jwks, Key, AUDIENCE, ISSUER};

fn base() -> DateTime<Utc> {
    "2024-06-01T00:00:00Z".parse().unwrap()
}

async fn tenant_id(app: &TestApp, slug: &str) -> TenantId {
    let id = s(&app.tenant(slug).await["id"]).parse().unwrap();
    // `tenant.created` (today) first in the chain: the events of 2024 written after it are
    // then not a prefix the server's retention purge (365 days, run at start) may remove.
    app.state.audit.flush().await;
    id
}

/// `n` events of `tenant` named `test.bulk`, ten to a timestamp (ties the cursor must
/// break by id), one second apart from `base()`.
fn bulk(tenant: TenantId, n: usize) -> Vec<AuditEvent> {
    (0..n)
        .map(|i| {
            let mut e = AuditEvent::new(Actor::System, "test.bulk", Outcome::Success)
                .tenant(tenant)
                .target(format!("t{i}"))
                .details(json!({ "i": i }));
            e.occurred_at = base() + Duration::seconds(i64::try_from(i / 10).unwrap());
            e
        })
        .collect()
}

async fn get(app: &TestApp, path: &str) -> (StatusCode, Value) {
    app.state.audit.flush().await;
    app.get(path).await
}

fn ids(v: &Value) -> Vec<String> {
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| s(&e["id"]).to_owned())
        .collect()
}

/// Every page of a listing, following `next_cursor`.
async fn all_pages(app: &TestApp, path: &str) -> (Vec<Value>, usize) {
    let (mut out, mut pages, mut cursor) = (Vec::new(), 0, None::<String>);
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = match &cursor {
            Some(c) => format!("{path}{sep}cursor={c}"),
            None => path.to_owned(),
        };
        let (status, body) = get(app, &url).await;
        assert_eq!(status, StatusCode::OK, "{url}: {body}");
        pages += 1;
        out.extend(body["data"].as_array().unwrap().iter().cloned());
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return (out, pages),
        }
    }
}

#[tokio::test]
async fn audit_listing_pages_through_ties_without_duplicates_or_gaps() {
    let app = TestApp::start().await;
    let acme = tenant_id(&app, "acme").await;
    let events = bulk(acme, 250);
    app.state.store.insert_audit_events(&events).await.unwrap();

    let (rows, pages) = all_pages(&app, "/api/v1/tenants/acme/audit?action=test.bulk&limit=60").await;
    assert_eq!(pages, 5);
    assert_eq!(rows.len(), 250);
    let seen: HashSet<&str> = rows.iter().map(|r| s(&r["id"])).collect();
    assert_eq!(seen.len(), 250, "no event twice");
    let all: HashSet<String> = events.iter().map(|e| e.id.to_string()).collect();
    assert!(seen.iter().all(|id| all.contains(*id)), "no stranger");
    // Newest first: by time, then by id among equal times.
    let keys: Vec<(DateTime<Utc>, String)> = rows
        .iter()
        .map(|r| (s(&r["occurred_at"]).parse().unwrap(), s(&r["id"]).to_owned()))
        .collect();
    assert!(keys.windows(2).all(|w| w[0] > w[1]), "newest first");
    // Chain links come along.
    assert!(rows
        .iter()
        .all(|r| r["seq"].as_i64().is_some() && s(&r["hash"]).len() == 64));
    assert_eq!(rows[0]["tenant_id"], acme.to_string());

    // The default page is 50; without a filter the tenant's own creation is there too.
    let (status, first) = get(&app, "/api/v1/tenants/acme/audit").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["data"].as_array().unwrap().len(), 50);
    assert_eq!(first["data"][0]["action"], "tenant.created", "{first}");
    let (everything, _) = all_pages(&app, "/api/v1/tenants/acme/audit?limit=200").await;
    assert_eq!(everything.len(), 251);
}

#[tokio::test]
async fn audit_filters_by_action_actor_outcome_and_time() {
    let app = TestApp::start().await;
    let acme = tenant_id(&app, "acme").await;
    let (ada, bob) = (UserId::new(), UserId::new());
    let op = OperatorTokenId::new();
    let at = |m: i64| base() + Duration::minutes(m);
    let mk = |actor: Actor, action: &'static str, outcome: Outcome, minute: i64| {
        let mut e = AuditEvent::new(actor, action, outcome).tenant(acme);
        e.occurred_at = at(minute);
        e
    };
    let events = vec![
        mk(Actor::User(ada), "api_key.created", Outcome::Success, 0),
        mk(Actor::User(bob), "api_key.revoked", Outcome::Success, 1),
        mk(Actor::Anonymous, "auth.failed", Outcome::Denied, 2),
        mk(Actor::Operator(op), "tenant.updated", Outcome::Failure, 3),
        // Near misses for the prefix `api_key.`: `_` is no wildcard, case matters.
        mk(Actor::System, "apiXkey.created", Outcome::Success, 4),
        mk(Actor::System, "API_KEY.created", Outcome::Success, 5),
        mk(Actor::System, "api_keyring.opened", Outcome::Success, 6),
    ];
    app.state.store.insert_audit_events(&events).await.unwrap();
    let actions = |v: &Value| -> Vec<String> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| s(&e["action"]).to_owned())
            .collect()
    };
    let q = |query: String| {
        let app = &app;
        async move {
            let (status, body) = get(app, &format!("/api/v1/tenants/acme/audit?{query}")).await;
            assert_eq!(status, StatusCode::OK, "{query}: {body}");
            actions(&body)
        }
    };
    assert_eq!(
        q("action=api_key.*".into()).await,
        ["api_key.revoked", "api_key.created"]
    );
    assert_eq!(q("action=api_key.created".into()).await, ["api_key.created"]);
    assert_eq!(q("action=API_KEY.*".into()).await, ["API_KEY.created"]);
    assert_eq!(q("actor=user".into()).await, ["api_key.revoked", "api_key.created"]);
    assert_eq!(q(format!("actor=user:{ada}")).await, ["api_key.created"]);
    assert_eq!(q(format!("actor=operator:{op}")).await, ["tenant.updated"]);
    assert_eq!(q("actor=anonymous&outcome=denied".into()).await, ["auth.failed"]);
    assert_eq!(q("outcome=failure".into()).await, ["tenant.updated"]);
    assert_eq!(
        q(format!("action=api_key.*&actor=user:{bob}&outcome=success")).await,
        ["api_key.revoked"]
    );
    // `from` inclusive, `to` exclusive; `+` must be encoded in a query string.
    let range = format!(
        "from={}&to={}",
        at(1).to_rfc3339().replace('+', "%2B"),
        at(3).to_rfc3339().replace('+', "%2B")
    );
    assert_eq!(q(range).await, ["auth.failed", "api_key.revoked"]);
    assert_eq!(
        q("from=2024-06-01T02:05:00%2B02:00&to=2024-06-01T00:06:00Z".into()).await,
        ["API_KEY.created"]
    );
    assert!(q("action=nothing.*".into()).await.is_empty());
}

#[tokio::test]
async fn audit_trails_stay_within_their_tenant() {
    let app = TestApp::start_with(|c| c.idp_allow_http_loopback = true).await;
    let acme = tenant_id(&app, "acme").await;
    let globex = tenant_id(&app, "globex").await;
    app.state.store.insert_audit_events(&bulk(acme, 30)).await.unwrap();
    app.state.store.insert_audit_events(&bulk(globex, 20)).await.unwrap();

    let (rows, _) = all_pages(&app, "/api/v1/tenants/acme/audit?limit=7").await;
    assert_eq!(rows.len(), 31);
    assert!(
        rows.iter().all(|r| r["tenant_id"] == acme.to_string()),
        "only acme's events"
    );
    let (status, export) = export_text(&app, "/api/v1/tenants/acme/audit/export").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(export.lines().count(), 31);
    assert!(!export.contains(&globex.to_string()));

    // An admin of globex, signed in with globex's identity provider.
    let key = Key::new("k1");
    let idp = serve_jwks(&[&key]).await;
    let provider = json!({"issuer": ISSUER, "jwks_url": idp.url, "audience": AUDIENCE, "algorithms": ["ES256"]});
    for slug in ["acme", "globex"] {
        let path = format!("/api/v1/tenants/{slug}/identity-provider");
        let (status, body) = app.call(reqwest::Method::PUT, &path, Some(provider.clone())).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    for (email, role) in [("boss@example.com", "admin"), ("pat@example.com", "member")] {
        let user = app.user(email).await;
        let body = json!({"user_id": s(&user["id"]), "role": role});
        let (status, _) = app.post("/api/v1/tenants/globex/members", body).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let as_user = |email: &str, path: &str| {
        let req = app.client.get(app.url(path)).bearer_auth(key.sign(&claims(email)));
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status();
            (status, resp.text().await.unwrap())
        }
    };
    let (status, body) = as_user("boss@example.com", "/api/v1/tenants/globex/audit").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mine: Value = serde_json::from_str(&body).unwrap();
    assert!(!ids(&mine).is_empty());
    for path in [
        "/api/v1/tenants/acme/audit",
        "/api/v1/tenants/acme/audit/export",
        "/api/v1/audit",
        "/api/v1/audit/export",
    ] {
        let (status, body) = as_user("boss@example.com", path).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
        assert!(!body.contains("test.bulk"), "{path}");
    }
    let (status, _) = as_user("pat@example.com", "/api/v1/tenants/globex/audit").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "members are not admins");
    let resp = app
        .client
        .get(app.url("/api/v1/tenants/acme/audit"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bad_audit_parameters_are_refused_with_a_code() {
    let app = TestApp::start().await;
    app.tenant("acme").await;
    for (query, field) in [
        ("from=yesterday", Some("from")),
        ("to=2024-13-01T00:00:00Z", Some("to")),
        ("from=2024-06-02T00:00:00Z&to=2024-06-01T00:00:00Z", Some("from")),
        ("action=api*key", Some("action")),
        ("action=%27%3B%20DROP%20TABLE%20audit_events", Some("action")),
        ("actor=robot", Some("actor")),
        ("actor=user:", Some("actor")),
        ("outcome=ok", Some("outcome")),
        ("limit=0", Some("limit")),
        ("limit=201", Some("limit")),
        ("limit=lots", None),
        ("cursor=not-a-cursor", Some("cursor")),
        (
            "cursor=0000000000000000zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
            Some("cursor"),
        ),
        ("sort=asc", None),
    ] {
        for base in ["/api/v1/tenants/acme/audit", "/api/v1/audit"] {
            let (status, body) = get(&app, &format!("{base}?{query}")).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{base}?{query}: {body}");
            assert_eq!(body["error"]["code"], "invalid_field", "{query}: {body}");
            if let Some(field) = field {
                assert_eq!(body["error"]["field"], field, "{query}: {body}");
            }
        }
    }
    for (query, field) in [
        ("format=xml", "format"),
        ("from=2999-01-01T00:00:00Z", "from"),
        ("actor=robot", "actor"),
    ] {
        let (status, body) = get(&app, &format!("/api/v1/tenants/acme/audit/export?{query}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert_eq!(body["error"]["field"], field, "{query}: {body}");
    }
    let (status, body) = get(&app, "/api/v1/tenants/nope/audit").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "tenant_not_found");
    let (status, body) = get(&app, "/api/v1/tenants/nope/audit/export?format=csv").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

async fn export_text(app: &TestApp, path: &str) -> (StatusCode, String) {
    app.state.audit.flush().await;
    let resp = app
        .client
        .get(app.url(path))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.text().await.unwrap())
}

/// Two events whose text needs CSV quoting, among `n` plain ones.
async fn export_fixture(app: &TestApp, n: usize) -> (TenantId, Vec<AuditEvent>, Value) {
    let acme = tenant_id(app, "acme").await;
    let mut events = bulk(acme, n);
    let tricky = json!({"note": "commas, \"quotes\"\nand a newline\r\n", "list": [1, 2], "ü": "ñ"});
    let mut special = AuditEvent::new(Actor::Cli, "test.special", Outcome::Failure)
        .tenant(acme)
        .target("a,b")
        .details(tricky.clone());
    special.user_agent = Some("Agent \"X\", v1".into());
    special.occurred_at = base() - Duration::hours(1);
    events.push(special);
    app.state.store.insert_audit_events(&events).await.unwrap();
    (acme, events, tricky)
}

#[tokio::test]
async fn audit_export_streams_jsonl_and_csv_oldest_first() {
    let app = TestApp::start().await;
    // 2 500 events: three pages of the export.
    let (acme, events, tricky) = export_fixture(&app, 2_500).await;

    app.state.audit.flush().await;
    let resp = app
        .client
        .get(app.url("/api/v1/tenants/acme/audit/export?format=jsonl&action=test.*"))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let header = |name: &str| resp.headers()[name].to_str().unwrap().to_owned();
    assert_eq!(header("content-type"), "application/x-ndjson");
    assert!(header("content-disposition").starts_with("attachment; filename=\"audit-acme-"));
    assert!(header("content-disposition").ends_with(".jsonl\""));
    assert!(resp.headers().get("content-length").is_none(), "streamed, not buffered");
    let body = resp.text().await.unwrap();
    let lines: Vec<Value> = body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), events.len());
    let jsonl_ids: Vec<&str> = lines.iter().map(|l| s(&l["id"])).collect();
    let expected: HashSet<String> = events.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(
        jsonl_ids.iter().copied().map(str::to_owned).collect::<HashSet<_>>(),
        expected
    );
    let keys: Vec<(DateTime<Utc>, &str)> = lines
        .iter()
        .map(|l| (s(&l["occurred_at"]).parse().unwrap(), s(&l["id"])))
        .collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "oldest first");
    assert_eq!(lines[0]["action"], "test.special");
    assert_eq!(lines[0]["details"], tricky);
    assert!(lines
        .iter()
        .all(|l| l["tenant_id"] == acme.to_string() && l["seq"].is_i64()));

    let (status, csv_text) = export_text(&app, "/api/v1/tenants/acme/audit/export?format=csv&action=test.*").await;
    assert_eq!(status, StatusCode::OK);
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let headers: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(
        headers,
        [
            "id",
            "tenant_id",
            "occurred_at",
            "actor_kind",
            "actor_id",
            "action",
            "target",
            "outcome",
            "request_id",
            "source_ip",
            "user_agent",
            "details",
            "seq",
            "prev_hash",
            "hash"
        ]
    );
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), events.len());
    let csv_ids: Vec<&str> = records.iter().map(|r| &r[0]).collect();
    assert_eq!(csv_ids, jsonl_ids, "same events, same order");
    let special = &records[0];
    assert_eq!(&special[5], "test.special");
    assert_eq!(&special[6], "a,b");
    assert_eq!(&special[10], "Agent \"X\", v1");
    assert_eq!(serde_json::from_str::<Value>(&special[11]).unwrap(), tricky);
    assert_eq!(&special[12], lines[0]["seq"].to_string());
    assert_eq!(&special[14], s(&lines[0]["hash"]));
    assert!(records[1][4].is_empty(), "absent actor id is an empty cell");

    // A time range, in both formats.
    let range = "from=2024-06-01T00:01:00Z&to=2024-06-01T00:02:00Z";
    let (_, part) = export_text(&app, &format!("/api/v1/tenants/acme/audit/export?{range}")).await;
    assert_eq!(part.lines().count(), 600, "60 seconds of ten events");
    let (_, part) = export_text(&app, &format!("/api/v1/tenants/acme/audit/export?format=csv&{range}")).await;
    assert_eq!(part.lines().count(), 601, "a header and the rows");

    // Each export is itself audited, and left out of its own file.
    let (_, all) = export_text(&app, "/api/v1/tenants/acme/audit/export").await;
    let actions: Vec<String> = all
        .lines()
        .map(|l| s(&serde_json::from_str::<Value>(l).unwrap()["action"]).to_owned())
        .collect();
    assert_eq!(actions.iter().filter(|a| *a == "audit.exported").count(), 4);
    assert_eq!(
        actions.len(),
        events.len() + 1 + 4,
        "+ tenant.created + earlier exports"
    );
    let (_, listed) = get(&app, "/api/v1/tenants/acme/audit?action=audit.exported&limit=1").await;
    assert_eq!(listed["data"][0]["actor_kind"], "operator");
    assert_eq!(listed["data"][0]["details"]["format"], "jsonl");

    // An empty CSV export is a header alone.
    let (status, empty) = export_text(&app, "/api/v1/tenants/acme/audit/export?format=csv&action=none.*").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(empty.lines().count(), 1);
}

#[tokio::test]
async fn audit_export_from_the_cli_matches_the_api() {
    let app = TestApp::start().await;
    let (_, events, tricky) = export_fixture(&app, 1_200).await;
    let (_, api) = export_text(&app, "/api/v1/tenants/acme/audit/export?action=test.*").await;
    let api_ids: Vec<String> = api
        .lines()
        .map(|l| s(&serde_json::from_str::<Value>(l).unwrap()["id"]).to_owned())
        .collect();
    assert_eq!(api_ids.len(), events.len());

    let file = app.db.dir.path().join("acme-audit.csv");
    let cli = |args: Vec<String>| {
        let (url, dir) = (app.db.url.clone(), app.db.dir.path().to_owned());
        // The binary runs off the runtime thread: a blocking wait would freeze the
        // in-process server mid-transaction.
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            cairn_at(&url, &dir, &args, None)
        })
    };
    let args = |extra: &[&str]| {
        let mut v: Vec<String> = ["audit", "export"].iter().map(|s| (*s).to_owned()).collect();
        v.extend(extra.iter().map(|s| (*s).to_owned()));
        v
    };
    let out = cli(args(&[
        "--tenant",
        "acme",
        "--format",
        "csv",
        "--action",
        "test.*",
        "--output",
        file.to_str().unwrap(),
    ]))
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("{} audit events written", events.len())));
    let mut reader = csv::Reader::from_path(&file).unwrap();
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let csv_ids: Vec<&str> = records.iter().map(|r| &r[0]).collect();
    assert_eq!(csv_ids, api_ids);
    assert_eq!(serde_json::from_str::<Value>(&records[0][11]).unwrap(), tricky);

    // JSONL on standard output, limited to a time range.
    let out = cli(args(&[
        "--tenant",
        "acme",
        "--from",
        "2024-06-01T00:00:30Z",
        "--to",
        "2024-06-01T00:00:40Z",
    ]))
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 100);
    assert!(lines.iter().all(|l| l["action"] == "test.bulk"));

    // The platform trail, and refusals.
    let out = cli(args(&["--platform"])).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let platform = String::from_utf8(out.stdout).unwrap();
    assert!(
        platform.lines().any(|l| l.contains("\"operator_token.created\"")),
        "{platform}"
    );
    assert!(platform.lines().all(|l| l.contains("\"tenant_id\":null")));
    let before = std::fs::read(&file).unwrap();
    let out = cli(args(&["--tenant", "nope", "--output", file.to_str().unwrap()]))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tenant_not_found"));
    assert_eq!(
        std::fs::read(&file).unwrap(),
        before,
        "a failed export leaves the earlier file"
    );
    assert_eq!(
        std::fs::read_dir(app.db.dir.path())
            .unwrap()
            .filter(|e| { e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".partial") })
            .count(),
        0
    );
    let out = cli(args(&["--tenant", "acme", "--actor", "robot"])).await.unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid_field"));
    let out = cli(args(&[])).await.unwrap();
    assert_eq!(out.status.code(), Some(2), "--tenant or --platform is required");
}

#[tokio::test]
async fn platform_audit_events_are_listed_for_operators() {
    let app = TestApp::start().await;
    app.user("ada@example.com").await;
    app.user("bob@example.com").await;
    let (rows, _) = all_pages(&app, "/api/v1/audit?action=user.*&limit=1").await;
    assert_eq!(rows.len(), 2);
    assert!(rows
        .iter()
        .all(|r| r["tenant_id"].is_null() && r["action"] == "user.created"));
    let (status, body) = get(&app, "/api/v1/audit?actor=operator&outcome=success").await;
    assert_eq!(status, StatusCode::OK);
    assert!(ids(&body).len() >= 2, "{body}");
    let (status, text) = export_text(&app, "/api/v1/audit/export?format=csv&action=user.created").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(text.lines().count(), 3);
}
