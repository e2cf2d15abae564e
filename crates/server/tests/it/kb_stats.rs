//! Knowledge-base monitoring, called as the REST routes and the CLI will: stats, recall
//! probes, maintenance and the capacity report, on a corpus embedded by the built-in
//! model. Each test runs on the backend `CAIRN_TEST_BACKEND` names.

use cairn_core::ids::TenantId;
use cairn_core::tenant::Slug;
use cairn_server::kb::ingest::{ingest, IngestInput};
use cairn_server::kb::stats::{self, RECALL_K};
use cairn_server::kb::KbError;
use cairn_server::service::kb::resolve_kb;
use cairn_store::knowledge::KnowledgeBase;
use cairn_store::{Backend, StoreError};
use reqwest::StatusCode;
use serde_json::json;

use crate::common::{backend, TestApp};
use crate::kb::search;

const TOPICS: [(&str, &[&str]); 8] = [
    (
        "Billing",
        &[
            "invoice",
            "refund",
            "payment",
            "card",
            "currency",
            "subscription",
            "receipt",
            "tax",
            "discount",
            "charge",
            "ledger",
            "credit",
            "balance",
            "renewal",
            "plan",
        ],
    ),
    (
        "Security",
        &[
            "password",
            "encryption",
            "token",
            "session",
            "firewall",
            "audit",
            "certificate",
            "breach",
            "login",
            "key",
            "rotation",
            "phishing",
            "permission",
            "vault",
            "signature",
        ],
    ),
    (
        "Gardening",
        &[
            "tomato",
            "compost",
            "seedling",
            "trellis",
            "soil",
            "mulch",
            "pruning",
            "harvest",
            "basil",
            "watering",
            "greenhouse",
            "orchard",
            "weeds",
            "fertiliser",
            "blossom",
        ],
    ),
    (
        "Astronomy",
        &[
            "galaxy",
            "telescope",
            "nebula",
            "orbit",
            "comet",
            "eclipse",
            "planet",
            "star",
            "asteroid",
            "redshift",
            "quasar",
            "meteor",
            "constellation",
            "lunar",
            "solar",
        ],
    ),
    (
        "Cooking",
        &[
            "recipe", "oven", "flour", "simmer", "garlic", "butter", "saucepan", "knead", "roast", "spice", "broth",
            "pastry", "whisk", "marinade", "caramel",
        ],
    ),
    (
        "Sailing",
        &[
            "mainsail", "harbour", "anchor", "tide", "keel", "rudder", "mooring", "gale", "compass", "tack", "hull",
            "jib", "buoy", "current", "mast",
        ],
    ),
    (
        "Networking",
        &[
            "router",
            "packet",
            "latency",
            "bandwidth",
            "switch",
            "subnet",
            "dns",
            "gateway",
            "protocol",
            "cable",
            "wireless",
            "throughput",
            "routing",
            "vlan",
            "socket",
        ],
    ),
    (
        "Medicine",
        &[
            "patient",
            "diagnosis",
            "vaccine",
            "fever",
            "surgery",
            "dosage",
            "clinic",
            "symptom",
            "therapy",
            "antibiotic",
            "nurse",
            "allergy",
            "prescription",
            "recovery",
            "x-ray",
        ],
    ),
];
const GLUE: [&str; 12] = [
    "the", "every", "before", "after", "with", "without", "during", "because", "often", "never", "careful", "new",
];

/// A small deterministic generator: varied text without a dependency.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

/// Markdown documents on mixed topics: headings, paragraphs of topic words with some
/// words of another topic, so that their vectors spread out.
fn corpus(docs: usize, seed: u64) -> Vec<(String, String)> {
    let mut rng = Lcg(seed);
    (0..docs)
        .map(|d| {
            let (topic, words) = TOPICS[d % TOPICS.len()];
            let other = TOPICS[rng.next(TOPICS.len())].1;
            let mut md = format!("# {topic} notes {d}\n\n");
            for s in 0..4 + rng.next(4) {
                md.push_str(&format!(
                    "## {} {} {s}\n\n",
                    words[rng.next(words.len())],
                    other[rng.next(other.len())]
                ));
                for _ in 0..2 + rng.next(3) {
                    let sentence: Vec<&str> = (0..30 + rng.next(20))
                        .map(|_| match rng.next(10) {
                            0..=5 => words[rng.next(words.len())],
                            6 | 7 => other[rng.next(other.len())],
                            _ => GLUE[rng.next(GLUE.len())],
                        })
                        .collect();
                    md.push_str(&sentence.join(" "));
                    md.push_str(".\n\n");
                }
            }
            (format!("{}-{d}.md", topic.to_lowercase()), md)
        })
        .collect()
}

/// Small chunks, so that a few thousand come from a modest corpus.
async fn start() -> TestApp {
    TestApp::start_with(|c| {
        c.kb.chunk_tokens = 40;
        c.kb.chunk_overlap_tokens = 5;
    })
    .await
}

async fn tenant(app: &TestApp, slug: &str) -> TenantId {
    app.tenant(slug).await;
    let slug = Slug::parse(slug).unwrap();
    app.state.store.get_tenant_by_slug(&slug).await.unwrap().id
}

/// Ingests documents until the base holds at least `min_chunks`; returns (documents, chunks).
async fn fill(app: &TestApp, tenant: TenantId, kb: &KnowledgeBase, min_chunks: usize, seed: u64) -> (usize, usize) {
    let (mut documents, mut chunks) = (0, 0);
    for (source_id, md) in corpus(10_000, seed) {
        if chunks >= min_chunks {
            break;
        }
        let input = IngestInput {
            source_id: &source_id,
            title: None,
            content_type: "text/markdown",
            content: md.as_bytes(),
            tags: &[],
        };
        let done = ingest(&app.state, tenant, kb, input).await.unwrap();
        documents += 1;
        chunks += done.chunks;
    }
    (documents, chunks)
}

const DIM: usize = 256;

#[tokio::test]
async fn stats_report_what_a_base_holds() {
    let app = start().await;
    let acme = tenant(&app, "acme").await;
    let kb = resolve_kb(&app.state, acme, "default").await.unwrap();
    assert_eq!(kb.dimension, Some(DIM as i32), "the built-in model");
    let (documents, chunks) = fill(&app, acme, &kb, 300, 1).await;
    for query in ["refund of an invoice", "telescope and comet", "knead the pastry"] {
        let (status, found) = search(&app, "acme", "default", json!({"query": query})).await;
        assert_eq!(status, StatusCode::OK, "{found}");
    }

    let s = stats::stats(&app.state, acme, &kb, false).await.unwrap();
    assert_eq!((s.documents, s.chunks), (documents as i64, chunks as i64));
    assert!(s.bytes.text > 0 && s.bytes.documents > 0, "{s:?}");
    assert_eq!(s.bytes.vectors, (chunks * DIM * 4) as i64);
    assert_eq!(s.bytes.total, s.bytes.text + s.bytes.vectors + s.bytes.documents);
    assert!(s.lexical_index.size_bytes.unwrap() > 0, "{s:?}");
    let vi = s.vector_index.as_ref().unwrap();
    match backend() {
        Backend::Postgres => {
            assert_eq!(
                (vi.kind, vi.name.as_deref()),
                ("hnsw", Some("kb_chunks_hnsw_256")),
                "{vi:?}"
            );
            let p = vi.params.unwrap();
            assert_eq!((p.m, p.ef_construction, p.ef_search), (16, 64, 200));
            // More than the metapage and an empty graph: the vectors are in it.
            assert!(vi.size_bytes.unwrap() > (chunks * DIM * 4) as i64, "{vi:?}");
            assert_eq!(s.lexical_index.kind, "gin");
        }
        Backend::Sqlite => {
            assert_eq!(vi.kind, "exact-scan");
            // The searches loaded the base's slab.
            assert_eq!(vi.loaded_bytes, Some(chunks * (DIM * 4 + 24)), "{vi:?}");
            assert_eq!(s.lexical_index.kind, "fts5");
        }
    }
    let latency = s.latency.unwrap();
    assert_eq!(latency.samples, 3);
    assert!(latency.p50_us > 0 && latency.p50_us <= latency.p95_us && latency.p95_us <= latency.p99_us);
    assert!(s.recall.is_none(), "no probe unless asked");

    // Another tenant's base counts nothing of acme's; a base without vectors has no
    // vector index and nothing to probe.
    let globex = tenant(&app, "globex").await;
    let theirs = resolve_kb(&app.state, globex, "default").await.unwrap();
    let s = stats::stats(&app.state, globex, &theirs, true).await.unwrap();
    assert_eq!((s.documents, s.chunks, s.bytes.total), (0, 0, 0));
    assert_eq!(s.recall.unwrap().recall_at_10, None, "nothing to query");
    let (status, body) = app
        .post("/api/v1/tenants/acme/kb", json!({"name": "words", "vectors": false}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let words = resolve_kb(&app.state, acme, "words").await.unwrap();
    let s = stats::stats(&app.state, acme, &words, true).await.unwrap();
    assert!(s.vector_index.is_none() && s.recall.is_none(), "{s:?}");
    let refused = stats::recall_probe(&app.state, acme, &words, 10).await;
    assert!(matches!(refused, Err(KbError::Invalid("kb", _))), "{refused:?}");
}

#[tokio::test]
async fn recall_meets_the_target_and_postgres_searches_through_hnsw() {
    let app = start().await;
    let acme = tenant(&app, "acme").await;
    let kb = resolve_kb(&app.state, acme, "default").await.unwrap();
    let (_, chunks) = fill(&app, acme, &kb, 2000, 2).await;
    assert!(chunks >= 2000);

    // Enough queries that the few stored vectors HNSW reaches badly cannot sway the mean.
    let report = stats::recall_probe(&app.state, acme, &kb, 200).await.unwrap();
    eprintln!("{} chunks: {report:?}", chunks);
    assert_eq!((report.queries, report.k), (200, RECALL_K));
    let recall = report.recall_at_10.unwrap();
    match backend() {
        Backend::Postgres => {
            assert_eq!((report.method, report.ef_search), ("hnsw", Some(200)));
            assert!(recall >= 0.95, "{report:?}");
            // Planner statistics, as autovacuum keeps them: without any, PostgreSQL
            // guesses that one row matches the tenant and sorts it.
            stats::maintain(&app.state, false).await.unwrap();
            let query = app.state.store.kb_sample_vectors(acme, kb.id, DIM, 1).await.unwrap();
            let report = stats::recall_probe(&app.state, acme, &kb, 50).await.unwrap();
            assert_eq!(report.planner_uses_index, Some(true), "{report:?}");
            let plan = app
                .state
                .store
                .kb_explain_nearest(acme, kb.id, &query[0], 10)
                .await
                .unwrap()
                .unwrap();
            eprintln!(
                "{}",
                plan.lines()
                    .filter(|l| !l.contains("<=>"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            assert!(
                plan.contains("kb_chunks_hnsw_256"),
                "the search uses the HNSW index:\n{plan}"
            );
        }
        Backend::Sqlite => {
            assert_eq!(report.method, "exact-scan");
            assert_eq!(recall, 1.0, "{report:?}");
            assert_eq!(report.worst, Some(1.0));
        }
    }
    let s = stats::stats(&app.state, acme, &kb, true).await.unwrap();
    let probed = s.recall.unwrap();
    assert_eq!(probed.method, report.method);
    assert_eq!(probed.queries, app.state.config.kb.recall_probe_queries);
    eprintln!("index: {:?}", s.vector_index);
}

#[tokio::test]
async fn maintenance_analyzes_and_rebuilds_when_forced() {
    let app = start().await;
    let acme = tenant(&app, "acme").await;
    let kb = resolve_kb(&app.state, acme, "default").await.unwrap();
    let (_, chunks) = fill(&app, acme, &kb, 300, 3).await;
    let before = stats::stats(&app.state, acme, &kb, false).await.unwrap();
    assert!(before.table.last_analyze.is_none(), "{:?}", before.table);
    if backend() == Backend::Sqlite {
        assert!(!before.table.analyzed);
    }

    let report = stats::maintain(&app.state, false).await.unwrap();
    eprintln!("{}", serde_json::to_string_pretty(&report).unwrap());
    assert!(!report.forced);
    assert_eq!(report.outcome.analyzed, ["kb_chunks", "kb_documents"]);
    assert!(report.outcome.reindexed.is_empty(), "{report:?}");
    let after = stats::stats(&app.state, acme, &kb, false).await.unwrap();
    assert!(after.table.analyzed, "{:?}", after.table);
    match backend() {
        Backend::Postgres => {
            assert!(after.table.last_analyze.is_some(), "{:?}", after.table);
            let [ix] = &report.indexes[..] else {
                panic!("one index in use: {report:?}")
            };
            assert_eq!((ix.dimension, ix.index.as_str()), (DIM, "kb_chunks_hnsw_256"));
            assert_eq!(ix.recall.queries, app.state.config.kb.recall_probe_queries);
            assert!(ix.recall.recall_at_10.unwrap() >= 0.95, "{ix:?}");
            assert!(!ix.reindex && ix.reasons.is_empty(), "{ix:?}");
            // Counted by the ANALYZE of this run (every row sampled at this size).
            assert_eq!(ix.entries, Some(chunks as i64), "{ix:?}");
            assert!(!report.outcome.fts_optimized);
        }
        Backend::Sqlite => {
            assert!(report.indexes.is_empty(), "the scan is exact: nothing to rebuild");
            assert!(report.outcome.fts_optimized);
        }
    }

    let forced = stats::maintain(&app.state, true).await.unwrap();
    assert!(forced.forced);
    if backend() == Backend::Postgres {
        assert_eq!(forced.indexes[0].reasons, ["forced"]);
        let rebuilt: Vec<_> = forced.outcome.reindexed.iter().map(|r| r.index.as_str()).collect();
        assert_eq!(rebuilt, ["kb_chunks_hnsw_256"]);
        eprintln!("reindex took {} ms", forced.outcome.reindexed[0].duration_ms);
    }
    // The rebuilt index (PostgreSQL) still answers, as well as before.
    let probe = stats::recall_probe(&app.state, acme, &kb, 50).await.unwrap();
    assert!(probe.recall_at_10.unwrap() >= 0.95, "{probe:?}");
    let (status, found) = search(&app, "acme", "default", json!({"query": "compost and mulch", "k": 3})).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["results"].as_array().unwrap().len(), 3, "{found}");

    // One run at a time.
    let (a, b) = tokio::join!(stats::maintain(&app.state, false), stats::maintain(&app.state, false));
    let busy = [&a, &b]
        .iter()
        .filter(|r| matches!(r, Err(KbError::Store(StoreError::Conflict(_)))))
        .count();
    assert_eq!((busy, a.is_ok() || b.is_ok()), (1, true), "{a:?} {b:?}");
}

#[tokio::test]
async fn capacity_projects_todays_ingest() {
    let app = TestApp::start_with(|c| {
        c.kb.chunk_tokens = 40;
        c.kb.chunk_overlap_tokens = 5;
        // Far more memory than disk: the disk is the limit reached first.
        c.kb.capacity_memory_bytes = 1 << 50;
        c.kb.capacity_disk_bytes = 1 << 40;
    })
    .await;
    let acme = tenant(&app, "acme").await;
    let kb = resolve_kb(&app.state, acme, "default").await.unwrap();
    let today = chrono::Utc::now().date_naive();
    let (documents, chunks) = fill(&app, acme, &kb, 300, 4).await;
    let after = chrono::Utc::now().date_naive();
    // Planner statistics give PostgreSQL's index its entry count.
    stats::maintain(&app.state, false).await.unwrap();

    let report = stats::capacity(&app.state, acme, &kb).await.unwrap();
    eprintln!("{}", serde_json::to_string_pretty(&report).unwrap());
    assert_eq!((report.documents, report.chunks), (documents as i64, chunks as i64));
    let per = report.per_chunk;
    assert!(per.text_bytes > 0.0 && per.document_bytes > 0.0, "{per:?}");
    assert_eq!(per.vector_bytes, (DIM * 4) as f64);
    let memory_per_chunk = per.memory_bytes.unwrap();
    match backend() {
        // A graph node holds the vector and its neighbour lists.
        Backend::Postgres => assert!(memory_per_chunk > (DIM * 4) as f64, "{per:?}"),
        Backend::Sqlite => assert_eq!(memory_per_chunk, (DIM * 4 + 24) as f64),
    }
    assert!(per.disk_bytes > per.text_bytes + per.vector_bytes, "{per:?}");

    let g = &report.growth;
    assert_eq!((g.documents_added, g.chunks_added), (documents as i64, chunks as i64));
    assert_eq!(g.chunks_per_day, chunks as f64 / 30.0);
    assert_eq!(g.days.len(), 1, "{g:?}");
    assert!(g.days[0].day == today || g.days[0].day == after, "{g:?}");

    let memory = report.memory.as_ref().unwrap();
    assert!(memory.used_bytes > 0 && memory.bytes_per_day > 0.0, "{memory:?}");
    assert!(
        report.disk.used_bytes > 0 && report.disk.bytes_per_day > 0.0,
        "{:?}",
        report.disk
    );
    let (m_days, d_days) = (memory.days_until_limit.unwrap(), report.disk.days_until_limit.unwrap());
    assert!(d_days > 0.0 && m_days > d_days, "{m_days} {d_days}");
    assert_eq!(report.first_limit, Some("disk"));

    let [six, twelve] = &report.projections[..] else {
        panic!("two horizons: {:?}", report.projections)
    };
    assert_eq!((six.months, twelve.months), (6, 12));
    assert!(
        chunks as f64 <= six.chunks && six.chunks < twelve.chunks,
        "{six:?} {twelve:?}"
    );
    assert!((twelve.chunks - chunks as f64 - g.chunks_per_day * 365.0).abs() < 1e-6);
    assert!(report.disk.used_bytes as f64 <= six.disk_bytes && six.disk_bytes < twelve.disk_bytes);
    assert!(six.memory_bytes.unwrap() < twelve.memory_bytes.unwrap());
}
