-- Knowledge bases. See the PostgreSQL twin. Vectors are little-endian f32 BLOBs scanned
-- exactly in memory; lexical search is FTS5 (bm25) over the chunk text.
CREATE TABLE knowledge_bases (
    tenant_id       TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id              TEXT NOT NULL,
    name            TEXT NOT NULL,
    model_id        TEXT,
    dimension       INTEGER,
    encrypted       INTEGER NOT NULL DEFAULT 0,
    generation      INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name)
);

CREATE TABLE kb_documents (
    tenant_id       TEXT NOT NULL,
    kb_id           TEXT NOT NULL,
    id              TEXT NOT NULL,
    source_id       TEXT NOT NULL,
    title           TEXT NOT NULL,
    content_type    TEXT NOT NULL,
    content_hash    TEXT NOT NULL,
    content         TEXT,
    content_sealed  BLOB,
    tags            TEXT NOT NULL DEFAULT '[]',
    bytes           INTEGER NOT NULL,
    chunk_count     INTEGER NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    row_key         TEXT GENERATED ALWAYS AS (id) STORED,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, kb_id, source_id),
    FOREIGN KEY (tenant_id, kb_id) REFERENCES knowledge_bases (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX kb_documents_created ON kb_documents (tenant_id, kb_id, created_at);

CREATE TABLE kb_chunks (
    -- The FTS5 index refers to chunks by this rowid.
    seq             INTEGER PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    kb_id           TEXT NOT NULL,
    document_id     TEXT NOT NULL,
    ord             INTEGER NOT NULL,
    text            TEXT,
    text_sealed     BLOB,
    heading_path    TEXT NOT NULL DEFAULT '[]',
    start_offset    INTEGER NOT NULL,
    end_offset      INTEGER NOT NULL,
    dim             INTEGER,
    embedding       BLOB,
    row_key         TEXT GENERATED ALWAYS AS (document_id || ':' || ord) STORED,
    UNIQUE (tenant_id, document_id, ord),
    FOREIGN KEY (tenant_id, document_id) REFERENCES kb_documents (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX kb_chunks_kb ON kb_chunks (tenant_id, kb_id, seq);
CREATE INDEX kb_chunks_row_key ON kb_chunks (tenant_id, row_key);
CREATE INDEX kb_documents_row_key ON kb_documents (tenant_id, row_key);

-- External-content FTS5 table kept in step by triggers; encrypted chunks (text NULL)
-- are not indexed.
CREATE VIRTUAL TABLE kb_chunks_fts USING fts5 (
    heading, body, content = '', contentless_delete = 1, tokenize = 'porter unicode61'
);
CREATE TRIGGER kb_chunks_fts_insert AFTER INSERT ON kb_chunks WHEN new.text IS NOT NULL BEGIN
    INSERT INTO kb_chunks_fts (rowid, heading, body) VALUES (new.seq, new.heading_path, new.text);
END;
CREATE TRIGGER kb_chunks_fts_delete AFTER DELETE ON kb_chunks WHEN old.text IS NOT NULL BEGIN
    DELETE FROM kb_chunks_fts WHERE rowid = old.seq;
END;


-- Metering of knowledge-base work counts units (chunks ingested, results returned).
ALTER TABLE usage_events ADD COLUMN units INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_rollups ADD COLUMN units INTEGER NOT NULL DEFAULT 0;
