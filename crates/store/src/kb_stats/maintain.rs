//! Maintenance of the knowledge-base tables: planner statistics, HNSW rebuilds, the FTS5
//! merge. Platform-level, on a dedicated connection as the schema owner.

use std::str::FromStr;
use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor};

use super::hnsw_index_name;
use crate::{Backend, StoreConfig, StoreError};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReindexDone {
    pub dimension: usize,
    pub index: String,
    pub duration_ms: f64,
}

/// What [`kb_maintain`] did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MaintainOutcome {
    pub analyzed: Vec<&'static str>,
    pub analyze_ms: f64,
    pub reindexed: Vec<ReindexDone>,
    /// SQLite: the FTS5 index was merged into one segment.
    pub fts_optimized: bool,
    pub fts_optimize_ms: f64,
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

/// Any fixed key: one maintenance run at a time across every replica.
const MAINTAIN_LOCK: i64 = 0x0063_6169_726e_6b62; // "cairnkb"

/// Refreshes planner statistics and rebuilds the HNSW indexes of `reindex` (dimensions).
/// Platform-level: runs on a dedicated connection as the connecting user, who owns the
/// tables (the application role may not ANALYZE or REINDEX them). On PostgreSQL, REINDEX
/// CONCURRENTLY keeps the index usable while it is rebuilt and cannot run in a
/// transaction, so every statement runs on its own. On SQLite there is no HNSW index:
/// ANALYZE and an FTS5 merge, which holds the write lock while it runs. A REINDEX cut
/// short leaves an invalid `kb_chunks_hnsw_<dim>_ccnew` index behind (PostgreSQL's rule),
/// which the operator drops; the working index stays in place.
pub async fn kb_maintain(cfg: &StoreConfig, reindex: &[usize]) -> Result<MaintainOutcome, StoreError> {
    let mut names = Vec::with_capacity(reindex.len());
    for &dim in reindex {
        let name = hnsw_index_name(dim)
            .ok_or_else(|| StoreError::Config(format!("there is no HNSW index for dimension {dim}")))?;
        names.push((dim, name));
    }
    let mut out = MaintainOutcome {
        analyzed: Vec::new(),
        analyze_ms: 0.0,
        reindexed: Vec::new(),
        fts_optimized: false,
        fts_optimize_ms: 0.0,
    };
    match Backend::from_url(&cfg.url)? {
        Backend::Sqlite => {
            let opts = SqliteConnectOptions::from_str(&cfg.url)
                .map_err(|e| StoreError::Config(format!("invalid SQLite URL: {e}")))?
                .busy_timeout(Duration::from_secs(30));
            let mut conn = opts.connect().await?;
            let started = Instant::now();
            conn.execute("ANALYZE").await?;
            out.analyze_ms = ms(started.elapsed());
            out.analyzed = vec!["kb_chunks", "kb_documents"];
            let started = Instant::now();
            conn.execute("INSERT INTO kb_chunks_fts (kb_chunks_fts) VALUES ('optimize')")
                .await?;
            out.fts_optimize_ms = ms(started.elapsed());
            out.fts_optimized = true;
            conn.close().await?;
        }
        Backend::Postgres => {
            let opts = PgConnectOptions::from_str(&cfg.url)
                .map_err(|e| StoreError::Config(format!("invalid PostgreSQL URL: {e}")))?
                .application_name("cairn-maintain");
            let mut conn = opts.connect().await?;
            let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(MAINTAIN_LOCK)
                .fetch_one(&mut conn)
                .await?;
            if !locked {
                conn.close().await?;
                return Err(StoreError::Conflict(
                    "knowledge-base maintenance is already running".into(),
                ));
            }
            let started = Instant::now();
            // Raw strings go out as simple queries: no implicit transaction around them.
            conn.execute("ANALYZE kb_chunks").await?;
            conn.execute("ANALYZE kb_documents").await?;
            out.analyze_ms = ms(started.elapsed());
            out.analyzed = vec!["kb_chunks", "kb_documents"];
            for (dimension, index) in names {
                let started = Instant::now();
                conn.execute(format!("REINDEX INDEX CONCURRENTLY {index}").as_str())
                    .await?;
                out.reindexed.push(ReindexDone {
                    dimension,
                    index,
                    duration_ms: ms(started.elapsed()),
                });
            }
            // Closing the session releases the advisory lock.
            conn.close().await?;
        }
    }
    Ok(out)
}
