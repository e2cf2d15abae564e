//! `cairn audit …`: the audit trail from the command line.

use clap::Subcommand;

use super::{print_json, CliError};
use crate::state::Ctx;

#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Walk the audit chains (every tenant's and the platform's, or one tenant's) and
    /// report the first row where each breaks; exit status 1 if any is broken.
    Verify {
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Delete audit events older than each tenant's retention now (the server also does
    /// this once a day), keeping every chain verifiable from its checkpoint.
    Purge,
}

pub async fn run(cmd: AuditCmd, ctx: &Ctx) -> Result<(), CliError> {
    match cmd {
        AuditCmd::Purge => print_json(&crate::service::audit::purge(&ctx.state, chrono::Utc::now()).await?),
        AuditCmd::Verify { tenant } => {
            let reports = crate::service::audit::verify(ctx, tenant.as_deref()).await?;
            print_json(&reports)?;
            let broken: Vec<String> = reports
                .iter()
                .filter_map(|r| {
                    r.first_break
                        .as_ref()
                        .map(|b| format!("{} at seq {} (event {}): {:?}", r.chain, b.seq, b.id, b.reason))
                })
                .collect();
            if broken.is_empty() {
                Ok(())
            } else {
                Err(CliError::Input(format!("audit chain broken: {}", broken.join("; "))))
            }
        }
    }
}
