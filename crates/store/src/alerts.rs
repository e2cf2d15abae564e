//! Alert rules, the audit counts they watch, and their fire/suppress state. Firing is a
//! conditional update of the rule's state row, so concurrent evaluators (replicas) fire a
//! rule once per cool-down and count the rest as suppressed. A tenant's rules count its own
//! events; platform rules (the operator's) count every tenant's and the platform's.

use cairn_core::alert::{ActionPattern, GroupBy, Severity};
use cairn_core::ids::TenantId;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::is_unique_violation;
use crate::scope::EitherTx;
use crate::types::{DbTime, DbUuid};
use crate::{Store, StoreError};

#[derive(Debug, Clone, Serialize)]
pub struct AlertRule {
    pub id: String,
    pub name: String,
    pub action: ActionPattern,
    /// Only events with this outcome count (`success`, `failure`, `denied`), if set.
    pub outcome: Option<String>,
    pub threshold: i64,
    pub window_secs: i64,
    pub group_by: GroupBy,
    pub cooldown_secs: i64,
    pub severity: Severity,
    pub email_to: Option<String>,
    pub webhook: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct RuleRow {
    id: String,
    name: String,
    action: String,
    outcome: Option<String>,
    threshold: i64,
    window_secs: i64,
    group_by: String,
    cooldown_secs: i64,
    severity: String,
    email_to: Option<String>,
    webhook: bool,
    created_at: DbTime,
}

impl TryFrom<RuleRow> for AlertRule {
    type Error = StoreError;
    fn try_from(r: RuleRow) -> Result<Self, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("alert_rules: bad {what}"));
        Ok(Self {
            action: ActionPattern::parse(&r.action).map_err(|_| corrupt("action"))?,
            group_by: GroupBy::parse(&r.group_by).ok_or_else(|| corrupt("group_by"))?,
            severity: Severity::parse(&r.severity).ok_or_else(|| corrupt("severity"))?,
            id: r.id,
            name: r.name,
            outcome: r.outcome,
            threshold: r.threshold,
            window_secs: r.window_secs,
            cooldown_secs: r.cooldown_secs,
            email_to: r.email_to,
            webhook: r.webhook,
            created_at: r.created_at.0,
        })
    }
}

const RULE_COLUMNS: &str = "id, name, action, outcome, threshold, window_secs, group_by, cooldown_secs, severity, \
                            email_to, webhook, created_at";

/// Whose rules: a tenant's, or the platform's (the operator's, across tenants).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertScope {
    Tenant(TenantId),
    Platform,
}

/// Scope-dependent parts of the SQL. Platform tables key their rows by the nil UUID.
struct Tables {
    rules: &'static str,
    state: &'static str,
    key_col: &'static str,
    key: DbUuid,
}

impl AlertScope {
    fn tables(self) -> Tables {
        match self {
            Self::Tenant(t) => Tables {
                rules: "alert_rules",
                state: "alert_state",
                key_col: "tenant_id",
                key: DbUuid(t.as_uuid()),
            },
            Self::Platform => Tables {
                rules: "platform_alert_rules",
                state: "platform_alert_state",
                key_col: "scope_id",
                key: DbUuid(uuid::Uuid::nil()),
            },
        }
    }
}

/// What an evaluation decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FireDecision {
    /// Fire now; `suppressed` alerts were held back by the cool-down since the last one.
    Fire { suppressed: i64 },
    /// Within the cool-down: counted as suppressed.
    Suppressed,
}

impl Store {
    async fn scope_tx(&self, scope: AlertScope, write: bool) -> Result<EitherTx, StoreError> {
        let tenant = match scope {
            AlertScope::Tenant(t) => Some(t),
            AlertScope::Platform => None,
        };
        EitherTx::begin(self, tenant, write).await
    }

    pub async fn create_alert_rule(&self, scope: AlertScope, rule: &AlertRule) -> Result<AlertRule, StoreError> {
        let Tables {
            rules, key_col, key, ..
        } = scope.tables();
        let sql = format!(
            "INSERT INTO {rules} ({RULE_COLUMNS}, {key_col}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
             $12, $13) RETURNING {RULE_COLUMNS}"
        );
        let mut tx = self.scope_tx(scope, true).await?;
        let row: Result<RuleRow, sqlx::Error> = with_conn!(tx.tx(), conn => {
            sqlx::query_as(&sql)
                .bind(&rule.id).bind(&rule.name).bind(rule.action.as_str()).bind(rule.outcome.as_deref())
                .bind(rule.threshold).bind(rule.window_secs).bind(rule.group_by.as_str()).bind(rule.cooldown_secs)
                .bind(rule.severity.as_str()).bind(rule.email_to.as_deref()).bind(rule.webhook)
                .bind(DbTime::new(rule.created_at)).bind(key)
                .fetch_one(conn).await
        });
        let row = row.map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict(format!("an alert rule named {} exists", rule.name))
            } else {
                e.into()
            }
        })?;
        tx.commit().await?;
        row.try_into()
    }

    pub async fn alert_rules(&self, scope: AlertScope) -> Result<Vec<AlertRule>, StoreError> {
        let Tables {
            rules, key_col, key, ..
        } = scope.tables();
        let sql = format!("SELECT {RULE_COLUMNS} FROM {rules} WHERE {key_col} = $1 ORDER BY name");
        let mut tx = self.scope_tx(scope, false).await?;
        let rows: Vec<RuleRow> = with_conn!(tx.tx(), conn => {
            sqlx::query_as(&sql).bind(key).fetch_all(conn).await
        })?;
        tx.commit().await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    pub async fn delete_alert_rule(&self, scope: AlertScope, name: &str) -> Result<bool, StoreError> {
        let Tables {
            rules,
            state,
            key_col,
            key,
        } = scope.tables();
        let mut tx = self.scope_tx(scope, true).await?;
        let n = with_conn!(tx.tx(), conn => {
            sqlx::query(&format!(
                "DELETE FROM {state} WHERE {key_col} = $1 AND rule_id IN (SELECT id FROM {rules} WHERE {key_col} = $1 AND name = $2)"
            ))
            .bind(key).bind(name).execute(&mut *conn).await?;
            sqlx::query(&format!("DELETE FROM {rules} WHERE {key_col} = $1 AND name = $2"))
                .bind(key).bind(name).execute(&mut *conn).await.map(|r| r.rows_affected())
        })?;
        tx.commit().await?;
        Ok(n > 0)
    }

    /// Audit events matching the rule in [`since`, `until`], in `group`: the tenant's own,
    /// or for a platform rule every tenant's plus the platform's. The window ends at the
    /// event being evaluated, so the count does not depend on how many later events the
    /// writer happened to store already.
    pub async fn count_for_alert(
        &self,
        scope: AlertScope,
        rule: &AlertRule,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        group: Option<&str>,
    ) -> Result<i64, StoreError> {
        let grouped = |tenant_part: bool| match (rule.group_by, group) {
            (GroupBy::SourceIp, Some(_)) => " AND source_ip = $5",
            (GroupBy::Actor, Some(_)) => " AND actor_kind || ':' || COALESCE(actor_id, '') = $5",
            (GroupBy::Tenant, Some(_)) if tenant_part => " AND CAST(tenant_id AS TEXT) = $5",
            // Platform events belong to no tenant: they count in the "" group.
            (GroupBy::Tenant, Some(_)) => " AND $5 = ''",
            _ => " AND $5 IS NULL",
        };
        // An exact action is compared with `=` so the (…, action, occurred_at) indexes serve
        // it; a LIKE with a bound pattern cannot use them on PostgreSQL.
        let (action_sql, action) = if rule.action.as_str().ends_with('*') {
            ("action LIKE $3 ESCAPE '\\'", rule.action.like())
        } else {
            ("action = $3", rule.action.as_str().to_owned())
        };
        let filter =
            format!("occurred_at >= $2 AND occurred_at <= $6 AND {action_sql} AND ($4 IS NULL OR outcome = $4)");
        let (sql, key) = match scope {
            AlertScope::Tenant(t) => (
                format!(
                    "SELECT count(*) FROM audit_events WHERE tenant_id = $1 AND {filter}{}",
                    grouped(true)
                ),
                DbUuid(t.as_uuid()),
            ),
            // $1 is unused here; bound anyway so both forms share their parameters.
            AlertScope::Platform => (
                format!(
                    "SELECT (SELECT count(*) FROM audit_events WHERE $1 IS NOT NULL AND {filter}{}) + \
                     (SELECT count(*) FROM platform_audit_events WHERE {filter}{})",
                    grouped(true),
                    grouped(false)
                ),
                DbUuid(uuid::Uuid::nil()),
            ),
        };
        // A tenant group is named by its id (`ten_…`); the column holds the bare UUID.
        let tenant_group = match rule.group_by {
            GroupBy::Tenant => group.map(|g| match g.parse::<TenantId>() {
                Ok(t) => t.as_uuid().hyphenated().to_string(),
                Err(_) => String::new(),
            }),
            _ => None,
        };
        let group = tenant_group.as_deref().or(group);
        let mut tx = self.scope_tx(scope, false).await?;
        let n: i64 = with_conn!(tx.tx(), conn => {
            sqlx::query_scalar(&sql)
                .bind(key).bind(DbTime::new(since)).bind(action)
                .bind(rule.outcome.as_deref()).bind(group).bind(DbTime::new(until))
                .fetch_one(conn).await
        })?;
        tx.commit().await?;
        Ok(n)
    }

    /// Fires the rule for `group_key` unless it fired within the cool-down; then counts
    /// this one as suppressed. Atomic per (rule, group), across replicas.
    pub async fn decide_alert(
        &self,
        scope: AlertScope,
        rule: &AlertRule,
        group_key: &str,
        now: DateTime<Utc>,
    ) -> Result<FireDecision, StoreError> {
        let Tables {
            state, key_col, key: t, ..
        } = scope.tables();
        let cutoff = DbTime::new(now - chrono::Duration::seconds(rule.cooldown_secs));
        let mut tx = self.scope_tx(scope, true).await?;
        // The state row is locked (PostgreSQL; SQLite's write transaction is exclusive) so
        // the read-then-decide below is one step for every concurrent evaluator.
        let lock = match tx.tx() {
            crate::scope::Tx::Postgres(_) => " FOR UPDATE",
            crate::scope::Tx::Sqlite(_) => "",
        };
        let decision = with_conn!(tx.tx(), conn => {
            sqlx::query(&format!(
                "INSERT INTO {state} ({key_col}, rule_id, group_key, last_fired_at, suppressed) \
                 VALUES ($1, $2, $3, NULL, 0) ON CONFLICT ({key_col}, rule_id, group_key) DO NOTHING",
            ))
            .bind(t).bind(&rule.id).bind(group_key).execute(&mut *conn).await?;
            let sql = format!(
                "SELECT last_fired_at, suppressed FROM {state} \
                 WHERE {key_col} = $1 AND rule_id = $2 AND group_key = $3{lock}"
            );
            let (last, suppressed): (Option<DbTime>, i64) = sqlx::query_as(&sql)
                .bind(t).bind(&rule.id).bind(group_key).fetch_one(&mut *conn).await?;
            if last.is_none_or(|l| l.0 <= cutoff.0) {
                sqlx::query(&format!(
                    "UPDATE {state} SET last_fired_at = $4, suppressed = 0 \
                     WHERE {key_col} = $1 AND rule_id = $2 AND group_key = $3",
                ))
                .bind(t).bind(&rule.id).bind(group_key).bind(DbTime::new(now)).execute(&mut *conn).await?;
                FireDecision::Fire { suppressed }
            } else {
                sqlx::query(&format!(
                    "UPDATE {state} SET suppressed = suppressed + 1 \
                     WHERE {key_col} = $1 AND rule_id = $2 AND group_key = $3",
                ))
                .bind(t).bind(&rule.id).bind(group_key).execute(&mut *conn).await?;
                FireDecision::Suppressed
            }
        });
        tx.commit().await?;
        Ok(decision)
    }

    /// Per rule of the scope: when it last fired (any group) and how many alerts its
    /// cool-downs are holding back now (all groups).
    pub async fn alert_rule_states(
        &self,
        scope: AlertScope,
    ) -> Result<Vec<(String, Option<DateTime<Utc>>, i64)>, StoreError> {
        let Tables {
            state, key_col, key, ..
        } = scope.tables();
        let sql = format!(
            "SELECT rule_id, max(last_fired_at), CAST(COALESCE(sum(suppressed), 0) AS BIGINT) FROM {state} \
             WHERE {key_col} = $1 GROUP BY rule_id"
        );
        let mut tx = self.scope_tx(scope, false).await?;
        let rows: Vec<(String, Option<DbTime>, i64)> = with_conn!(tx.tx(), conn => {
            sqlx::query_as(&sql).bind(key).fetch_all(conn).await
        })?;
        tx.commit().await?;
        Ok(rows.into_iter().map(|(id, at, n)| (id, at.map(|t| t.0), n)).collect())
    }

    /// Alerts a rule's cool-down is currently holding back, per group.
    pub async fn suppressed_alerts(&self, scope: AlertScope, rule_id: &str) -> Result<i64, StoreError> {
        let Tables {
            state, key_col, key, ..
        } = scope.tables();
        let mut tx = self.scope_tx(scope, false).await?;
        // sum() of a bigint is numeric on PostgreSQL: cast back.
        let sql = format!(
            "SELECT CAST(COALESCE(sum(suppressed), 0) AS BIGINT) FROM {state} WHERE {key_col} = $1 AND rule_id = $2"
        );
        let n: Option<i64> = with_conn!(tx.tx(), conn => {
            sqlx::query_scalar(&sql).bind(key).bind(rule_id).fetch_one(conn).await
        })?;
        tx.commit().await?;
        Ok(n.unwrap_or(0))
    }
}
