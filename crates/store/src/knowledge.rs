//! Knowledge bases and their documents. A document and its chunks are written in one
//! transaction, so a failed ingest leaves nothing behind and a replaced document is
//! never seen half old, half new. Text arrives either clear or already sealed (an
//! encrypted base): this module never encrypts.

use cairn_core::ids::{DocumentId, KbId, TenantId};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;

use crate::error::is_unique_violation;
use crate::scope::Tx;
use crate::types::{DbTime, DbUuid};
use crate::{Store, StoreError};

#[derive(Debug, Clone, Serialize)]
pub struct KnowledgeBase {
    pub id: KbId,
    pub name: String,
    /// The embedding model of every vector in this base (`None`: lexical search only).
    pub model_id: Option<String>,
    pub dimension: Option<i32>,
    /// Document and chunk text are stored encrypted (no lexical index then).
    pub encrypted: bool,
    #[serde(skip)]
    pub generation: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct KbRow {
    id: DbUuid,
    name: String,
    model_id: Option<String>,
    dimension: Option<i32>,
    encrypted: bool,
    generation: i64,
    created_at: DbTime,
    updated_at: DbTime,
}

impl From<KbRow> for KnowledgeBase {
    fn from(r: KbRow) -> Self {
        Self {
            id: KbId::from_uuid(r.id.0),
            name: r.name,
            model_id: r.model_id,
            dimension: r.dimension,
            encrypted: r.encrypted,
            generation: r.generation,
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
        }
    }
}

const KB_COLUMNS: &str = "id, name, model_id, dimension, encrypted, generation, created_at, updated_at";

#[derive(Clone, Serialize)]
pub struct Document {
    pub id: DocumentId,
    #[serde(skip)]
    pub kb_id: KbId,
    pub source_id: String,
    pub title: String,
    pub content_type: String,
    pub content_hash: String,
    pub tags: Vec<String>,
    pub bytes: i64,
    pub chunk_count: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Clear content (not in listings); `None` when sealed or not loaded.
    #[serde(skip)]
    pub content: Option<String>,
    #[serde(skip)]
    pub content_sealed: Option<Vec<u8>>,
}

impl std::fmt::Debug for Document {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Document")
            .field("id", &self.id)
            .field("source_id", &self.source_id)
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, sqlx::FromRow)]
struct DocRow {
    id: DbUuid,
    kb_id: DbUuid,
    source_id: String,
    title: String,
    content_type: String,
    content_hash: String,
    tags: Json<Vec<String>>,
    bytes: i64,
    chunk_count: i32,
    created_at: DbTime,
    updated_at: DbTime,
    content: Option<String>,
    content_sealed: Option<Vec<u8>>,
}

impl From<DocRow> for Document {
    fn from(r: DocRow) -> Self {
        Self {
            id: DocumentId::from_uuid(r.id.0),
            kb_id: KbId::from_uuid(r.kb_id.0),
            source_id: r.source_id,
            title: r.title,
            content_type: r.content_type,
            content_hash: r.content_hash,
            tags: r.tags.0,
            bytes: r.bytes,
            chunk_count: r.chunk_count,
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
            content: r.content,
            content_sealed: r.content_sealed,
        }
    }
}

const DOC_META: &str = "id, kb_id, source_id, title, content_type, content_hash, tags, bytes, chunk_count, \
                        created_at, updated_at, NULL AS content, NULL AS content_sealed";
const DOC_FULL: &str = "id, kb_id, source_id, title, content_type, content_hash, tags, bytes, chunk_count, \
                        created_at, updated_at, content, content_sealed";

/// A chunk to store: clear or sealed text, its place in the document, its vector.
pub struct NewChunk {
    pub text: Option<String>,
    pub text_sealed: Option<Vec<u8>>,
    pub heading_path: Vec<String>,
    pub start: i32,
    pub end: i32,
    pub embedding: Option<Vec<f32>>,
}

pub struct NewDocument<'a> {
    /// Chosen by the caller (sealed text names its row); kept when the source id exists.
    pub id: DocumentId,
    pub source_id: &'a str,
    pub title: &'a str,
    pub content_type: &'a str,
    pub content_hash: &'a str,
    pub content: Option<&'a str>,
    pub content_sealed: Option<&'a [u8]>,
    pub tags: &'a [String],
    pub bytes: i64,
    pub chunks: &'a [NewChunk],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PutOutcome {
    Created,
    Replaced,
    Unchanged,
}

/// Rows per multi-row INSERT: under SQLite's 32 766 bound parameters at 9 per row.
const CHUNK_BATCH: usize = 1000;

pub(crate) fn vector_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(crate) fn vector_from_bytes(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

impl Store {
    pub async fn create_knowledge_base(
        &self,
        tenant: TenantId,
        name: &str,
        model: Option<(&str, i32)>,
        encrypted: bool,
    ) -> Result<KnowledgeBase, StoreError> {
        let now = DbTime::now();
        let sql = format!(
            "INSERT INTO knowledge_bases (tenant_id, {KB_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $7) \
             RETURNING {KB_COLUMNS}"
        );
        let mut tx = self.tenant_tx(tenant, true).await?;
        let row: Result<KbRow, sqlx::Error> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql)
                .bind(DbUuid(tenant.as_uuid()))
                .bind(DbUuid(KbId::new().as_uuid()))
                .bind(name)
                .bind(model.map(|m| m.0))
                .bind(model.map(|m| m.1))
                .bind(encrypted)
                .bind(now)
                .fetch_one(conn)
                .await
        });
        let row = row.map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict(format!("a knowledge base named {name} already exists"))
            } else {
                e.into()
            }
        })?;
        tx.commit().await?;
        Ok(row.into())
    }

    pub async fn knowledge_base(&self, tenant: TenantId, name: &str) -> Result<Option<KnowledgeBase>, StoreError> {
        let sql = format!("SELECT {KB_COLUMNS} FROM knowledge_bases WHERE tenant_id = $1 AND name = $2");
        let mut tx = self.tenant_tx(tenant, false).await?;
        let row: Option<KbRow> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql).bind(DbUuid(tenant.as_uuid())).bind(name).fetch_optional(conn).await?
        });
        tx.commit().await?;
        Ok(row.map(Into::into))
    }

    pub async fn list_knowledge_bases(&self, tenant: TenantId) -> Result<Vec<KnowledgeBase>, StoreError> {
        let sql = format!("SELECT {KB_COLUMNS} FROM knowledge_bases WHERE tenant_id = $1 ORDER BY name");
        let mut tx = self.tenant_tx(tenant, false).await?;
        let rows: Vec<KbRow> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql).bind(DbUuid(tenant.as_uuid())).fetch_all(conn).await?
        });
        tx.commit().await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Deletes a base with its documents and chunks. False if it did not exist.
    pub async fn delete_knowledge_base(&self, tenant: TenantId, kb: KbId) -> Result<bool, StoreError> {
        let mut tx = self.tenant_tx(tenant, true).await?;
        let t = DbUuid(tenant.as_uuid());
        let k = DbUuid(kb.as_uuid());
        let done = with_conn!(&mut tx.tx, conn => {
            // Chunks first: the FTS triggers run per deleted chunk row.
            sqlx::query("DELETE FROM kb_chunks WHERE tenant_id = $1 AND kb_id = $2")
                .bind(t).bind(k).execute(&mut *conn).await?;
            sqlx::query("DELETE FROM knowledge_bases WHERE tenant_id = $1 AND id = $2")
                .bind(t).bind(k).execute(&mut *conn).await?.rows_affected()
        });
        tx.commit().await?;
        Ok(done > 0)
    }

    /// The current id and content hash stored for a source id, if any: lets the caller
    /// skip embedding unchanged content and keep the document id on replacement.
    pub async fn document_by_source(
        &self,
        tenant: TenantId,
        kb: KbId,
        source_id: &str,
    ) -> Result<Option<Document>, StoreError> {
        let sql = format!("SELECT {DOC_META} FROM kb_documents WHERE tenant_id = $1 AND kb_id = $2 AND source_id = $3");
        let mut tx = self.tenant_tx(tenant, false).await?;
        let row: Option<DocRow> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql)
                .bind(DbUuid(tenant.as_uuid()))
                .bind(DbUuid(kb.as_uuid()))
                .bind(source_id)
                .fetch_optional(conn)
                .await?
        });
        tx.commit().await?;
        Ok(row.map(Into::into))
    }

    /// Creates or replaces the document with `doc.source_id`, all chunks included, in
    /// one transaction. Content with the stored hash is left alone (`Unchanged`).
    pub async fn put_document(
        &self,
        tenant: TenantId,
        kb: &KnowledgeBase,
        doc: NewDocument<'_>,
    ) -> Result<(Document, PutOutcome), StoreError> {
        let mut done = self.put_documents(tenant, kb, std::slice::from_ref(&doc)).await?;
        done.pop()
            .ok_or_else(|| StoreError::Corrupt("a one-document write returned nothing".into()))
    }

    /// Several documents in one transaction: all of them are written or none is. Bulk
    /// ingestion pays one commit (and one FTS flush on SQLite) per batch instead of per
    /// document; callers that need per-document isolation retry one by one on error.
    pub async fn put_documents(
        &self,
        tenant: TenantId,
        kb: &KnowledgeBase,
        docs: &[NewDocument<'_>],
    ) -> Result<Vec<(Document, PutOutcome)>, StoreError> {
        let mut tx = self.tenant_tx(tenant, true).await?;
        let t = DbUuid(tenant.as_uuid());
        let k = DbUuid(kb.id.as_uuid());
        let now = DbTime::now();
        let mut out = Vec::with_capacity(docs.len());
        for doc in docs {
            out.push(put_one(&mut tx.tx, t, k, now, doc).await?);
        }
        if out.iter().any(|(_, o)| *o != PutOutcome::Unchanged) {
            with_conn!(&mut tx.tx, conn => {
                sqlx::query("UPDATE knowledge_bases SET generation = generation + 1, updated_at = $3 \
                             WHERE tenant_id = $1 AND id = $2")
                    .bind(t).bind(k).bind(now).execute(conn).await?.rows_affected()
            });
        }
        tx.commit().await?;
        Ok(out)
    }

    /// One document with its content (clear or sealed).
    pub async fn document(&self, tenant: TenantId, kb: KbId, id: DocumentId) -> Result<Option<Document>, StoreError> {
        let sql = format!("SELECT {DOC_FULL} FROM kb_documents WHERE tenant_id = $1 AND kb_id = $2 AND id = $3");
        let mut tx = self.tenant_tx(tenant, false).await?;
        let row: Option<DocRow> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql)
                .bind(DbUuid(tenant.as_uuid()))
                .bind(DbUuid(kb.as_uuid()))
                .bind(DbUuid(id.as_uuid()))
                .fetch_optional(conn)
                .await?
        });
        tx.commit().await?;
        Ok(row.map(Into::into))
    }

    /// Documents of a base, newest first, without content.
    pub async fn list_documents(
        &self,
        tenant: TenantId,
        kb: KbId,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Document>, StoreError> {
        let sql = format!(
            "SELECT {DOC_META} FROM kb_documents WHERE tenant_id = $1 AND kb_id = $2 \
             ORDER BY created_at DESC, id LIMIT $3 OFFSET $4"
        );
        let mut tx = self.tenant_tx(tenant, false).await?;
        let rows: Vec<DocRow> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql)
                .bind(DbUuid(tenant.as_uuid()))
                .bind(DbUuid(kb.as_uuid()))
                .bind(limit)
                .bind(offset)
                .fetch_all(conn)
                .await?
        });
        tx.commit().await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Deletes a document and its chunks. False if it did not exist.
    pub async fn delete_document(&self, tenant: TenantId, kb: KbId, id: DocumentId) -> Result<bool, StoreError> {
        let mut tx = self.tenant_tx(tenant, true).await?;
        let (t, k, d) = (DbUuid(tenant.as_uuid()), DbUuid(kb.as_uuid()), DbUuid(id.as_uuid()));
        let done = with_conn!(&mut tx.tx, conn => {
            sqlx::query("DELETE FROM kb_chunks WHERE tenant_id = $1 AND kb_id = $2 AND document_id = $3")
                .bind(t).bind(k).bind(d).execute(&mut *conn).await?;
            let n = sqlx::query("DELETE FROM kb_documents WHERE tenant_id = $1 AND kb_id = $2 AND id = $3")
                .bind(t).bind(k).bind(d).execute(&mut *conn).await?.rows_affected();
            sqlx::query("UPDATE knowledge_bases SET generation = generation + 1 WHERE tenant_id = $1 AND id = $2")
                .bind(t).bind(k).execute(&mut *conn).await?;
            n
        });
        tx.commit().await?;
        Ok(done > 0)
    }
}

/// One document inside the caller's transaction.
async fn put_one(
    tx: &mut Tx,
    t: DbUuid,
    k: DbUuid,
    now: DbTime,
    doc: &NewDocument<'_>,
) -> Result<(Document, PutOutcome), StoreError> {
    let find = format!("SELECT {DOC_META} FROM kb_documents WHERE tenant_id = $1 AND kb_id = $2 AND source_id = $3");
    let existing: Option<DocRow> = with_conn!(&mut *tx, conn => {
        sqlx::query_as(&find).bind(t).bind(k).bind(doc.source_id).fetch_optional(conn).await?
    });
    if let Some(row) = existing.as_ref().filter(|o| o.content_hash == doc.content_hash) {
        // The row just read is the stored document: nothing to write, nothing to re-read.
        return Ok((row.clone().into(), PutOutcome::Unchanged));
    }
    let id = existing.as_ref().map_or(DbUuid(doc.id.as_uuid()), |o| o.id);
    let chunk_count = i32::try_from(doc.chunks.len()).unwrap_or(i32::MAX);
    let tags = Json(doc.tags.to_vec());
    let write = if existing.is_some() {
        "UPDATE kb_documents SET title = $4, content_type = $5, content_hash = $6, content = $7, \
         content_sealed = $8, tags = $9, bytes = $10, chunk_count = $11, updated_at = $12 \
         WHERE tenant_id = $1 AND kb_id = $2 AND id = $3"
    } else {
        "INSERT INTO kb_documents (tenant_id, kb_id, id, source_id, title, content_type, content_hash, content, \
         content_sealed, tags, bytes, chunk_count, created_at, updated_at) \
         VALUES ($1, $2, $3, $13, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)"
    };
    let written: Result<_, sqlx::Error> = with_conn!(&mut *tx, conn => {
        if existing.is_some() {
            sqlx::query("DELETE FROM kb_chunks WHERE tenant_id = $1 AND document_id = $2")
                .bind(t).bind(id).execute(&mut *conn).await?;
        }
        sqlx::query(write)
            .bind(t).bind(k).bind(id)
            .bind(doc.title).bind(doc.content_type).bind(doc.content_hash)
            .bind(doc.content).bind(doc.content_sealed)
            .bind(&tags).bind(doc.bytes).bind(chunk_count).bind(now)
            .bind(doc.source_id)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
    });
    written.map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::Conflict(format!("document {} is being ingested concurrently", doc.source_id))
        } else {
            e.into()
        }
    })?;
    insert_chunks(tx, t, k, id, doc.chunks).await?;
    let again = format!("SELECT {DOC_META} FROM kb_documents WHERE tenant_id = $1 AND id = $2");
    let row: DocRow = with_conn!(&mut *tx, conn => {
        sqlx::query_as(&again).bind(t).bind(id).fetch_one(conn).await?
    });
    let outcome = if existing.is_some() {
        PutOutcome::Replaced
    } else {
        PutOutcome::Created
    };
    Ok((row.into(), outcome))
}

async fn insert_chunks(tx: &mut Tx, t: DbUuid, k: DbUuid, doc: DbUuid, chunks: &[NewChunk]) -> Result<(), StoreError> {
    for (batch_no, batch) in chunks.chunks(CHUNK_BATCH).enumerate() {
        let mut sql = String::from(
            "INSERT INTO kb_chunks (tenant_id, kb_id, document_id, ord, text, text_sealed, heading_path, \
             start_offset, end_offset, dim, embedding) VALUES ",
        );
        for i in 0..batch.len() {
            let b = 4 + i * 8;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!(
                "($1, $2, $3, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                b,
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6,
                b + 7
            ));
        }
        let first = batch_no * CHUNK_BATCH;
        match tx {
            Tx::Sqlite(conn) => {
                let mut q = sqlx::query(&sql).bind(t).bind(k).bind(doc);
                for (i, c) in batch.iter().enumerate() {
                    q = q
                        .bind(i32::try_from(first + i).unwrap_or(i32::MAX))
                        .bind(c.text.as_deref())
                        .bind(c.text_sealed.as_deref())
                        .bind(Json(&c.heading_path))
                        .bind(c.start)
                        .bind(c.end)
                        .bind(c.embedding.as_ref().map(|e| i32::try_from(e.len()).unwrap_or(0)))
                        .bind(c.embedding.as_deref().map(vector_bytes));
                }
                q.execute(&mut **conn).await?;
            }
            Tx::Postgres(conn) => {
                let mut q = sqlx::query(&sql).bind(t).bind(k).bind(doc);
                for (i, c) in batch.iter().enumerate() {
                    q = q
                        .bind(i32::try_from(first + i).unwrap_or(i32::MAX))
                        .bind(c.text.as_deref())
                        .bind(c.text_sealed.as_deref())
                        .bind(Json(&c.heading_path))
                        .bind(c.start)
                        .bind(c.end)
                        .bind(c.embedding.as_ref().map(|e| i32::try_from(e.len()).unwrap_or(0)))
                        .bind(c.embedding.clone().map(pgvector::Vector::from));
                }
                q.execute(&mut **conn).await?;
            }
        }
    }
    Ok(())
}
