//! `webhook_events` retention. On PostgreSQL the table is range-partitioned by month:
//! partitions are created ahead of time and whole partitions are dropped when they fall
//! out of retention (no row-by-row DELETE, no bloat). DDL runs on a dedicated connection
//! as the connecting user, who owns the schema (the application role may not create or
//! drop tables). On SQLite, old rows are deleted in batches by the time index.

use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor};

use crate::{Backend, Store, StoreConfig, StoreError};

/// Rows deleted per statement on SQLite.
const SQLITE_BATCH: i64 = 5000;

/// First day of the month `offset` months after the month of `t`.
fn month_start(t: DateTime<Utc>, offset: i32) -> Option<NaiveDate> {
    let months = t.year() * 12 + i32::try_from(t.month0()).ok()? + offset;
    NaiveDate::from_ymd_opt(months.div_euclid(12), u32::try_from(months.rem_euclid(12)).ok()? + 1, 1)
}

fn partition_name(month: NaiveDate) -> String {
    format!("webhook_events_p{:04}{:02}", month.year(), month.month())
}

/// The month a partition name covers (`webhook_events_pYYYYMM`).
fn partition_month(name: &str) -> Option<NaiveDate> {
    let digits = name.strip_prefix("webhook_events_p")?;
    if digits.len() != 6 {
        return None;
    }
    let year: i32 = digits.get(..4)?.parse().ok()?;
    let month: u32 = digits.get(4..)?.parse().ok()?;
    NaiveDate::from_ymd_opt(year, month, 1)
}

async fn owner_connection(cfg: &StoreConfig) -> Result<sqlx::PgConnection, StoreError> {
    let opts = PgConnectOptions::from_str(&cfg.url)
        .map_err(|e| StoreError::Config(format!("invalid PostgreSQL URL: {e}")))?
        .application_name("cairn-partitions");
    Ok(opts.connect().await?)
}

/// Creates the partitions for the month of `now` and `months_ahead` months after it
/// (PostgreSQL; nothing to do on SQLite). Returns the names created.
pub async fn ensure_webhook_partitions(
    cfg: &StoreConfig,
    now: DateTime<Utc>,
    months_ahead: i32,
) -> Result<Vec<String>, StoreError> {
    if Backend::from_url(&cfg.url)? != Backend::Postgres {
        return Ok(Vec::new());
    }
    let mut conn = owner_connection(cfg).await?;
    let existing = partitions_on(&mut conn).await?;
    let mut created = Vec::new();
    for offset in 0..=months_ahead.max(0) {
        let (Some(from), Some(to)) = (month_start(now, offset), month_start(now, offset + 1)) else {
            continue;
        };
        let name = partition_name(from);
        if existing.contains(&name) {
            continue;
        }
        // Names and bounds are generated here from dates, never from input.
        let ddl = format!(
            "CREATE TABLE IF NOT EXISTS {name} PARTITION OF webhook_events \
             FOR VALUES FROM ('{from} 00:00:00+00') TO ('{to} 00:00:00+00'); \
             ALTER TABLE {name} ENABLE ROW LEVEL SECURITY; ALTER TABLE {name} FORCE ROW LEVEL SECURITY;"
        );
        conn.execute(ddl.as_str()).await?;
        created.push(name);
    }
    conn.close().await?;
    Ok(created)
}

/// Partition names of `webhook_events`, oldest first (empty on SQLite).
pub async fn webhook_partitions(cfg: &StoreConfig) -> Result<Vec<String>, StoreError> {
    if Backend::from_url(&cfg.url)? != Backend::Postgres {
        return Ok(Vec::new());
    }
    let mut conn = owner_connection(cfg).await?;
    let names = partitions_on(&mut conn).await?;
    conn.close().await?;
    Ok(names)
}

async fn partitions_on(conn: &mut sqlx::PgConnection) -> Result<Vec<String>, StoreError> {
    let mut names: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = 'webhook_events'::regclass",
    )
    .fetch_all(conn)
    .await?;
    names.sort();
    Ok(names)
}

/// What retention removed.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct WebhookRetention {
    /// PostgreSQL: partitions dropped whole.
    pub dropped_partitions: Vec<String>,
    /// SQLite: rows deleted.
    pub deleted_rows: u64,
}

/// Removes events received before `before`: on PostgreSQL every partition that ends on or
/// before it is dropped (a partition still holding newer events is kept whole until it
/// expires entirely); on SQLite rows are deleted in batches.
pub async fn expire_webhook_events(
    store: &Store,
    cfg: &StoreConfig,
    before: DateTime<Utc>,
) -> Result<WebhookRetention, StoreError> {
    let mut out = WebhookRetention::default();
    match Backend::from_url(&cfg.url)? {
        Backend::Postgres => {
            let mut conn = owner_connection(cfg).await?;
            for name in partitions_on(&mut conn).await? {
                let Some(month) = partition_month(&name) else { continue };
                let next = Utc.from_utc_datetime(&month.and_hms_opt(0, 0, 0).unwrap_or_default());
                let Some(end) = month_start(next, 1) else { continue };
                let end = Utc.from_utc_datetime(&end.and_hms_opt(0, 0, 0).unwrap_or_default());
                if end <= before {
                    conn.execute(format!("DROP TABLE IF EXISTS {name}").as_str()).await?;
                    out.dropped_partitions.push(name);
                }
            }
            conn.close().await?;
        }
        Backend::Sqlite => loop {
            let n = store.delete_webhook_events_batch(before, SQLITE_BATCH).await?;
            out.deleted_rows += n;
            if n < u64::try_from(SQLITE_BATCH).unwrap_or(u64::MAX) {
                break;
            }
        },
    }
    Ok(out)
}

impl Store {
    async fn delete_webhook_events_batch(&self, before: DateTime<Utc>, batch: i64) -> Result<u64, StoreError> {
        let mut tx = self.platform_tx(true).await?;
        let n = with_conn!(&mut tx.tx, conn => {
            sqlx::query(
                "DELETE FROM webhook_events WHERE rowid IN \
                 (SELECT rowid FROM webhook_events WHERE received_at < $1 LIMIT $2)",
            )
            .bind(crate::types::DbTime::new(before)).bind(batch).execute(conn).await.map(|r| r.rows_affected())
        })?;
        tx.commit().await?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_roll_over_years_and_names_round_trip() {
        let t = Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap();
        assert_eq!(month_start(t, 0), NaiveDate::from_ymd_opt(2026, 11, 1));
        assert_eq!(month_start(t, 2), NaiveDate::from_ymd_opt(2027, 1, 1));
        assert_eq!(month_start(t, -11), NaiveDate::from_ymd_opt(2025, 12, 1));
        let name = partition_name(NaiveDate::from_ymd_opt(2027, 1, 1).unwrap());
        assert_eq!(name, "webhook_events_p202701");
        assert_eq!(partition_month(&name), NaiveDate::from_ymd_opt(2027, 1, 1));
        assert_eq!(partition_month("webhook_events_default"), None);
    }
}
