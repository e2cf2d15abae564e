-- Knowledge bases: documents, chunks with embeddings (pgvector) and full-text vectors.
-- Needs pgvector >= 0.8 (hnsw.iterative_scan); the store checks before migrating and
-- names the requirement when it is missing.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE knowledge_bases (
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id              uuid NOT NULL,
    name            text NOT NULL,
    -- The embedding model every vector of this base comes from (NULL: lexical only).
    model_id        text,
    dimension       integer,
    encrypted       boolean NOT NULL DEFAULT false,
    -- Bumped by every change to the base's chunks: in-memory indexes compare it.
    generation      bigint NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name)
);

CREATE TABLE kb_documents (
    tenant_id       uuid NOT NULL,
    kb_id           uuid NOT NULL,
    id              uuid NOT NULL,
    source_id       text NOT NULL,
    title           text NOT NULL,
    content_type    text NOT NULL,
    content_hash    text NOT NULL,
    -- Clear text, or NULL when the base is encrypted and `content_sealed` holds it.
    content         text,
    content_sealed  bytea,
    tags            jsonb NOT NULL DEFAULT '[]',
    bytes           bigint NOT NULL,
    chunk_count     integer NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    -- Names the row in the associated data of `content_sealed` (re-encryption walks it).
    row_key         text GENERATED ALWAYS AS (id::text) STORED,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, kb_id, source_id),
    FOREIGN KEY (tenant_id, kb_id) REFERENCES knowledge_bases (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX kb_documents_created ON kb_documents (tenant_id, kb_id, created_at);

CREATE TABLE kb_chunks (
    tenant_id       uuid NOT NULL,
    kb_id           uuid NOT NULL,
    document_id     uuid NOT NULL,
    ord             integer NOT NULL,
    text            text,
    text_sealed     bytea,
    heading_path    jsonb NOT NULL DEFAULT '[]',
    start_offset    integer NOT NULL,
    end_offset      integer NOT NULL,
    dim             integer,
    embedding       vector,
    tsv             tsvector GENERATED ALWAYS AS (
                        to_tsvector('english', coalesce(heading_path::text, '') || ' ' || coalesce(text, ''))
                    ) STORED,
    row_key         text GENERATED ALWAYS AS (document_id::text || ':' || ord::text) STORED,
    PRIMARY KEY (tenant_id, document_id, ord),
    FOREIGN KEY (tenant_id, document_id) REFERENCES kb_documents (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX kb_chunks_kb ON kb_chunks (tenant_id, kb_id);
CREATE INDEX kb_chunks_row_key ON kb_chunks (tenant_id, row_key);
CREATE INDEX kb_documents_row_key ON kb_documents (tenant_id, row_key);
CREATE INDEX kb_chunks_tsv ON kb_chunks USING gin (tsv);
-- HNSW needs a fixed dimension: one partial expression index per supported dimension.
-- Queries repeat the cast and the `dim = …` predicate so the planner matches them.
CREATE INDEX kb_chunks_hnsw_256 ON kb_chunks USING hnsw ((embedding::vector(256)) vector_cosine_ops) WHERE dim = 256;
CREATE INDEX kb_chunks_hnsw_384 ON kb_chunks USING hnsw ((embedding::vector(384)) vector_cosine_ops) WHERE dim = 384;
CREATE INDEX kb_chunks_hnsw_768 ON kb_chunks USING hnsw ((embedding::vector(768)) vector_cosine_ops) WHERE dim = 768;
CREATE INDEX kb_chunks_hnsw_1024 ON kb_chunks USING hnsw ((embedding::vector(1024)) vector_cosine_ops) WHERE dim = 1024;
CREATE INDEX kb_chunks_hnsw_1536 ON kb_chunks USING hnsw ((embedding::vector(1536)) vector_cosine_ops) WHERE dim = 1536;

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['knowledge_bases', 'kb_documents', 'kb_chunks'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_scope ON %I
            USING (cairn_platform_scope() OR tenant_id = cairn_current_tenant())
            WITH CHECK (cairn_platform_scope() OR tenant_id = cairn_current_tenant())', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO cairn_app', t);
    END LOOP;
END
$$;

-- Metering of knowledge-base work counts units (chunks ingested, results returned).
ALTER TABLE usage_events ADD COLUMN units bigint NOT NULL DEFAULT 0;
ALTER TABLE usage_rollups ADD COLUMN units bigint NOT NULL DEFAULT 0;
