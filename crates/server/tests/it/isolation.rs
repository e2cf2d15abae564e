//! Tenant isolation underneath the application: on PostgreSQL, row-level security
//! confines even a query with no tenant filter; on both backends, the store's tenant
//! argument does.

use std::time::Duration;

use cairn_core::ids::{TenantId, UserId};
use cairn_core::tenant::{NewTenant, Plan, Slug, TenantName};
use cairn_core::user::{DisplayName, Email, Role};
use cairn_store::users::NewUser;
use cairn_store::{Backend, Page, Store, StoreConfig, StoreError};

use crate::common::{backend, TestDb};

fn store_config(db: &TestDb, per_tenant: usize) -> StoreConfig {
    StoreConfig {
        url: db.url.clone(),
        max_connections: 8,
        min_connections: 0,
        acquire_timeout: Duration::from_millis(500),
        idle_timeout: Duration::from_secs(60),
        max_lifetime: Duration::from_secs(600),
        tenant_max_concurrency: per_tenant,
    }
}

async fn tenant(store: &Store, slug: &str) -> TenantId {
    let new = NewTenant {
        slug: Slug::parse(slug).unwrap(),
        name: TenantName::parse(slug).unwrap(),
        plan: Plan::default(),
        region: None,
    };
    store.create_tenant(&new).await.unwrap().id
}

async fn user(store: &Store, email: &str) -> UserId {
    let new = NewUser {
        email: Email::parse(email).unwrap(),
        display_name: DisplayName::parse("Someone").unwrap(),
        password_hash: None,
    };
    store.create_user(&new).await.unwrap().id
}

/// Two tenants, each with its own member and one shared member.
async fn two_tenants(store: &Store) -> (TenantId, TenantId, UserId, UserId) {
    let a = tenant(store, "tenant-a").await;
    let b = tenant(store, "tenant-b").await;
    let alice = user(store, "alice@a.example").await;
    let bob = user(store, "bob@b.example").await;
    let shared = user(store, "sam@both.example").await;
    store.add_member(a, alice, Role::Admin).await.unwrap();
    store.add_member(b, bob, Role::Owner).await.unwrap();
    store.add_member(a, shared, Role::Member).await.unwrap();
    store.add_member(b, shared, Role::Member).await.unwrap();
    (a, b, alice, bob)
}

#[tokio::test]
async fn store_methods_never_cross_tenants() {
    let db = TestDb::create().await;
    let store = Store::open(&store_config(&db, 4)).await.unwrap();
    let (a, b, alice, bob) = two_tenants(&store).await;
    let page = Page {
        limit: 100,
        after: None,
    };
    let members_a = store.list_members(a, &page).await.unwrap().items;
    assert_eq!(members_a.len(), 2);
    assert!(members_a.iter().all(|m| m.user_id != bob));
    let members_b = store.list_members(b, &page).await.unwrap().items;
    assert!(members_b.iter().all(|m| m.user_id != alice));
    assert_eq!(store.member_role(a, bob).await.unwrap(), None);
    assert!(matches!(
        store.remove_member(a, bob).await,
        Err(StoreError::MembershipNotFound)
    ));
    assert_eq!(
        store.list_members(b, &page).await.unwrap().items.len(),
        2,
        "B untouched"
    );
    assert_eq!(store.get_tenant_by_id(a).await.unwrap().slug.as_str(), "tenant-a");
}

#[tokio::test]
async fn row_level_security_confines_unfiltered_queries() {
    if backend() != Backend::Postgres {
        // Row-level security is a PostgreSQL feature; the store-level guard is tested
        // on both backends above.
        return;
    }
    let db = TestDb::create().await;
    let store = Store::open(&store_config(&db, 4)).await.unwrap();
    let (a, b, _, _) = two_tenants(&store).await;

    let mut tx = store.tenant_tx(a, false).await.unwrap();
    let conn = tx.postgres_connection().unwrap();
    let (user, bypass, superuser): (String, bool, bool) =
        sqlx::query_as("SELECT current_user::text, rolbypassrls, rolsuper FROM pg_roles WHERE rolname = current_user")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    assert_eq!(user, "cairn_app");
    assert!(!bypass, "the application role must not bypass RLS");
    assert!(!superuser);

    let tenants_seen: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT tenant_id FROM memberships")
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    assert_eq!(tenants_seen.len(), 2);
    assert!(
        tenants_seen.iter().all(|t| *t == a.as_uuid()),
        "saw another tenant's memberships"
    );
    let all_tenants: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM tenants")
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    assert_eq!(all_tenants, vec![a.as_uuid()]);
    let users: Vec<String> = sqlx::query_scalar("SELECT email FROM users ORDER BY email")
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    assert_eq!(users, ["alice@a.example", "sam@both.example"]);
    let tokens: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM operator_tokens")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(tokens, 0, "platform tables are invisible in a tenant scope");

    // Writing into another tenant is refused by the policy's WITH CHECK.
    let err = sqlx::query("INSERT INTO memberships (tenant_id, user_id, role, created_at) SELECT $1, id, 'admin', now() FROM users LIMIT 1")
        .bind(b.as_uuid())
        .execute(&mut *conn)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("row-level security"), "{err}");
    drop(tx);

    // A transaction that declares no scope sees nothing.
    let mut tx = store.tenant_tx(a, false).await.unwrap();
    let conn = tx.postgres_connection().unwrap();
    sqlx::query("SELECT set_config('app.tenant_id', '', true)")
        .execute(&mut *conn)
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM memberships")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn every_tenant_table_forces_row_level_security() {
    if backend() != Backend::Postgres {
        return;
    }
    let db = TestDb::create().await;
    Store::open(&store_config(&db, 4)).await.unwrap();
    let mut conn: sqlx::PgConnection = sqlx::Connection::connect(&db.url).await.unwrap();
    let rows: Vec<(String, bool, bool)> = sqlx::query_as(
        "SELECT c.relname::text, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname <> '_sqlx_migrations'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert!(rows.len() >= 6);
    for (table, enabled, forced) in rows {
        assert!(
            enabled && forced,
            "table {table} must ENABLE and FORCE row level security"
        );
    }
    // Every table with a tenant_id column leads its primary key with it (distribution-ready).
    let bad: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary \
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' \
         WHERE c.relnamespace = 'public'::regnamespace AND i.indkey[0] <> a.attnum",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert!(bad.is_empty(), "tenant_id must lead the primary key of {bad:?}");
}

#[tokio::test]
async fn one_tenant_cannot_take_every_connection() {
    let db = TestDb::create().await;
    let store = Store::open(&store_config(&db, 2)).await.unwrap();
    let a = tenant(&store, "tenant-a").await;
    let b = tenant(&store, "tenant-b").await;
    let _t1 = store.tenant_tx(a, false).await.unwrap();
    let _t2 = store.tenant_tx(a, false).await.unwrap();
    let third = store.tenant_tx(a, false).await;
    assert!(
        matches!(third, Err(StoreError::TenantBusy(_))),
        "a third concurrent operation of A must wait and fail"
    );
    let other = store.tenant_tx(b, false).await;
    assert!(other.is_ok(), "tenant B is unaffected by A's load");
    drop(other);
    drop(_t1);
    assert!(store.tenant_tx(a, false).await.is_ok(), "a released permit is reusable");
}
