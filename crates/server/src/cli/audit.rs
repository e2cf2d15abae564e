//! `cairn audit …`: the audit trail from the command line.

use std::io::Write;
use std::path::PathBuf;

use clap::Subcommand;

use super::{print_json, CliError};
use crate::service::audit_query::{self, ExportQuery};
use crate::state::Ctx;

#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Walk the audit chains (every tenant's and the platform's, or one tenant's) and
    /// report the first row where each breaks; exit status 1 if any is broken or has
    /// events set aside outside it.
    Verify {
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Delete audit events older than each tenant's retention now (the server also does
    /// this once a day), keeping every chain verifiable from its checkpoint.
    Purge,
    /// Export a tenant's audit events (or the platform's), oldest first, read and written
    /// 1 000 at a time.
    Export {
        #[arg(long, required_unless_present = "platform")]
        tenant: Option<String>,
        /// Platform events (operator actions, users, tokens) instead of a tenant's.
        #[arg(long, conflicts_with = "tenant")]
        platform: bool,
        #[arg(long, value_parser = ["jsonl", "csv"], default_value = "jsonl")]
        format: String,
        /// RFC 3339, inclusive.
        #[arg(long)]
        from: Option<String>,
        /// RFC 3339, exclusive; default: now.
        #[arg(long)]
        to: Option<String>,
        /// An action, or a prefix ending in * (api_key.*).
        #[arg(long)]
        action: Option<String>,
        /// An actor kind, or kind:id.
        #[arg(long)]
        actor: Option<String>,
        /// success, failure or denied.
        #[arg(long)]
        outcome: Option<String>,
        /// Write to this file instead of standard output (under a temporary name beside
        /// it until the export is complete).
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

pub async fn run(cmd: AuditCmd, ctx: &Ctx) -> Result<(), CliError> {
    match cmd {
        AuditCmd::Purge => print_json(&crate::service::audit::purge(&ctx.state, chrono::Utc::now()).await?),
        AuditCmd::Verify { tenant } => {
            let reports = crate::service::audit::verify(ctx, tenant.as_deref()).await?;
            print_json(&reports)?;
            let mut broken: Vec<String> = reports
                .iter()
                .filter_map(|r| {
                    r.first_break
                        .as_ref()
                        .map(|b| format!("{} at seq {} (event {}): {:?}", r.chain, b.seq, b.id, b.reason))
                })
                .collect();
            broken.extend(reports.iter().filter(|r| r.set_aside > 0).map(|r| {
                format!(
                    "{}: {} events set aside in audit_dead_letters, outside the chain",
                    r.chain, r.set_aside
                )
            }));
            if broken.is_empty() {
                Ok(())
            } else {
                Err(CliError::Input(format!("audit chain broken: {}", broken.join("; "))))
            }
        }
        AuditCmd::Export {
            tenant,
            platform: _,
            format,
            from,
            to,
            action,
            actor,
            outcome,
            output,
        } => {
            let query = ExportQuery {
                from,
                to,
                action,
                actor,
                outcome,
                format: Some(format),
            };
            export(ctx, tenant.as_deref(), query, output).await
        }
    }
}

async fn export(ctx: &Ctx, tenant: Option<&str>, query: ExportQuery, output: Option<PathBuf>) -> Result<(), CliError> {
    let (target, writer) = Target::open(output)?;
    let mut sink = std::io::BufWriter::with_capacity(256 * 1024, writer);
    let result = async {
        let mut export = audit_query::export(ctx, tenant, query).await?;
        while let Some(chunk) = export.next_chunk().await.map_err(crate::error::ApiError::from)? {
            sink.write_all(&chunk).map_err(write_error)?;
        }
        sink.flush().map_err(write_error)?;
        Ok::<_, CliError>(export.rows)
    }
    .await;
    drop(sink);
    match result {
        Ok(rows) => target.finish(rows),
        Err(e) => {
            target.abandon();
            Err(e)
        }
    }
}

fn write_error(e: std::io::Error) -> CliError {
    CliError::Input(format!("cannot write the export: {e}"))
}

/// Where an export goes. A file is written under a temporary name beside it and renamed
/// when complete: half a file would look like a complete export with fewer events, and a
/// failed export leaves an earlier file of that name as it was. A path that is not a
/// regular file (`/dev/stdout`, a pipe) is written directly and never removed.
enum Target {
    Stdout,
    Direct(PathBuf),
    File { path: PathBuf, partial: PathBuf },
}

impl Target {
    /// Creates the file first: a path that cannot be written fails before anything is
    /// read or audited.
    fn open(output: Option<PathBuf>) -> Result<(Self, Box<dyn Write + Send>), CliError> {
        let Some(path) = output else {
            return Ok((Self::Stdout, Box::new(std::io::stdout())));
        };
        let target = match std::fs::metadata(&path) {
            Ok(m) if !m.is_file() => Self::Direct(path),
            _ => {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let partial = path.with_file_name(format!(".{name}.partial"));
                Self::File { path, partial }
            }
        };
        let file = match &target {
            Self::Direct(p) | Self::File { partial: p, .. } => std::fs::File::create(p),
            Self::Stdout => return Ok((target, Box::new(std::io::stdout()))),
        };
        match file {
            Ok(f) => Ok((target, Box::new(f))),
            Err(e) => Err(CliError::Input(format!("cannot create {}: {e}", target.shown()))),
        }
    }

    fn shown(&self) -> String {
        match self {
            Self::Stdout => "standard output".into(),
            Self::Direct(p) | Self::File { path: p, .. } => p.display().to_string(),
        }
    }

    fn finish(self, rows: u64) -> Result<(), CliError> {
        if let Self::File { path, partial } = &self {
            std::fs::rename(partial, path).map_err(|e| {
                let _ = std::fs::remove_file(partial);
                CliError::Input(format!("cannot write {}: {e}", path.display()))
            })?;
        }
        if !matches!(self, Self::Stdout) {
            eprintln!("{rows} audit events written to {}", self.shown());
        }
        Ok(())
    }

    fn abandon(self) {
        if let Self::File { partial, .. } = self {
            let _ = std::fs::remove_file(partial);
        }
    }
}
