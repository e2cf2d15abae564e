//! Reading the audit trail back: filtered listings newest first (the query API) and
//! oldest-first pages (streamed exports). Both are keyset-paginated on
//! (`occurred_at`, `id`), which is unique, so pages never overlap or skip a row however
//! many events share a timestamp, and no page costs more than its own rows (no OFFSET).

use cairn_core::ids::TenantId;
use chrono::{DateTime, Utc};
use sqlx::{Database, Encode, Type};
use uuid::Uuid;

use crate::audit::{AuditRow, StoredAuditEvent, COMMON};
use crate::pool::{SQLITE_CACHE_KIB, SQLITE_MMAP_BYTES};
use crate::scope::EitherTx;
use crate::scope::Tx;
use crate::types::{DbTime, DbUuid};
use crate::{Page, Paged, Store, StoreError};

/// Which events a query returns: every field that is set must match.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Inclusive.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive.
    pub to: Option<DateTime<Utc>>,
    pub action: Option<ActionMatch>,
    pub actor_kind: Option<String>,
    /// Only meaningful with `actor_kind`.
    pub actor_id: Option<String>,
    pub outcome: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionMatch {
    Exact(String),
    /// Actions starting with this text (byte for byte, case-sensitive).
    Prefix(String),
}

/// A place in the trail: the time and id of the last event a reader has seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditPosition {
    pub occurred_at: DateTime<Utc>,
    pub id: Uuid,
}

impl AuditPosition {
    pub fn of(event: &StoredAuditEvent) -> Self {
        Self {
            occurred_at: event.occurred_at,
            id: event.id.as_uuid(),
        }
    }

    /// The cursor text: 16 hex digits of microseconds since the epoch, then the 32 of
    /// the id. Clients treat it as opaque; fixed width makes it cheap to check.
    pub fn encode(&self) -> String {
        let micros = u64::try_from(self.occurred_at.timestamp_micros()).unwrap_or(0);
        format!("{micros:016x}{}", self.id.simple())
    }

    pub fn decode(cursor: &str) -> Result<Self, StoreError> {
        if cursor.len() != 48 || !cursor.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StoreError::InvalidCursor);
        }
        let (time, id) = cursor.split_at(16);
        let micros = u64::from_str_radix(time, 16).map_err(|_| StoreError::InvalidCursor)?;
        let occurred_at = i64::try_from(micros)
            .ok()
            .and_then(DateTime::from_timestamp_micros)
            .ok_or(StoreError::InvalidCursor)?;
        let id = Uuid::try_parse(id).map_err(|_| StoreError::InvalidCursor)?;
        Ok(Self { occurred_at, id })
    }
}

/// An event with its link in the tamper-evident chain (absent on events written before
/// chains existed).
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditRecord {
    #[serde(flatten)]
    pub event: StoredAuditEvent,
    pub seq: Option<i64>,
    pub prev_hash: Option<String>,
    pub hash: Option<String>,
}

#[derive(sqlx::FromRow)]
struct RecordRow {
    #[sqlx(flatten)]
    row: AuditRow,
    seq: Option<i64>,
    prev_hash: Option<String>,
    hash: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    NewestFirst,
    OldestFirst,
}

/// A bind parameter. The statement is assembled from the filters actually set, so each
/// combination is its own prepared statement with a plan that can use the matching
/// index (a catch-all `$n IS NULL OR …` statement would get one generic plan for all).
enum Arg {
    Uuid(DbUuid),
    Time(DbTime),
    Text(String),
    Int(i32),
    BigInt(i64),
}

#[derive(Default)]
struct Select {
    conditions: Vec<String>,
    args: Vec<Arg>,
}

impl Select {
    /// Adds a parameter and returns its placeholder.
    fn arg(&mut self, arg: Arg) -> String {
        self.args.push(arg);
        format!("${}", self.args.len())
    }

    fn build(
        tenant: Option<TenantId>,
        filter: &AuditFilter,
        after: Option<AuditPosition>,
        direction: Direction,
        limit: i64,
    ) -> (String, Vec<Arg>) {
        let mut s = Self::default();
        if let Some(t) = tenant {
            let p = s.arg(Arg::Uuid(DbUuid(t.as_uuid())));
            s.conditions.push(format!("tenant_id = {p}"));
        }
        if let Some(from) = filter.from {
            let p = s.arg(Arg::Time(DbTime::new(from)));
            s.conditions.push(format!("occurred_at >= {p}"));
        }
        if let Some(to) = filter.to {
            let p = s.arg(Arg::Time(DbTime::new(to)));
            s.conditions.push(format!("occurred_at < {p}"));
        }
        match &filter.action {
            Some(ActionMatch::Exact(a)) => {
                let p = s.arg(Arg::Text(a.clone()));
                s.conditions.push(format!("action = {p}"));
            }
            // Not LIKE: it is case-insensitive on SQLite and `_` (common in action names)
            // is a wildcard. Comparing the leading characters is exact on both backends.
            Some(ActionMatch::Prefix(prefix)) if !prefix.is_empty() => {
                let len = i32::try_from(prefix.chars().count()).unwrap_or(i32::MAX);
                let n = s.arg(Arg::Int(len));
                let p = s.arg(Arg::Text(prefix.clone()));
                s.conditions.push(format!("substr(action, 1, {n}) = {p}"));
            }
            Some(ActionMatch::Prefix(_)) | None => {}
        }
        if let Some(kind) = &filter.actor_kind {
            let p = s.arg(Arg::Text(kind.clone()));
            s.conditions.push(format!("actor_kind = {p}"));
            if let Some(id) = &filter.actor_id {
                let p = s.arg(Arg::Text(id.clone()));
                s.conditions.push(format!("actor_id = {p}"));
            }
        }
        if let Some(outcome) = &filter.outcome {
            let p = s.arg(Arg::Text(outcome.clone()));
            s.conditions.push(format!("outcome = {p}"));
        }
        let (cmp, bound, order) = match direction {
            Direction::NewestFirst => ("<", "<=", "DESC"),
            Direction::OldestFirst => (">", ">=", "ASC"),
        };
        if let Some(pos) = after {
            let t = s.arg(Arg::Time(DbTime::new(pos.occurred_at)));
            let id = s.arg(Arg::Uuid(DbUuid(pos.id)));
            // The plain range on occurred_at is what both planners turn into an index
            // range; the row comparison then settles ties on the same microsecond.
            s.conditions.push(format!(
                "occurred_at {bound} {t} AND (occurred_at, id) {cmp} ({t}, {id})"
            ));
        }
        let limit = s.arg(Arg::BigInt(limit));
        let table = if tenant.is_some() {
            "audit_events"
        } else {
            "platform_audit_events"
        };
        let filter = if s.conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", s.conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT {COMMON}, seq, prev_hash, hash FROM {table}{filter} \
             ORDER BY occurred_at {order}, id {order} LIMIT {limit}"
        );
        (sql, s.args)
    }
}

fn bind_all<'q, DB, O>(
    mut query: sqlx::query::QueryAs<'q, DB, O, <DB as Database>::Arguments<'q>>,
    args: &'q [Arg],
) -> sqlx::query::QueryAs<'q, DB, O, <DB as Database>::Arguments<'q>>
where
    DB: Database,
    DbUuid: Encode<'q, DB> + Type<DB>,
    DbTime: Encode<'q, DB> + Type<DB>,
    &'q str: Encode<'q, DB> + Type<DB>,
    i32: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
{
    for arg in args {
        query = match arg {
            Arg::Uuid(v) => query.bind(*v),
            Arg::Time(v) => query.bind(*v),
            Arg::Text(v) => query.bind(v.as_str()),
            Arg::Int(v) => query.bind(*v),
            Arg::BigInt(v) => query.bind(*v),
        };
    }
    query
}

impl Store {
    /// One page of a tenant's events (`None`: platform events) matching `filter`, newest
    /// first. The cursor is the [`AuditPosition`] of the page's last event.
    pub async fn query_audit_events(
        &self,
        tenant: Option<TenantId>,
        filter: &AuditFilter,
        page: &Page,
    ) -> Result<Paged<AuditRecord>, StoreError> {
        let after = page.after.as_deref().map(AuditPosition::decode).transpose()?;
        let rows = self
            .select_audit(tenant, filter, after, Direction::NewestFirst, page.fetch_limit())
            .await?;
        Ok(Paged::from_rows(rows, page, |r| AuditPosition::of(&r.event).encode()))
    }

    /// Up to `limit` events matching `filter` after `after`, oldest first: one page of an
    /// export. Each page is its own short transaction, so an export of any length holds
    /// neither a connection nor the tenant's concurrency permit between pages.
    pub async fn audit_events_after(
        &self,
        tenant: Option<TenantId>,
        filter: &AuditFilter,
        after: Option<AuditPosition>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.select_audit(tenant, filter, after, Direction::OldestFirst, i64::from(limit.max(1)))
            .await
    }

    async fn select_audit(
        &self,
        tenant: Option<TenantId>,
        filter: &AuditFilter,
        after: Option<AuditPosition>,
        direction: Direction,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let (sql, args) = Select::build(tenant, filter, after, direction, limit);
        let mut tx = EitherTx::begin(self, tenant, false).await?;
        // An export reads the whole trail page by page. On SQLite every page read would
        // stay resident in the connection's memory map (up to 1 GiB) and page cache
        // (64 MiB) for as long as it lives; measured: 1.2 GiB for a million events. It
        // reads with no map and a small cache instead, and restores both after.
        let scan = direction == Direction::OldestFirst;
        if scan {
            sqlite_limits(tx.tx(), 0, SCAN_CACHE_KIB).await?;
        }
        let rows: Result<Vec<RecordRow>, sqlx::Error> = with_conn!(tx.tx(), conn => {
            bind_all(sqlx::query_as(&sql), &args).fetch_all(conn).await
        });
        if scan {
            sqlite_limits(tx.tx(), SQLITE_MMAP_BYTES, SQLITE_CACHE_KIB).await?;
        }
        let rows = rows?;
        tx.commit().await?;
        Ok(rows
            .into_iter()
            .map(|r| AuditRecord {
                event: r.row.into_event(tenant),
                seq: r.seq,
                prev_hash: r.prev_hash,
                hash: r.hash,
            })
            .collect())
    }
}

/// The page cache (KiB) of a connection while it reads an export page: enough for the
/// B-tree path to the cursor and the page's rows.
const SCAN_CACHE_KIB: i64 = 2 * 1024;

/// Sets a SQLite connection's memory-map limit and page-cache size (nothing on
/// PostgreSQL). SQLite applies them between statements: a smaller map unmaps at once, a
/// smaller cache frees the pages over it.
async fn sqlite_limits(tx: &mut Tx, mmap_bytes: i64, cache_kib: i64) -> Result<(), StoreError> {
    if let Tx::Sqlite(t) = tx {
        for sql in [
            format!("PRAGMA mmap_size = {mmap_bytes}"),
            format!("PRAGMA cache_size = -{cache_kib}"),
        ] {
            sqlx::query(&sql).execute(&mut **t).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let pos = AuditPosition {
            occurred_at: DateTime::from_timestamp_micros(1_735_689_600_123_456).unwrap_or_default(),
            id: Uuid::now_v7(),
        };
        let text = pos.encode();
        assert_eq!(text.len(), 48);
        assert_eq!(AuditPosition::decode(&text).ok(), Some(pos));
        for bad in [
            "",
            "abc",
            &text[1..],
            &format!("{text}0"),
            &text.replace(&text[..1], "z"),
        ] {
            assert!(AuditPosition::decode(bad).is_err(), "{bad}");
        }
        // Beyond chrono's range.
        assert!(AuditPosition::decode(&format!("ffffffffffffffff{}", &text[16..])).is_err());
    }

    #[test]
    fn statements_carry_only_the_filters_set() {
        let (sql, args) = Select::build(None, &AuditFilter::default(), None, Direction::NewestFirst, 51);
        assert!(!sql.contains("WHERE"), "{sql}");
        assert!(sql.ends_with("ORDER BY occurred_at DESC, id DESC LIMIT $1"), "{sql}");
        assert_eq!(args.len(), 1);
        let filter = AuditFilter {
            action: Some(ActionMatch::Prefix("api_key.".into())),
            actor_kind: Some("user".into()),
            ..AuditFilter::default()
        };
        let after = AuditPosition {
            occurred_at: Utc::now(),
            id: Uuid::nil(),
        };
        let (sql, args) = Select::build(
            Some(TenantId::new()),
            &filter,
            Some(after),
            Direction::OldestFirst,
            1000,
        );
        assert!(sql.contains("substr(action, 1, $2) = $3"), "{sql}");
        assert!(
            sql.contains("occurred_at >= $5 AND (occurred_at, id) > ($5, $6)"),
            "{sql}"
        );
        assert!(sql.ends_with("ASC LIMIT $7"), "{sql}");
        assert_eq!(args.len(), 7);
    }
}
