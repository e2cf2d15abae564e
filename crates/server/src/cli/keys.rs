//! `cairn keys …`: envelope-encryption data keys — rotate, roll back, status, re-wrap.

use cairn_store::crypto_jobs::CryptoJob;
use clap::Subcommand;

use super::{print_json, CliError};
use crate::crypto::rotation;
use crate::service::encryption;
use crate::state::Ctx;

#[derive(Debug, Subcommand)]
pub enum KeysCmd {
    /// New data key for a tenant (or all) and re-encryption of its rows in the background.
    Rotate {
        #[arg(long, conflicts_with = "all", required_unless_present = "all")]
        tenant: Option<String>,
        #[arg(long)]
        all: bool,
        /// Run the re-encryption here and return when it is done (else a server runs it).
        #[arg(long)]
        wait: bool,
    },
    /// Go back to the previous data key while it still decrypts, re-encrypting back.
    Rollback {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        wait: bool,
    },
    /// Data keys and re-encryption jobs, with progress.
    Status {
        #[arg(long)]
        tenant: Option<String>,
        /// JSON instead of the progress view.
        #[arg(long)]
        json: bool,
    },
    /// Re-wrap every data key under the active master key (after replacing the master key).
    Rewrap,
    /// Retire a tenant's old data keys now (no rollback afterwards), if no row needs them.
    Retire {
        #[arg(long)]
        tenant: String,
    },
}

pub async fn run(cmd: KeysCmd, ctx: &Ctx) -> Result<(), CliError> {
    match cmd {
        KeysCmd::Rotate { tenant, all, wait } => {
            let jobs = match (tenant, all) {
                (Some(slug), _) => vec![encryption::rotate(ctx, &slug).await?],
                (None, _) => encryption::rotate_all(ctx).await?,
            };
            finish(ctx, &jobs, wait).await
        }
        KeysCmd::Rollback { tenant, wait } => {
            let job = encryption::rollback(ctx, &tenant).await?;
            finish(ctx, &[job], wait).await
        }
        KeysCmd::Status { tenant, json } => {
            let jobs = match &tenant {
                Some(slug) => {
                    let status = encryption::status(ctx, slug).await?;
                    if json {
                        return print_json(&status);
                    }
                    for k in &status.data_keys {
                        println!(
                            "data key v{} ({}) master key v{}  {}",
                            k.version, k.state, k.kek_version, k.id
                        );
                    }
                    status.jobs
                }
                None => encryption::jobs(ctx).await?,
            };
            if json {
                return print_json(&jobs);
            }
            for job in &jobs {
                println!("{}", progress_line(job));
            }
            Ok(())
        }
        KeysCmd::Retire { tenant } => {
            let t = crate::service::tenants::resolve(ctx, &tenant).await?;
            let n = rotation::retire_old_keys(&ctx.state, t.id)
                .await
                .map_err(crate::error::ApiError::from)?;
            eprintln!("{n} data keys retired");
            Ok(())
        }
        KeysCmd::Rewrap => {
            let n = ctx
                .state
                .keyring
                .rewrap_all(ctx.store())
                .await
                .map_err(crate::error::ApiError::from)?;
            eprintln!(
                "{n} data keys re-wrapped under master key v{}",
                ctx.state.keyring.provider().active_version()
            );
            Ok(())
        }
    }
}

async fn finish(ctx: &Ctx, jobs: &[CryptoJob], wait: bool) -> Result<(), CliError> {
    if !wait {
        for job in jobs {
            println!("{}", progress_line(job));
        }
        eprintln!("re-encryption runs in the background on a running server; `cairn keys status` shows progress");
        return Ok(());
    }
    let owner = format!("cli-{}", std::process::id());
    for job in jobs {
        // Another process may hold the lease for a while; keep trying until the job ends.
        loop {
            let done = rotation::run_job(
                &ctx.state,
                job.tenant_id,
                job.id,
                &owner,
                ctx.state.config.reencrypt_batch_size,
            )
            .await
            .map_err(crate::error::ApiError::from)?;
            let current = ctx
                .store()
                .get_crypto_job(job.tenant_id, job.id)
                .await
                .map_err(crate::error::ApiError::from)?;
            if let Some(current) = &current {
                eprintln!("{}", progress_line(current));
            }
            if done || current.is_none_or(|j| j.state != "running") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }
    Ok(())
}

fn progress_line(job: &CryptoJob) -> String {
    let (done, total) = job
        .progress
        .values()
        .fold((0u64, 0u64), |(d, t), p| (d + p.done, t + p.total));
    let ratio = if total == 0 {
        1.0
    } else {
        (done as f64 / total as f64).min(1.0)
    };
    let filled = (ratio * 30.0).round() as usize;
    format!(
        "{} {} {:<7} [{}{}] {:>3.0}% {done}/{total}  tenant {}",
        job.id.simple(),
        job.kind,
        job.state,
        "#".repeat(filled),
        ".".repeat(30 - filled.min(30)),
        ratio * 100.0,
        job.tenant_id
    )
}
