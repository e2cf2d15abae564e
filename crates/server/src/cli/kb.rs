//! `cairn kb …`: knowledge bases from the command line — ingest a folder (with a progress
//! bar), search, evaluate retrieval, manage bases.

use std::path::{Path, PathBuf};
use std::time::Instant;

use cairn_core::kb::eval;
use cairn_store::knowledge::PutOutcome;
use clap::Subcommand;
use serde_json::json;

use super::{print_json, CliError};
use crate::kb::ingest::IngestInput;
use crate::kb::search::{Mode, SearchRequest};
use crate::service::kb::{self as service, CreateKb};
use crate::state::Ctx;

#[derive(Debug, Subcommand)]
pub enum KbCmd {
    /// Ingest a file or every .md/.markdown/.txt/.html file under a folder (source id =
    /// path relative to the folder). Creates the base if it does not exist.
    Ingest {
        #[arg(long)]
        tenant: String,
        #[arg(long, default_value = "default")]
        kb: String,
        /// Tag every document (repeat for several).
        #[arg(long = "tag")]
        tags: Vec<String>,
        path: PathBuf,
    },
    /// Search a base and print the ranked passages.
    Search {
        #[arg(long)]
        tenant: String,
        #[arg(long, default_value = "default")]
        kb: String,
        #[arg(short, long, default_value_t = 5)]
        k: usize,
        #[arg(long, value_parser = ["hybrid", "lexical", "vector"], default_value = "hybrid")]
        mode: String,
        query: String,
    },
    /// Create a base (`--lexical-only`: no embedding model; `--encrypted`: text encrypted).
    Create {
        #[arg(long)]
        tenant: String,
        name: String,
        #[arg(long)]
        encrypted: bool,
        #[arg(long)]
        lexical_only: bool,
    },
    /// List a tenant's bases.
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Delete a base with all its documents.
    Delete {
        #[arg(long)]
        tenant: String,
        name: String,
    },
    /// Sizes, index facts, search latency; `--probe` adds the recall probe.
    Stats {
        #[arg(long)]
        tenant: String,
        #[arg(long, default_value = "default")]
        kb: String,
        #[arg(long)]
        probe: bool,
    },
    /// Bytes per chunk, growth, projections and the limit hit first.
    Capacity {
        #[arg(long)]
        tenant: String,
        #[arg(long, default_value = "default")]
        kb: String,
    },
    /// ANALYZE, and REINDEX where the vector index drifted (`--force`: reindex anyway).
    Maintain {
        #[arg(long)]
        force: bool,
    },
    /// Retrieval quality: ingest DIR/docs into a fresh base, run DIR/queries.jsonl
    /// (`{"query": …, "relevant": [source ids]}`) and report MRR@10 and recall@10 for
    /// lexical, vector and hybrid search.
    Eval {
        #[arg(long)]
        tenant: String,
        #[arg(long, default_value = "eval")]
        kb: String,
        dir: PathBuf,
    },
}

pub async fn run(cmd: KbCmd, ctx: &Ctx) -> Result<(), CliError> {
    match cmd {
        KbCmd::Ingest { tenant, kb, tags, path } => ingest(ctx, &tenant, &kb, &tags, &path).await.map(|_| ()),
        KbCmd::Search {
            tenant,
            kb,
            k,
            mode,
            query,
        } => {
            let req = SearchRequest {
                query,
                k,
                mode: parse_mode(&mode),
                tags: Vec::new(),
                source_ids: Vec::new(),
            };
            let found = service::search(ctx, &tenant, &kb, req).await?;
            print!("{}", crate::kb::tools::render(&found));
            Ok(())
        }
        KbCmd::Create {
            tenant,
            name,
            encrypted,
            lexical_only,
        } => {
            let input = CreateKb {
                name,
                encrypted,
                vectors: !lexical_only,
            };
            print_json(&service::create(ctx, &tenant, input).await?)
        }
        KbCmd::List { tenant } => print_json(&service::list(ctx, &tenant).await?),
        KbCmd::Delete { tenant, name } => {
            service::delete(ctx, &tenant, &name).await?;
            println!("deleted knowledge base {name}");
            Ok(())
        }
        KbCmd::Eval { tenant, kb, dir } => evaluate(ctx, &tenant, &kb, &dir).await,
        KbCmd::Stats { tenant, kb, probe } => {
            print_json(&service::stats(ctx, &tenant, &kb, service::StatsQuery { probe }).await?)
        }
        KbCmd::Capacity { tenant, kb } => print_json(&service::capacity(ctx, &tenant, &kb).await?),
        KbCmd::Maintain { force } => print_json(&service::maintain(ctx, service::MaintainQuery { force }).await?),
    }
}

fn parse_mode(mode: &str) -> Mode {
    match mode {
        "lexical" => Mode::Lexical,
        "vector" => Mode::Vector,
        _ => Mode::Hybrid,
    }
}

const EXTENSIONS: [&str; 5] = ["md", "markdown", "txt", "html", "htm"];

/// Files to ingest under `root`, sorted, with their source ids.
fn collect(root: &Path) -> Result<Vec<(String, PathBuf)>, CliError> {
    let io = |e: std::io::Error| CliError::Input(format!("{}: {e}", root.display()));
    if root.is_file() {
        let name = root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        return Ok(vec![(name, root.to_owned())]);
    }
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
            {
                let rel = path
                    .strip_prefix(root)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .replace('\\', "/");
                out.push((rel, path));
            }
        }
    }
    out.sort();
    Ok(out)
}

#[derive(Default)]
struct Tally {
    created: usize,
    replaced: usize,
    unchanged: usize,
    failed: usize,
    chunks: usize,
}

/// Files are ingested in batches (one model call on every core and one transaction per
/// batch); two batches are in flight so one embeds while the other is written.
const BATCH_FILES: usize = 64;
const BATCH_BYTES: usize = 4 << 20;
const BATCHES_IN_FLIGHT: usize = 2;

type FileOutcome = (String, Result<(PutOutcome, usize), String>);

/// Reads and ingests one batch of files; a file that cannot be read fails alone.
async fn ingest_files(
    ctx: Ctx,
    tenant: cairn_core::tenant::Tenant,
    base: cairn_store::knowledge::KnowledgeBase,
    tags: Vec<String>,
    files: Vec<(String, PathBuf)>,
) -> Vec<FileOutcome> {
    let mut out = Vec::with_capacity(files.len());
    let mut read = Vec::with_capacity(files.len());
    for (source_id, path) in files {
        match tokio::fs::read(&path).await {
            Ok(bytes) => {
                let ext = path
                    .extension()
                    .and_then(|e| e.to_str())
                    .unwrap_or("md")
                    .to_ascii_lowercase();
                read.push((source_id, ext, bytes));
            }
            Err(e) => out.push((source_id, Err(e.to_string()))),
        }
    }
    let inputs: Vec<IngestInput<'_>> = read
        .iter()
        .map(|(source_id, ext, bytes)| IngestInput {
            source_id,
            title: None,
            content_type: ext,
            content: bytes,
            tags: &tags,
        })
        .collect();
    let done = service::ingest_many_into(&ctx.state, &tenant, &base, &ctx, &inputs).await;
    for ((source_id, _, _), result) in read.iter().zip(done) {
        out.push((
            source_id.clone(),
            result.map(|r| (r.outcome, r.chunks)).map_err(|e| e.to_string()),
        ));
    }
    out
}

/// Splits the file list into batches of at most `BATCH_FILES` files and about `BATCH_BYTES`.
fn batches(files: Vec<(String, PathBuf)>) -> Vec<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let (mut current, mut bytes) = (Vec::new(), 0usize);
    for (source_id, path) in files {
        let size = std::fs::metadata(&path).map_or(0, |m| usize::try_from(m.len()).unwrap_or(usize::MAX));
        if !current.is_empty() && (current.len() >= BATCH_FILES || bytes.saturating_add(size) > BATCH_BYTES) {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes = bytes.saturating_add(size);
        current.push((source_id, path));
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

async fn ingest(ctx: &Ctx, tenant: &str, kb: &str, tags: &[String], root: &Path) -> Result<Tally, CliError> {
    let files = collect(root)?;
    if files.is_empty() {
        return Err(CliError::Input(format!(
            "no .md, .markdown, .txt or .html files under {}",
            root.display()
        )));
    }
    // Tenant and base are resolved once for the whole folder, not once per file.
    let (tenant, base) = ensure_base(ctx, tenant, kb).await?;
    let bar = indicatif::ProgressBar::new(files.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} files  {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let mut tally = Tally::default();
    let mut pending = tokio::task::JoinSet::new();
    let mut queue = batches(files).into_iter();
    loop {
        while pending.len() < BATCHES_IN_FLIGHT {
            let Some(batch) = queue.next() else { break };
            let (ctx, tenant, base, tags) = (ctx.clone(), tenant.clone(), base.clone(), tags.to_vec());
            pending.spawn(ingest_files(ctx, tenant, base, tags, batch));
        }
        let Some(joined) = pending.join_next().await else { break };
        for (source_id, outcome) in joined.map_err(|e| CliError::Input(e.to_string()))? {
            match outcome {
                Ok((PutOutcome::Created, n)) => (tally.created, tally.chunks) = (tally.created + 1, tally.chunks + n),
                Ok((PutOutcome::Replaced, n)) => {
                    (tally.replaced, tally.chunks) = (tally.replaced + 1, tally.chunks + n)
                }
                Ok((PutOutcome::Unchanged, _)) => tally.unchanged += 1,
                Err(e) => {
                    tally.failed += 1;
                    // A hidden bar (no terminal) swallows println: failures must still show.
                    if bar.is_hidden() {
                        eprintln!("{source_id}: {e}");
                    } else {
                        bar.println(format!("{source_id}: {e}"));
                    }
                }
            }
            bar.inc(1);
        }
        bar.set_message(format!("{} chunks", tally.chunks));
    }
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "ingested into {kb}: {} created, {} replaced, {} unchanged, {} failed; {} chunks in {secs:.1} s ({:.0} chunks/s)",
        tally.created,
        tally.replaced,
        tally.unchanged,
        tally.failed,
        tally.chunks,
        tally.chunks as f64 / secs.max(1e-9)
    );
    if tally.failed > 0 {
        return Err(CliError::Input(format!("{} files failed", tally.failed)));
    }
    Ok(tally)
}

async fn ensure_base(
    ctx: &Ctx,
    tenant: &str,
    kb: &str,
) -> Result<(cairn_core::tenant::Tenant, cairn_store::knowledge::KnowledgeBase), CliError> {
    let t = crate::service::tenants::resolve(ctx, tenant).await?;
    match service::resolve_kb(&ctx.state, t.id, kb).await {
        Ok(base) => return Ok((t, base)),
        Err(crate::kb::KbError::UnknownKb(_)) => {}
        Err(e) => return Err(crate::error::ApiError::from(e).into()),
    }
    let input = CreateKb {
        name: kb.to_owned(),
        encrypted: false,
        vectors: true,
    };
    let base = service::create(ctx, tenant, input).await?;
    eprintln!("created knowledge base {kb}");
    Ok((t, base))
}

#[derive(serde::Deserialize)]
struct EvalQuery {
    query: String,
    relevant: Vec<String>,
}

async fn evaluate(ctx: &Ctx, tenant: &str, kb: &str, dir: &Path) -> Result<(), CliError> {
    let text = std::fs::read_to_string(dir.join("queries.jsonl"))
        .map_err(|e| CliError::Input(format!("{}: {e}", dir.join("queries.jsonl").display())))?;
    let queries: Vec<EvalQuery> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| CliError::Input(format!("queries.jsonl: {e}"))))
        .collect::<Result<_, _>>()?;
    ingest(ctx, tenant, kb, &[], &dir.join("docs")).await?;
    let mut report = serde_json::Map::new();
    for (name, mode) in [
        ("lexical", Mode::Lexical),
        ("vector", Mode::Vector),
        ("hybrid", Mode::Hybrid),
    ] {
        let (mut mrr, mut recall) = (0.0, 0.0);
        let started = Instant::now();
        for q in &queries {
            let req = SearchRequest {
                query: q.query.clone(),
                k: 30,
                mode,
                tags: Vec::new(),
                source_ids: Vec::new(),
            };
            let found = service::search(ctx, tenant, kb, req).await?;
            // Source ids are file names; the relevance file names documents without extension.
            let ranked = eval::dedup_ranked(found.results.into_iter().map(|r| stem(&r.source_id)));
            mrr += eval::reciprocal_rank(&ranked, &q.relevant, 10);
            recall += eval::recall_at(&ranked, &q.relevant, 10);
        }
        let n = queries.len().max(1) as f64;
        let ms = started.elapsed().as_secs_f64() * 1000.0 / n;
        eprintln!(
            "{name:8} MRR@10 {:.3}  recall@10 {:.3}  ({ms:.1} ms/query)",
            mrr / n,
            recall / n
        );
        report.insert(
            name.into(),
            json!({ "mrr_at_10": mrr / n, "recall_at_10": recall / n, "ms_per_query": ms }),
        );
    }
    report.insert("queries".into(), json!(queries.len()));
    print_json(&report)
}

fn stem(source_id: &str) -> String {
    let name = source_id.rsplit('/').next().unwrap_or(source_id);
    name.rsplit_once('.').map_or(name, |(s, _)| s).to_owned()
}
