//! The tamper-evident chain over a tenant's audit events (and one over platform
//! events). Each event stores its position (`seq`), the hash of the event before it
//! and its own hash over both and over every stored field, so editing, deleting or
//! reordering a row breaks the chain at that row. Pure logic: the store computes links
//! while inserting and hands rows back for verification.

use sha2::{Digest, Sha256};

/// The hash before the first event of a chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The stored fields of one event, exactly as they are read back from the database.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainFields<'a> {
    pub id: &'a str,
    /// Microseconds since the epoch (both backends store microseconds).
    pub occurred_at_micros: i64,
    pub actor_kind: &'a str,
    pub actor_id: Option<&'a str>,
    pub action: &'a str,
    pub target: Option<&'a str>,
    pub outcome: &'a str,
    pub request_id: Option<&'a str>,
    pub source_ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub details: &'a serde_json::Value,
}

/// The hash of an event at `seq` in `chain` following `prev`.
pub fn link_hash(chain: &str, seq: i64, prev: &str, f: &ChainFields<'_>) -> String {
    let mut h = Sha256::new();
    let mut put = |part: Option<&[u8]>| match part {
        // Length-prefixed, with absent distinct from empty: no two field lists collide.
        Some(p) => {
            h.update([1u8]);
            h.update((p.len() as u64).to_le_bytes());
            h.update(p);
        }
        None => h.update([0u8]),
    };
    put(Some(b"cairn-audit-v1"));
    put(Some(chain.as_bytes()));
    put(Some(&seq.to_le_bytes()));
    put(Some(prev.as_bytes()));
    put(Some(f.id.as_bytes()));
    put(Some(&f.occurred_at_micros.to_le_bytes()));
    put(Some(f.actor_kind.as_bytes()));
    put(f.actor_id.map(str::as_bytes));
    put(Some(f.action.as_bytes()));
    put(f.target.map(str::as_bytes));
    put(Some(f.outcome.as_bytes()));
    put(f.request_id.map(str::as_bytes));
    put(f.source_ip.map(str::as_bytes));
    put(f.user_agent.map(str::as_bytes));
    let details = canonical_json(f.details);
    put(Some(details.as_bytes()));
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// JSON with object keys sorted at every level, so a database that reorders keys
/// (PostgreSQL `jsonb`) hands back the same text that was hashed.
pub fn canonical_json(v: &serde_json::Value) -> String {
    fn write(v: &serde_json::Value, out: &mut String) {
        match v {
            serde_json::Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::Value::String((*k).clone()).to_string());
                    out.push(':');
                    if let Some(x) = map.get(*k) {
                        write(x, out);
                    }
                }
                out.push('}');
            }
            serde_json::Value::Array(items) => {
                out.push('[');
                for (i, x) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(x, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(v, &mut out);
    out
}

/// One stored link as read back for verification.
#[derive(Debug, Clone)]
pub struct StoredLink<'a> {
    pub seq: i64,
    pub prev_hash: &'a str,
    pub hash: &'a str,
    pub fields: ChainFields<'a>,
}

/// Why a chain does not verify, at the first row where it breaks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Break {
    pub seq: i64,
    pub id: String,
    pub reason: BreakReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakReason {
    /// The row's content does not match its hash: the row was edited.
    ContentChanged,
    /// The row does not follow the row before it: rows were deleted or reordered.
    LinkBroken,
    /// A position is missing or repeated.
    SequenceGap,
    /// The chain head (where the next event is appended) does not name the newest stored
    /// row: the head was edited, or the newest rows were deleted. `seq` is the head's,
    /// `id` the newest verified row's (empty if none).
    HeadMismatch,
}

/// Walks a chain in `seq` order, one page at a time. `expected` carries (seq, hash)
/// of the last verified row between pages.
#[derive(Debug, Clone)]
pub struct Verifier {
    chain: String,
    start: Option<(i64, String)>,
    last: Option<(i64, String)>,
    last_id: String,
    /// The head as read before the walk, and the hash of the row at its `seq` once seen.
    head: Option<(i64, String)>,
    at_head: Option<String>,
    pub verified: u64,
}

impl Verifier {
    /// Starts at the chain's beginning, or after a checkpoint (seq, hash) left by a purge.
    pub fn new(chain: &str, start: Option<(i64, String)>) -> Self {
        Self {
            chain: chain.to_owned(),
            last: start.clone(),
            start,
            last_id: String::new(),
            head: None,
            at_head: None,
            verified: 0,
        }
    }

    /// The chain head (seq, hash) as stored, read before the first page: [`Verifier::finish`]
    /// checks it against the rows.
    pub fn expect_head(mut self, head: Option<(i64, String)>) -> Self {
        self.head = head;
        self
    }

    /// Checks the next row; the first break found is returned and verification stops there.
    pub fn check(&mut self, link: &StoredLink<'_>) -> Result<(), Break> {
        let fail = |reason| Break {
            seq: link.seq,
            id: link.fields.id.to_owned(),
            reason,
        };
        let (want_seq, want_prev) = match &self.last {
            Some((seq, hash)) => (seq + 1, hash.as_str()),
            None => (1, GENESIS),
        };
        if link.seq != want_seq {
            return Err(fail(BreakReason::SequenceGap));
        }
        if link.hash != link_hash(&self.chain, link.seq, link.prev_hash, &link.fields) {
            return Err(fail(BreakReason::ContentChanged));
        }
        if link.prev_hash != want_prev {
            return Err(fail(BreakReason::LinkBroken));
        }
        if self.head.as_ref().is_some_and(|(seq, _)| *seq == link.seq) {
            self.at_head = Some(link.hash.to_owned());
        }
        self.last = Some((link.seq, link.hash.to_owned()));
        link.fields.id.clone_into(&mut self.last_id);
        self.verified += 1;
        Ok(())
    }

    /// After the last row: the head read before the walk must name a verified row (or the
    /// checkpoint, or the genesis of an empty chain). Rows past it may have been appended
    /// during the walk, but then the head has moved on too: `head_seq_now` is the head's
    /// `seq` read after the walk. A head and its rows are written in one transaction, so
    /// a consistent database never fails this.
    pub fn finish(&self, head_seq_now: Option<i64>) -> Result<(), Break> {
        let last_seq = self.last.as_ref().map_or(0, |(seq, _)| *seq);
        let fail = |seq| Break {
            seq,
            id: self.last_id.clone(),
            reason: BreakReason::HeadMismatch,
        };
        let Some((head_seq, head_hash)) = &self.head else {
            return if self.last.is_none() { Ok(()) } else { Err(fail(0)) };
        };
        let expected = match &self.start {
            Some((seq, hash)) if seq == head_seq => Some(hash.as_str()),
            None if *head_seq == 0 => Some(GENESIS),
            _ => self.at_head.as_deref(),
        };
        if expected != Some(head_hash.as_str()) {
            return Err(fail(*head_seq));
        }
        if last_seq > *head_seq && head_seq_now.is_none_or(|now| now < last_seq) {
            return Err(fail(head_seq_now.unwrap_or(*head_seq)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields<'a>(id: &'a str, action: &'a str, details: &'a serde_json::Value) -> ChainFields<'a> {
        ChainFields {
            id,
            occurred_at_micros: 1_700_000_000_000_000,
            actor_kind: "operator",
            actor_id: None,
            action,
            target: Some("key_1"),
            outcome: "success",
            request_id: None,
            source_ip: Some("127.0.0.1"),
            user_agent: None,
            details,
        }
    }

    fn build(chain: &str, rows: &[ChainFields<'_>]) -> Vec<(i64, String, String)> {
        let mut prev = GENESIS.to_owned();
        let mut out = Vec::new();
        for (i, f) in rows.iter().enumerate() {
            let seq = i64::try_from(i).unwrap() + 1;
            let hash = link_hash(chain, seq, &prev, f);
            out.push((seq, prev.clone(), hash.clone()));
            prev = hash;
        }
        out
    }

    fn verify(chain: &str, rows: &[ChainFields<'_>], links: &[(i64, String, String)]) -> Result<u64, Break> {
        let mut v = Verifier::new(chain, None);
        for (f, (seq, prev, hash)) in rows.iter().zip(links) {
            v.check(&StoredLink {
                seq: *seq,
                prev_hash: prev,
                hash,
                fields: f.clone(),
            })?;
        }
        Ok(v.verified)
    }

    #[test]
    fn an_intact_chain_verifies_and_every_kind_of_tampering_is_found_where_it_happened() {
        let d = json!({"b": 1, "a": [1, {"y": 2, "x": 1}]});
        let rows = vec![
            fields("e1", "key.created", &d),
            fields("e2", "key.revoked", &d),
            fields("e3", "auth.failed", &d),
        ];
        let links = build("ten_1", &rows);
        assert_eq!(verify("ten_1", &rows, &links), Ok(3));

        // Edited content: the edited row is reported.
        let mut edited = rows.clone();
        edited[1].action = "key.created";
        let err = verify("ten_1", &edited, &links).unwrap_err();
        assert_eq!(
            (err.seq, err.id.as_str(), err.reason),
            (2, "e2", BreakReason::ContentChanged)
        );

        // A deleted row: the next one no longer follows.
        let (r, l) = (
            vec![rows[0].clone(), rows[2].clone()],
            vec![links[0].clone(), links[2].clone()],
        );
        assert_eq!(verify("ten_1", &r, &l).unwrap_err().reason, BreakReason::SequenceGap);

        // A row rewritten consistently with a new prev hash still breaks the link.
        let mut l = links.clone();
        l[1].1 = "f".repeat(64);
        l[1].2 = link_hash("ten_1", 2, &l[1].1, &rows[1]);
        assert_eq!(verify("ten_1", &rows, &l).unwrap_err().reason, BreakReason::LinkBroken);

        // The same rows in another tenant's chain do not verify.
        assert!(verify("ten_2", &rows, &links).is_err());
    }

    #[test]
    fn key_order_and_absent_versus_empty_fields_are_handled() {
        let a = json!({"b": 1, "a": 2});
        let b: serde_json::Value = serde_json::from_str(r#"{"a":2,"b":1}"#).unwrap();
        assert_eq!(canonical_json(&a), canonical_json(&b));
        let (f1, mut f2) = (fields("e", "x", &a), fields("e", "x", &a));
        f2.actor_id = Some("");
        assert_ne!(link_hash("c", 1, GENESIS, &f1), link_hash("c", 1, GENESIS, &f2));
    }

    #[test]
    fn a_chain_resumes_after_a_checkpoint() {
        let d = json!(null);
        let rows = vec![fields("e1", "a", &d), fields("e2", "b", &d)];
        let links = build("c", &rows);
        let mut v = Verifier::new("c", Some((1, links[0].2.clone())));
        let (seq, prev, hash) = &links[1];
        assert!(v
            .check(&StoredLink {
                seq: *seq,
                prev_hash: prev,
                hash,
                fields: rows[1].clone()
            })
            .is_ok());
    }

    #[test]
    fn the_head_must_name_the_newest_row() {
        let d = json!(null);
        let rows = vec![fields("e1", "a", &d), fields("e2", "b", &d), fields("e3", "c", &d)];
        let links = build("c", &rows);
        let walk = |head: Option<(i64, String)>, upto: usize| {
            let mut v = Verifier::new("c", None).expect_head(head);
            for (f, (seq, prev, hash)) in rows.iter().zip(&links).take(upto) {
                v.check(&StoredLink {
                    seq: *seq,
                    prev_hash: prev,
                    hash,
                    fields: f.clone(),
                })
                .unwrap();
            }
            v
        };
        let head = |i: usize| Some((links[i].0, links[i].2.clone()));
        assert_eq!(walk(head(2), 3).finish(Some(3)), Ok(()));
        // Rows appended during the walk: the head read afterwards has moved on.
        assert_eq!(walk(head(1), 3).finish(Some(3)), Ok(()));
        // A head moved back (the next append would collide) or deleted.
        let back = walk(head(1), 3).finish(Some(2)).unwrap_err();
        assert_eq!((back.seq, back.reason), (2, BreakReason::HeadMismatch));
        assert!(walk(None, 3).finish(None).is_err());
        // An edited head hash, and a head ahead of the rows (the newest rows deleted).
        assert!(walk(Some((3, "f".repeat(64))), 3).finish(Some(3)).is_err());
        assert!(walk(head(2), 2).finish(Some(3)).is_err());
        // An empty chain: no head, or a head at the genesis.
        assert_eq!(walk(None, 0).finish(None), Ok(()));
        assert_eq!(walk(Some((0, GENESIS.to_owned())), 0).finish(Some(0)), Ok(()));
    }
}
