-- Audit events the writer could not append to their chain (for instance because an edited
-- chain head makes every insert collide with a stored link): kept whole here instead of
-- being retried forever or dropped. Keyed by chain: the tenant id, or the nil UUID for
-- platform events. `event` is the event as JSON text (text, so any content fits).
CREATE TABLE audit_dead_letters (
    chain_id     TEXT NOT NULL,
    id           TEXT NOT NULL,
    occurred_at  TEXT NOT NULL,
    action       TEXT NOT NULL,
    event        TEXT NOT NULL,
    error        TEXT NOT NULL,
    set_aside_at TEXT NOT NULL,
    PRIMARY KEY (chain_id, id)
);
