//! MCP throughput and latency: the full Cairn stack against a bare rmcp server.
//!
//! `cargo bench -p cairn-server --bench mcp` (see docs/performance.md). It prints
//! figures and never asserts timings. Every scenario drives `tools/call whoami` from N
//! client tasks, each on its own keep-alive HTTP/1.1 connection, for a warm-up and then
//! a measured window; scenarios run one after the other, never at the same time.
//!
//! Servers and clients run on two tokio runtimes in one process so CPU time can be split
//! between them. Knobs: `BENCH_CONCURRENCY` (comma list, default `1,32`), `BENCH_SECS`
//! (measured seconds, default 10), `BENCH_WARMUP_SECS` (default 2), `BENCH_FILTER` (only
//! scenarios whose name contains it, e.g. `cairn`, for profiling).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cairn_core::ids::TenantId;
use cairn_server::config::{Config, TierConfig};
use cairn_server::{AppState, Server};
use reqwest::header::{HeaderMap, HeaderValue};
use secrecy::ExposeSecret as _;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

const SESSION_VERSION: &str = "2025-11-25";
const STATELESS_VERSION: &str = "2026-07-28";
const VERIFY_CALLS: usize = 200_000;

/// JSON-RPC ids: unique across all requests, so concurrent calls in one session never clash.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

mod bare;
use bare::start_bare;

// ---------------------------------------------------------------------------------------
// The full stack: the real Cairn, booted like tests/it/common.rs does.

struct Cairn {
    addr: SocketAddr,
    state: AppState,
    tenant_id: TenantId,
    key: String,
    shutdown: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

async fn start_cairn() -> Cairn {
    let dir = tempfile::tempdir().unwrap();
    let unlimited = TierConfig {
        burst_per_minute: 100_000_000,
        monthly_quota: None,
        expires_after_days: None,
    };
    let config = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        database_url: Some(format!("sqlite://{}", dir.path().join("cairn.db").display())),
        data_dir: dir.path().join("data"),
        tiers: BTreeMap::from([("bench".to_owned(), unlimited)]),
        default_tier: "bench".into(),
        tenant_burst_per_minute: 100_000_000,
        ..Config::default()
    };
    let mut server = Server::build(config.clone()).await.unwrap();
    let token = server.take_bootstrap_token().unwrap().token.expose_secret().to_owned();
    let state = server.state().clone();
    let listener = TcpListener::bind(config.listen).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (shutdown, rx) = oneshot::channel();
    let task = tokio::spawn(async move {
        server
            .serve(listener, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });

    // A tenant and a key through the REST API, as an operator would.
    let client = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        let req = client
            .post(format!("http://{addr}{path}"))
            .bearer_auth(&token)
            .json(&body);
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let tenant = post("/api/v1/tenants", json!({ "slug": "bench", "name": "Bench" })).await;
    let scopes = json!({ "name": "bench", "scopes": ["mcp:tools"], "tier": "bench" });
    let key = post("/api/v1/tenants/bench/keys", scopes).await;
    let tenant_id = tenant["id"].as_str().unwrap().parse().unwrap();
    let key = key["secret"].as_str().map(str::to_owned);
    let key = key.unwrap_or_else(|| panic!("no API key in the answer"));
    Cairn {
        addr,
        state,
        tenant_id,
        key,
        shutdown,
        task,
        _dir: dir,
    }
}

// ---------------------------------------------------------------------------------------
// The load generator, identical for every target.

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// `initialize` once, then calls in that session (2025-11-25).
    Session,
    /// No session: every call carries its protocol version in `_meta` (2026-07-28).
    Stateless,
    /// Plain axum echo: no MCP at all.
    Floor,
}

struct Target {
    name: &'static str,
    url: String,
    bearer: Option<String>,
    mode: Mode,
}

struct Stats {
    ok: usize,
    errors: u64,
    secs: f64,
    /// Sorted latencies in µs.
    lat: Vec<u32>,
    /// CPU time of the server threads and of the client threads during the window.
    cpu: Option<(Duration, Duration)>,
}

impl Stats {
    fn rps(&self) -> f64 {
        self.ok as f64 / self.secs
    }
    fn pct(&self, q: f64) -> u32 {
        let i = ((self.lat.len() as f64 * q) as usize).min(self.lat.len().saturating_sub(1));
        self.lat.get(i).copied().unwrap_or(0)
    }
    fn mean(&self) -> f64 {
        self.lat.iter().map(|&v| f64::from(v)).sum::<f64>() / self.lat.len().max(1) as f64
    }
    /// (server, client) CPU µs per successful call.
    fn cpu_per_req(&self) -> Option<(f64, f64)> {
        let per = |d: Duration| d.as_secs_f64() * 1e6 / self.ok.max(1) as f64;
        self.cpu.map(|(s, c)| (per(s), per(c)))
    }
}

fn base_headers(target: &Target) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "accept",
        HeaderValue::from_static("application/json, text/event-stream"),
    );
    h.insert("content-type", HeaderValue::from_static("application/json"));
    if let Some(key) = &target.bearer {
        h.insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {key}")).unwrap(),
        );
    }
    h
}

/// Opens a session: `initialize`, read `mcp-session-id`, `notifications/initialized`.
async fn open_session(client: &reqwest::Client, target: &Target) -> String {
    let mut headers = base_headers(target);
    headers.insert("mcp-protocol-version", HeaderValue::from_static(SESSION_VERSION));
    let send =
        |headers: HeaderMap, body: Value| client.post(&target.url).headers(headers).body(body.to_string()).send();
    let init = json!({ "jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": SESSION_VERSION, "capabilities": {},
        "clientInfo": { "name": "cairn-bench", "version": "0.0.0" } } });
    let resp = send(headers.clone(), init).await.unwrap();
    let (status, session) = (resp.status(), resp.headers().get("mcp-session-id").cloned());
    let body = resp.text().await.unwrap();
    let session = session.unwrap_or_else(|| panic!("{}: initialize gave {status}: {body}", target.name));
    headers.insert("mcp-session-id", session.clone());
    let done = send(
        headers,
        json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }),
    );
    let status = done.await.unwrap().status();
    assert!(
        status.is_success(),
        "{}: notifications/initialized gave {status}",
        target.name
    );
    session.to_str().unwrap().to_owned()
}

fn call_body(mode: Mode, id: u64) -> String {
    match mode {
        Mode::Stateless => json!({ "jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
            "name": "whoami", "arguments": {}, "_meta": {
                "io.modelcontextprotocol/protocolVersion": STATELESS_VERSION,
                "io.modelcontextprotocol/clientInfo": { "name": "cairn-bench", "version": "0.0.0" },
                "io.modelcontextprotocol/clientCapabilities": {} } } }),
        Mode::Session | Mode::Floor => json!({ "jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": { "name": "whoami", "arguments": {} } }),
    }
    .to_string()
}

/// True if `body` (JSON or SSE) holds a successful JSON-RPC result for `id`.
fn has_result(body: &[u8], id: u64) -> bool {
    let ok = |v: Value| v["id"] == id && v.get("result").is_some() && v["result"]["isError"] != true;
    let text = String::from_utf8_lossy(body);
    if text.trim_start().starts_with('{') {
        return serde_json::from_str(&text).is_ok_and(ok);
    }
    text.lines()
        .filter_map(|l| l.strip_prefix("data:").map(str::trim))
        .filter(|d| !d.is_empty()) // SSE priming events carry no data
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .any(ok)
}

async fn call_once(client: &reqwest::Client, url: &str, headers: HeaderMap, mode: Mode) -> bool {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let Ok(resp) = client.post(url).headers(headers).body(call_body(mode, id)).send().await else {
        return false;
    };
    let status = resp.status();
    // Always read to the end so the connection can be reused.
    match resp.bytes().await {
        Ok(body) => status.is_success() && has_result(&body, id),
        Err(_) => false,
    }
}

const CLIENT_THREAD: &str = "bench-client";

/// CPU time (user + system) of this process's threads from /proc, split into (server,
/// client) by thread name; `None` off Linux.
fn cpu_time() -> Option<(Duration, Duration)> {
    let (mut server, mut client) = (0u64, 0u64);
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
        let ticks = field(11) + field(12); // utime, stime
        if stat[open + 1..close].starts_with(CLIENT_THREAD) {
            client += ticks;
        } else {
            server += ticks;
        }
    }
    let ms = |ticks: u64| Duration::from_millis(ticks * 10); // USER_HZ is 100 on Linux
    Some((ms(server), ms(client)))
}

async fn drive(
    clients: &tokio::runtime::Handle,
    target: &Target,
    concurrency: usize,
    warmup: Duration,
    measure: Duration,
) -> Stats {
    let mut headers = base_headers(target);
    match target.mode {
        Mode::Session => {
            let session = open_session(&reqwest::Client::new(), target).await;
            headers.insert("mcp-session-id", HeaderValue::from_str(&session).unwrap());
            headers.insert("mcp-protocol-version", HeaderValue::from_static(SESSION_VERSION));
        }
        Mode::Stateless => {
            headers.insert("mcp-protocol-version", HeaderValue::from_static(STATELESS_VERSION));
            headers.insert("mcp-method", HeaderValue::from_static("tools/call"));
            headers.insert("mcp-name", HeaderValue::from_static("whoami"));
        }
        Mode::Floor => {}
    }
    let start = Instant::now();
    let (from, end) = (start + warmup, start + warmup + measure);
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency {
        let (url, headers, mode) = (target.url.clone(), headers.clone(), target.mode);
        let task = async move {
            // One client per task: one keep-alive connection per task.
            let client = reqwest::Client::builder()
                .tcp_nodelay(true)
                .pool_max_idle_per_host(1)
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap();
            let (mut lat, mut errors) = (Vec::with_capacity(1 << 16), 0u64);
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let ok = call_once(&client, &url, headers.clone(), mode).await;
                if t0 >= from {
                    if ok {
                        lat.push(u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX));
                    } else {
                        errors += 1;
                    }
                }
            }
            (lat, errors)
        };
        tasks.spawn_on(task, clients);
    }
    tokio::time::sleep_until(from.into()).await;
    let cpu0 = cpu_time();
    tokio::time::sleep_until(end.into()).await;
    let cpu1 = cpu_time();
    let (mut lat, mut errors) = (Vec::new(), 0);
    while let Some(done) = tasks.join_next().await {
        let (l, e) = done.unwrap();
        lat.extend(l);
        errors += e;
    }
    lat.sort_unstable();
    Stats {
        ok: lat.len(),
        errors,
        secs: measure.as_secs_f64(),
        lat,
        cpu: cpu0
            .zip(cpu1)
            .map(|(a, b)| (b.0.saturating_sub(a.0), b.1.saturating_sub(a.1))),
    }
}

// ---------------------------------------------------------------------------------------
// Warm gate pieces, one call at a time.

async fn time_calls<F, Fut, T>(n: usize, mut f: F) -> Vec<u64>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    let mut ns = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        std::hint::black_box(f().await);
        ns.push(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
    }
    ns.sort_unstable();
    ns
}

fn print_ns(label: &str, ns: &[u64]) {
    let us = |i: usize| ns[i.min(ns.len() - 1)] as f64 / 1000.0;
    let mean = ns.iter().sum::<u64>() as f64 / ns.len() as f64 / 1000.0;
    println!(
        "{label:<34} {:>8} calls  p50 {:>7.3} µs  p99 {:>7.3} µs  max {:>9.3} µs  mean {:>7.3} µs",
        ns.len(),
        us(ns.len() / 2),
        us(ns.len() * 99 / 100),
        us(ns.len() - 1),
        mean
    );
}

async fn gate_pieces(cairn: &Cairn) {
    let (state, tenant, key) = (&cairn.state, cairn.tenant_id, cairn.key.as_str());
    let (keys, store) = (&state.keys, &state.store);
    // The first verification reads the database and fills the cache.
    let first = keys.verify(store, tenant, key).await.unwrap();
    let api_key = first.unwrap_or_else(|r| panic!("key refused: {}", r.as_str()));
    println!();
    println!("Warm gate pieces (cache filled, one call at a time, Instant per call):");
    let verify = time_calls(VERIFY_CALLS, || async move {
        assert!(matches!(keys.verify(store, tenant, key).await, Ok(Ok(_))));
    })
    .await;
    print_ns("keys.verify (warm API key)", &verify);
    let tenants = &state.tenants;
    let lookups = time_calls(VERIFY_CALLS, || tenants.get(store, "bench")).await;
    print_ns("tenants.get (warm tenant cache)", &lookups);
    let limits = &state.limits;
    let checks = time_calls(VERIFY_CALLS, || limits.check(store, &api_key, Some("whoami"))).await;
    print_ns("limits.check (in-process GCRA)", &checks);
}

// ---------------------------------------------------------------------------------------

/// `BENCH_*` knobs, read like the rest of Cairn's settings (figment), never ad hoc.
#[derive(serde::Deserialize, Default)]
struct Knobs {
    concurrency: Option<Levels>,
    secs: Option<u64>,
    warmup_secs: Option<u64>,
    filter: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Levels {
    One(usize),
    Many(String),
}

fn knobs() -> Knobs {
    figment::Figment::from(figment::providers::Env::prefixed("BENCH_"))
        .extract()
        .unwrap_or_default()
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: skip the long run there.
    if !std::env::args().any(|a| a == "--bench") {
        println!("mcp bench: skipped (run it with `cargo bench -p cairn-server --bench mcp`)");
        return;
    }
    // Servers run on the main runtime, the load generator on its own (threads named
    // `bench-client`) so CPU time can be split between them. Both share the machine.
    let clients = tokio::runtime::Builder::new_multi_thread()
        .thread_name(CLIENT_THREAD)
        .enable_all()
        .build()
        .unwrap();
    let servers = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    servers.block_on(run(clients.handle().clone()));
}

async fn run(clients: tokio::runtime::Handle) {
    let knobs = knobs();
    let levels: Vec<usize> = match knobs.concurrency {
        Some(Levels::One(n)) => vec![n],
        Some(Levels::Many(list)) => list.split(',').filter_map(|s| s.trim().parse().ok()).collect(),
        None => vec![1, 32],
    };
    let levels: Vec<usize> = levels.into_iter().filter(|&n| n > 0).collect();
    let measure = Duration::from_secs(knobs.secs.unwrap_or(10));
    let warmup = Duration::from_secs(knobs.warmup_secs.unwrap_or(2));
    let filter = knobs.filter.unwrap_or_default();
    let nproc = std::thread::available_parallelism().map_or(1, |n| n.get());

    let cairn = start_cairn().await;
    let bare = start_bare().await;
    let cairn_url = format!("http://{}/t/bench/mcp", cairn.addr);
    let target = |name, url: &str, bearer: Option<&str>, mode| Target {
        name,
        url: url.to_owned(),
        bearer: bearer.map(str::to_owned),
        mode,
    };
    let (bare_mcp, key) = (format!("http://{bare}/mcp"), Some(cairn.key.as_str()));
    let targets = [
        target(
            "axum floor (no MCP)",
            &format!("http://{bare}/floor"),
            None,
            Mode::Floor,
        ),
        target("bare rmcp, session", &bare_mcp, None, Mode::Session),
        target("cairn, session", &cairn_url, key, Mode::Session),
        target("bare rmcp, stateless 2026-07-28", &bare_mcp, None, Mode::Stateless),
        target("cairn, stateless 2026-07-28", &cairn_url, key, Mode::Stateless),
    ];

    println!("Cairn MCP benchmark: tools/call whoami over Streamable HTTP (HTTP/1.1 keep-alive)");
    println!("machine: nproc {nproc}, CPU {}", cpu_model());
    println!(
        "runtimes: servers on one tokio runtime ({nproc} workers), clients on another ({nproc} workers), \
         same cores; no log subscriber"
    );
    println!(
        "each row: {} s warm-up, {} s measured, one scenario at a time; latency = wall clock per call",
        warmup.as_secs(),
        measure.as_secs()
    );
    println!("srv/cli CPU = CPU µs per call of the server threads (incl. SQLite) / of the client threads");
    println!();
    println!(
        "{:<32} {:>4} {:>8} {:>8} {:>8} {:>8} {:>6} {:>8} {:>8}",
        "scenario", "conc", "req/s", "p50 µs", "p99 µs", "mean µs", "errors", "srv CPU", "cli CPU"
    );
    let mut results: Vec<(&str, usize, f64, Option<f64>)> = Vec::new();
    for &n in &levels {
        for target in targets.iter().filter(|t| t.name.contains(filter.as_str())) {
            let s = drive(&clients, target, n, warmup, measure).await;
            let cpu = s.cpu_per_req();
            let show = |v: Option<f64>| v.map_or_else(|| "-".into(), |c| format!("{c:.1}"));
            println!(
                "{:<32} {:>4} {:>8.0} {:>8} {:>8} {:>8.0} {:>6} {:>8} {:>8}",
                target.name,
                n,
                s.rps(),
                s.pct(0.50),
                s.pct(0.99),
                s.mean(),
                s.errors,
                show(cpu.map(|c| c.0)),
                show(cpu.map(|c| c.1)),
            );
            results.push((target.name, n, s.rps(), cpu.map(|c| c.0)));
        }
    }
    println!();
    let row = |name: &str, n: usize| results.iter().find(|r| r.0 == name && r.1 == n);
    for &n in &levels {
        for (full, base) in [
            ("cairn, session", "bare rmcp, session"),
            ("cairn, stateless 2026-07-28", "bare rmcp, stateless 2026-07-28"),
        ] {
            if let (Some(f), Some(b)) = (row(full, n), row(base, n)) {
                let cpu = f.3.zip(b.3).map_or_else(String::new, |(fc, bc)| {
                    format!(", server CPU per call full/bare {:.2}", fc / bc.max(f64::MIN_POSITIVE))
                });
                println!(
                    "{full:<28} conc {n:>2}: throughput full/bare {:.2}{cpu}",
                    f.2 / b.2.max(f64::MIN_POSITIVE)
                );
            }
        }
    }

    gate_pieces(&cairn).await;

    let Cairn {
        shutdown, task, state, ..
    } = cairn;
    let _ = shutdown.send(());
    drop(state);
    let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
}
