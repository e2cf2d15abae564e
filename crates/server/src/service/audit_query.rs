//! Reading the audit trail, for REST and the CLI: filters validated once here, listings
//! newest first in keyset pages, and exports (JSONL or CSV) produced page by page, so
//! memory stays flat whatever the length of the trail (docs/audit.md).

use axum::body::Bytes;
use cairn_core::audit::Outcome;
use cairn_core::ids::TenantId;
use cairn_store::audit_query::{ActionMatch, AuditFilter, AuditPosition, AuditRecord};
use cairn_store::{Page, Store, StoreError};
use chrono::{DateTime, Utc};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::json;

use super::List;
use crate::error::ApiError;
use crate::state::Ctx;

/// Events per database round trip of an export.
pub const EXPORT_PAGE: u32 = 1000;
pub const DEFAULT_LIMIT: u32 = 50;
const ACTOR_KINDS: [&str; 5] = ["operator", "user", "cli", "system", "anonymous"];
const OUTCOMES: [Outcome; 3] = [Outcome::Success, Outcome::Failure, Outcome::Denied];

/// `GET …/audit` query string. Values are text so that each bad one is reported with
/// its own field name. (Not a flattened shared struct: serde's `flatten` hands query
/// values over as strings and `limit` would no longer parse as a number.)
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// RFC 3339, inclusive.
    pub from: Option<String>,
    /// RFC 3339, exclusive.
    pub to: Option<String>,
    /// An exact action, or a prefix ending in `*` (`api_key.*`).
    pub action: Option<String>,
    /// An actor kind (`user`), or kind and id (`user:usr_…`).
    pub actor: Option<String>,
    /// `success`, `failure` or `denied`.
    pub outcome: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

/// `GET …/audit/export` query string: the filters of [`AuditQuery`] and a format.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub action: Option<String>,
    pub actor: Option<String>,
    pub outcome: Option<String>,
    /// `jsonl` (default) or `csv`.
    pub format: Option<String>,
}

/// An absent parameter and an empty one (`?action=`) mean the same: no filter.
fn given(v: Option<&String>) -> Option<&str> {
    v.map(String::as_str).map(str::trim).filter(|s| !s.is_empty())
}

fn parse_time(field: &'static str, value: Option<&String>) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(text) = given(value) else { return Ok(None) };
    let parse = |t: &str| DateTime::parse_from_rfc3339(t).map(|d| d.with_timezone(&Utc));
    // An unencoded `+` in a query string arrives as a space: `…T10:00:00 02:00`.
    let repaired = || match text.rfind(' ') {
        Some(i) if i > 10 => parse(&format!("{}+{}", &text[..i], &text[i + 1..])),
        _ => parse(text),
    };
    parse(text).or_else(|_| repaired()).map(Some).map_err(|_| {
        ApiError::invalid_field(
            field,
            format!("{field}: must be an RFC 3339 time such as 2025-01-31T00:00:00Z"),
        )
    })
}

fn parse_action(value: Option<&String>) -> Result<Option<ActionMatch>, ApiError> {
    let Some(text) = given(value) else { return Ok(None) };
    let (body, prefix) = match text.strip_suffix('*') {
        Some(body) => (body, true),
        None => (text, false),
    };
    let ok = body.len() <= 100
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'));
    if !ok {
        return Err(ApiError::invalid_field(
            "action",
            "action: an action such as api_key.created, or a prefix ending in * such as api_key.*",
        ));
    }
    Ok(Some(if prefix {
        ActionMatch::Prefix(body.to_owned())
    } else {
        ActionMatch::Exact(body.to_owned())
    }))
}

fn parse_actor(value: Option<&String>) -> Result<(Option<String>, Option<String>), ApiError> {
    let Some(text) = given(value) else {
        return Ok((None, None));
    };
    let (kind, id) = match text.split_once(':') {
        Some((kind, id)) => (kind, Some(id)),
        None => (text, None),
    };
    if !ACTOR_KINDS.contains(&kind) {
        return Err(ApiError::invalid_field(
            "actor",
            format!("actor: a kind ({}) or kind:id", ACTOR_KINDS.join(", ")),
        ));
    }
    if id.is_some_and(|id| id.is_empty() || id.len() > 128 || id.chars().any(char::is_control)) {
        return Err(ApiError::invalid_field(
            "actor",
            "actor: the id after the colon must be 1–128 characters",
        ));
    }
    Ok((Some(kind.to_owned()), id.map(str::to_owned)))
}

fn parse_outcome(value: Option<&String>) -> Result<Option<String>, ApiError> {
    let Some(text) = given(value) else { return Ok(None) };
    match OUTCOMES.iter().find(|o| o.as_str() == text) {
        Some(o) => Ok(Some(o.as_str().to_owned())),
        None => Err(ApiError::invalid_field(
            "outcome",
            "outcome: success, failure or denied",
        )),
    }
}

struct FilterText<'a> {
    from: Option<&'a String>,
    to: Option<&'a String>,
    action: Option<&'a String>,
    actor: Option<&'a String>,
    outcome: Option<&'a String>,
}

impl FilterText<'_> {
    fn parse(&self) -> Result<AuditFilter, ApiError> {
        let from = parse_time("from", self.from)?;
        let to = parse_time("to", self.to)?;
        if let (Some(f), Some(t)) = (from, to) {
            if f >= t {
                return Err(ApiError::invalid_field("from", "from: must be before to"));
            }
        }
        let (actor_kind, actor_id) = parse_actor(self.actor)?;
        Ok(AuditFilter {
            from,
            to,
            action: parse_action(self.action)?,
            actor_kind,
            actor_id,
            outcome: parse_outcome(self.outcome)?,
        })
    }
}

impl AuditQuery {
    pub fn filter(&self) -> Result<AuditFilter, ApiError> {
        FilterText {
            from: self.from.as_ref(),
            to: self.to.as_ref(),
            action: self.action.as_ref(),
            actor: self.actor.as_ref(),
            outcome: self.outcome.as_ref(),
        }
        .parse()
    }

    fn page(&self) -> Result<Page, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=Page::MAX_LIMIT).contains(&limit) {
            return Err(ApiError::invalid_field(
                "limit",
                format!("limit: 1–{}", Page::MAX_LIMIT),
            ));
        }
        Ok(Page {
            limit,
            after: given(self.cursor.as_ref()).map(str::to_owned),
        })
    }
}

/// The tenant named by `slug`, or the platform trail for `None`.
async fn scope(ctx: &Ctx, slug: Option<&str>) -> Result<(Option<TenantId>, String), ApiError> {
    match slug {
        Some(slug) => {
            let t = super::tenants::resolve(ctx, slug).await?;
            Ok((Some(t.id), t.slug.to_string()))
        }
        None => Ok((None, "platform".to_owned())),
    }
}

/// One page of a tenant's audit events (`None`: the platform's), newest first.
pub async fn list(ctx: &Ctx, slug: Option<&str>, query: AuditQuery) -> Result<List<AuditRecord>, ApiError> {
    let filter = query.filter()?;
    let page = query.page()?;
    let (tenant, _) = scope(ctx, slug).await?;
    // Make this replica's queued events visible to the reader.
    ctx.state.audit.flush().await;
    Ok(ctx.store().query_audit_events(tenant, &filter, &page).await?.into())
}

impl ExportQuery {
    pub fn filter(&self) -> Result<AuditFilter, ApiError> {
        FilterText {
            from: self.from.as_ref(),
            to: self.to.as_ref(),
            action: self.action.as_ref(),
            actor: self.actor.as_ref(),
            outcome: self.outcome.as_ref(),
        }
        .parse()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Csv,
}

impl Format {
    pub fn parse(value: Option<&str>) -> Result<Self, ApiError> {
        match value.map(str::trim).unwrap_or("") {
            "" | "jsonl" => Ok(Self::Jsonl),
            "csv" => Ok(Self::Csv),
            _ => Err(ApiError::invalid_field("format", "format: jsonl or csv")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jsonl => "jsonl",
            Self::Csv => "csv",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Jsonl => "application/x-ndjson",
            Self::Csv => "text/csv; charset=utf-8",
        }
    }
}

/// CSV columns: the JSONL keys, in the same order.
const CSV_HEADER: [&str; 15] = [
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
    "hash",
];

/// An export in progress: the next page is read only when the previous one has been
/// handed on, so at most one page of rows and its encoding are in memory.
pub struct Export {
    store: Store,
    tenant: Option<TenantId>,
    filter: AuditFilter,
    format: Format,
    after: Option<AuditPosition>,
    /// Read before the response starts, so that a failing database is a normal error.
    first: Option<Vec<u8>>,
    started: bool,
    done: bool,
    /// Events encoded so far.
    pub rows: u64,
    /// A name for the downloaded file.
    pub file_name: String,
}

impl std::fmt::Debug for Export {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Export")
            .field("tenant", &self.tenant)
            .field("format", &self.format)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

/// Starts an export of a tenant's trail (`None`: the platform's), oldest first. Without
/// `to`, it ends at the moment of the request: a fixed range, which also leaves out the
/// `audit.exported` event this call records.
pub async fn export(ctx: &Ctx, slug: Option<&str>, query: ExportQuery) -> Result<Export, ApiError> {
    let mut filter = query.filter()?;
    let format = Format::parse(query.format.as_deref())?;
    let (tenant, name) = scope(ctx, slug).await?;
    let now = Utc::now();
    if filter.to.is_none() {
        if filter.from.is_some_and(|f| f >= now) {
            return Err(ApiError::invalid_field("from", "from: must be in the past"));
        }
        filter.to = Some(now);
    }
    ctx.state.audit.flush().await;
    let mut export = Export {
        store: ctx.store().clone(),
        tenant,
        filter,
        format,
        after: None,
        first: None,
        started: false,
        done: false,
        rows: 0,
        file_name: format!("audit-{name}-{}.{}", now.format("%Y%m%dT%H%M%SZ"), format.as_str()),
    };
    export.first = export.read_page().await?;
    let fmt_time = |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339());
    let mut event = ctx.event("audit.exported", Outcome::Success).details(json!({
        "format": format.as_str(),
        "from": fmt_time(export.filter.from),
        "to": fmt_time(export.filter.to),
        "action": query.action,
        "actor": query.actor,
        "outcome": query.outcome,
    }));
    if let Some(t) = tenant {
        event = event.tenant(t);
    }
    ctx.audit(event).await;
    Ok(export)
}

impl Export {
    pub fn format(&self) -> Format {
        self.format
    }

    /// The next piece of the file; `None` once everything has been handed out.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(first) = self.first.take() {
            return Ok(Some(first));
        }
        self.read_page().await
    }

    async fn read_page(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        if self.done {
            return Ok(None);
        }
        let header = !std::mem::replace(&mut self.started, true);
        let page = self
            .store
            .audit_events_after(self.tenant, &self.filter, self.after, EXPORT_PAGE)
            .await?;
        self.done = page.len() < usize::try_from(EXPORT_PAGE).unwrap_or(usize::MAX);
        if let Some(last) = page.last() {
            self.after = Some(AuditPosition::of(&last.event));
        }
        self.rows += u64::try_from(page.len()).unwrap_or(u64::MAX);
        let out = match self.format {
            Format::Jsonl => jsonl(&page)?,
            Format::Csv => csv_rows(&page, header)?,
        };
        Ok((!out.is_empty()).then_some(out))
    }

    /// The rest of the export as a byte stream for a response body. A database error
    /// part-way ends the stream with an error (the client sees a truncated transfer, not
    /// a complete-looking file); it is logged here.
    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
        futures_util::stream::try_unfold(self, |mut export| async move {
            match export.next_chunk().await {
                Ok(Some(chunk)) => Ok(Some((Bytes::from(chunk), export))),
                Ok(None) => Ok(None),
                Err(e) => {
                    tracing::error!(error = %e, rows = export.rows, "audit export stopped part-way");
                    Err(std::io::Error::other("audit export failed"))
                }
            }
        })
    }
}

fn jsonl(page: &[AuditRecord]) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(page.len() * 512);
    for record in page {
        serde_json::to_writer(&mut out, record).map_err(|e| StoreError::Corrupt(format!("audit export: {e}")))?;
        out.push(b'\n');
    }
    Ok(out)
}

fn opt(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("")
}

fn csv_rows(page: &[AuditRecord], header: bool) -> Result<Vec<u8>, StoreError> {
    let fail = |e: csv::Error| StoreError::Corrupt(format!("audit export: {e}"));
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::with_capacity(page.len() * 512));
    if header {
        w.write_record(CSV_HEADER).map_err(fail)?;
    }
    for r in page {
        let e = &r.event;
        let id = e.id.to_string();
        let tenant = e.tenant_id.map(|t| t.to_string()).unwrap_or_default();
        let time = e.occurred_at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
        let details = e.details.to_string();
        let seq = r.seq.map(|s| s.to_string()).unwrap_or_default();
        w.write_record([
            id.as_str(),
            &tenant,
            &time,
            &e.actor_kind,
            opt(&e.actor_id),
            &e.action,
            opt(&e.target),
            &e.outcome,
            opt(&e.request_id),
            opt(&e.source_ip),
            opt(&e.user_agent),
            &details,
            &seq,
            opt(&r.prev_hash),
            opt(&r.hash),
        ])
        .map_err(fail)?;
    }
    w.into_inner().map_err(|e| fail(e.into_error().into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> ExportQuery {
        let mut p = ExportQuery::default();
        for (k, v) in pairs {
            let v = Some((*v).to_owned());
            match *k {
                "from" => p.from = v,
                "to" => p.to = v,
                "action" => p.action = v,
                "actor" => p.actor = v,
                "outcome" => p.outcome = v,
                _ => unreachable!(),
            }
        }
        p
    }

    fn field_of(pairs: &[(&str, &str)]) -> Option<&'static str> {
        params(pairs).filter().err().and_then(|e| e.field)
    }

    #[test]
    fn filters_parse() {
        let f = params(&[
            ("action", "api_key.*"),
            ("actor", "user:usr_1"),
            ("outcome", "denied"),
            ("from", "2025-01-01T00:00:00 01:00"),
            ("to", ""),
        ])
        .filter()
        .unwrap();
        assert_eq!(f.action, Some(ActionMatch::Prefix("api_key.".into())));
        assert_eq!(
            (f.actor_kind.as_deref(), f.actor_id.as_deref()),
            (Some("user"), Some("usr_1"))
        );
        assert_eq!(f.outcome.as_deref(), Some("denied"));
        assert_eq!(f.from.unwrap().to_rfc3339(), "2024-12-31T23:00:00+00:00");
        assert!(f.to.is_none());
        let f = params(&[("action", "tenant.created"), ("actor", "cli")])
            .filter()
            .unwrap();
        assert_eq!(f.action, Some(ActionMatch::Exact("tenant.created".into())));
        assert_eq!((f.actor_kind.as_deref(), f.actor_id), (Some("cli"), None));
    }

    #[test]
    fn bad_filters_name_their_field() {
        assert_eq!(field_of(&[("from", "yesterday")]), Some("from"));
        assert_eq!(field_of(&[("to", "2025-13-01T00:00:00Z")]), Some("to"));
        assert_eq!(
            field_of(&[("from", "2025-02-01T00:00:00Z"), ("to", "2025-01-01T00:00:00Z")]),
            Some("from")
        );
        assert_eq!(field_of(&[("action", "api*key")]), Some("action"));
        assert_eq!(field_of(&[("action", "a b")]), Some("action"));
        assert_eq!(field_of(&[("actor", "robot")]), Some("actor"));
        assert_eq!(field_of(&[("actor", "user:")]), Some("actor"));
        assert_eq!(field_of(&[("outcome", "ok")]), Some("outcome"));
        assert!(Format::parse(Some("xml")).is_err());
        let limit = |l| AuditQuery {
            limit: Some(l),
            ..AuditQuery::default()
        };
        assert!(limit(0).page().is_err() && limit(201).page().is_err() && limit(200).page().is_ok());
    }
}
