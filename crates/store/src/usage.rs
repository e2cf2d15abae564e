//! Usage events and their hourly/daily roll-ups.

use std::collections::HashMap;

use cairn_core::ids::{ApiKeyId, TenantId};
use cairn_core::usage::{UsageEvent, UsageGrouping, UsageRow};
use chrono::{DateTime, DurationRound, TimeDelta, Utc};

use crate::types::{DbTime, DbUuid};
use crate::{Store, StoreError};

const CHUNK: usize = 500;

#[derive(Default, Clone, Copy)]
struct Agg {
    calls: i64,
    billable: i64,
    errors: i64,
    request_bytes: i64,
    response_bytes: i64,
    units: i64,
    latency_us_sum: i64,
}

type RollupKey = (TenantId, &'static str, DateTime<Utc>, String, String);

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn rollups(events: &[UsageEvent]) -> HashMap<RollupKey, Agg> {
    let mut map: HashMap<RollupKey, Agg> = HashMap::new();
    for e in events {
        let key = e.key.map(|k| k.to_string()).unwrap_or_default();
        let tool = e.tool.clone().unwrap_or_default();
        for (period, width) in [("hour", TimeDelta::hours(1)), ("day", TimeDelta::days(1))] {
            let start = e.occurred_at.duration_trunc(width).unwrap_or(e.occurred_at);
            let agg = map
                .entry((e.tenant, period, start, key.clone(), tool.clone()))
                .or_default();
            agg.calls += 1;
            agg.billable += i64::from(e.billable());
            agg.errors += i64::from(e.outcome.is_error());
            agg.request_bytes += int(e.request_bytes);
            agg.response_bytes += int(e.response_bytes);
            agg.units += int(e.units);
            agg.latency_us_sum += int(e.latency_us);
        }
    }
    map
}

#[derive(sqlx::FromRow)]
struct ReportRow {
    calls: i64,
    errors: i64,
    request_bytes: i64,
    response_bytes: i64,
    units: i64,
    latency_us_sum: i64,
}

impl ReportRow {
    fn into_row(self, group: String) -> UsageRow {
        let calls = u64::try_from(self.calls).unwrap_or(0);
        UsageRow {
            group,
            calls,
            errors: u64::try_from(self.errors).unwrap_or(0),
            request_bytes: u64::try_from(self.request_bytes).unwrap_or(0),
            response_bytes: u64::try_from(self.response_bytes).unwrap_or(0),
            units: u64::try_from(self.units).unwrap_or(0),
            avg_latency_ms: if calls == 0 {
                0.0
            } else {
                self.latency_us_sum as f64 / calls as f64 / 1000.0
            },
        }
    }
}

const SUMS: &str = "CAST(SUM(calls) AS BIGINT) AS calls, CAST(SUM(errors) AS BIGINT) AS errors, \
     CAST(SUM(request_bytes) AS BIGINT) AS request_bytes, CAST(SUM(response_bytes) AS BIGINT) AS response_bytes, \
     CAST(SUM(units) AS BIGINT) AS units, CAST(SUM(latency_us_sum) AS BIGINT) AS latency_us_sum";

impl Store {
    /// Writes a batch of events and folds them into the roll-ups, in one transaction.
    pub async fn insert_usage_events(&self, events: &[UsageEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.platform_tx(true).await?;
        for chunk in events.chunks(CHUNK) {
            with_conn!(&mut tx.tx, conn => {
                let mut qb = sqlx::QueryBuilder::new(
                    "INSERT INTO usage_events (tenant_id, id, occurred_at, key_id, user_id, method, tool, outcome, \
                     latency_us, request_bytes, response_bytes, units) ",
                );
                qb.push_values(chunk, |mut b, e| {
                    b.push_bind(DbUuid(e.tenant.as_uuid()))
                        .push_bind(DbUuid(uuid::Uuid::now_v7()))
                        .push_bind(DbTime::new(e.occurred_at))
                        .push_bind(e.key.map(|k| DbUuid(k.as_uuid())))
                        .push_bind(e.user.map(|u| DbUuid(u.as_uuid())))
                        .push_bind(e.method.as_str())
                        .push_bind(e.tool.as_deref())
                        .push_bind(e.outcome.as_str())
                        .push_bind(int(e.latency_us))
                        .push_bind(int(e.request_bytes))
                        .push_bind(int(e.response_bytes))
                        .push_bind(int(e.units));
                });
                qb.build().execute(conn).await.map(|r| r.rows_affected())
            })?;
        }
        let rolled: Vec<(RollupKey, Agg)> = rollups(events).into_iter().collect();
        for chunk in rolled.chunks(CHUNK) {
            with_conn!(&mut tx.tx, conn => {
                let mut qb = sqlx::QueryBuilder::new(
                    "INSERT INTO usage_rollups (tenant_id, period, period_start, key_id, tool, calls, billable, errors, \
                     request_bytes, response_bytes, units, latency_us_sum) ",
                );
                qb.push_values(chunk, |mut b, ((tenant, period, start, key, tool), agg)| {
                    b.push_bind(DbUuid(tenant.as_uuid()))
                        .push_bind(*period)
                        .push_bind(DbTime::new(*start))
                        .push_bind(key.as_str())
                        .push_bind(tool.as_str())
                        .push_bind(agg.calls)
                        .push_bind(agg.billable)
                        .push_bind(agg.errors)
                        .push_bind(agg.request_bytes)
                        .push_bind(agg.response_bytes)
                        .push_bind(agg.units)
                        .push_bind(agg.latency_us_sum);
                });
                qb.push(
                    " ON CONFLICT (tenant_id, period, period_start, key_id, tool) DO UPDATE SET \
                     calls = usage_rollups.calls + excluded.calls, \
                     billable = usage_rollups.billable + excluded.billable, \
                     errors = usage_rollups.errors + excluded.errors, \
                     request_bytes = usage_rollups.request_bytes + excluded.request_bytes, \
                     response_bytes = usage_rollups.response_bytes + excluded.response_bytes, \
                     units = usage_rollups.units + excluded.units, \
                     latency_us_sum = usage_rollups.latency_us_sum + excluded.latency_us_sum",
                );
                qb.build().execute(conn).await.map(|r| r.rows_affected())
            })?;
        }
        tx.commit().await
    }

    /// Usage of a tenant in `[from, to)`, grouped. Key and tool groupings read the hourly
    /// roll-ups (so `from`/`to` count in whole hours); day and hour read their own.
    pub async fn usage_report(
        &self,
        tenant: TenantId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        grouping: UsageGrouping,
    ) -> Result<Vec<UsageRow>, StoreError> {
        let (period, column) = match grouping {
            UsageGrouping::Key => ("hour", "key_id"),
            UsageGrouping::Tool => ("hour", "tool"),
            UsageGrouping::Hour => ("hour", "period_start"),
            UsageGrouping::Day => ("day", "period_start"),
        };
        let width = if period == "day" {
            TimeDelta::days(1)
        } else {
            TimeDelta::hours(1)
        };
        let from = from.duration_trunc(width).unwrap_or(from);
        let sql = format!(
            "SELECT {column} AS grp, {SUMS} FROM usage_rollups WHERE tenant_id = $1 AND period = $2 \
             AND period_start >= $3 AND period_start < $4 GROUP BY {column} ORDER BY {column}"
        );
        let mut tx = self.tenant_tx(tenant, false).await?;
        let rows = with_conn!(&mut tx.tx, conn => {
            let raw = sqlx::query(&sql)
                .bind(DbUuid(tenant.as_uuid()))
                .bind(period)
                .bind(DbTime::new(from))
                .bind(DbTime::new(to))
                .fetch_all(&mut *conn)
                .await?;
            let mut out = Vec::with_capacity(raw.len());
            for row in &raw {
                use sqlx::Row as _;
                let group = if column == "period_start" {
                    row.try_get::<DbTime, _>("grp")?.0.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                } else {
                    row.try_get::<String, _>("grp")?
                };
                let sums = <ReportRow as sqlx::FromRow<_>>::from_row(row)?;
                out.push(sums.into_row(group));
            }
            Ok::<_, sqlx::Error>(out)
        })?;
        tx.commit().await?;
        Ok(rows)
    }

    /// Billable calls of a key since `since` (quota accounting), from the daily roll-ups.
    pub async fn billable_calls_since(
        &self,
        tenant: TenantId,
        key: ApiKeyId,
        since: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut tx = self.tenant_tx(tenant, false).await?;
        let n: Option<i64> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_scalar(
                "SELECT CAST(SUM(billable) AS BIGINT) FROM usage_rollups WHERE tenant_id = $1 AND period = 'day' \
                 AND key_id = $2 AND period_start >= $3",
            )
            .bind(DbUuid(tenant.as_uuid()))
            .bind(key.to_string())
            .bind(DbTime::new(since))
            .fetch_one(conn)
            .await
        })?;
        tx.commit().await?;
        Ok(n.map_or(0, |n| u64::try_from(n).unwrap_or(0)))
    }
}
