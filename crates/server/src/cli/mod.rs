//! The `cairn` command line. Every command except `serve` works directly on the
//! configured database, through the same service functions as the REST API (so it
//! validates and audits the same way).

mod audit;
mod kb;
mod keys;
mod oauth;

use std::io::{BufRead as _, IsTerminal as _};
use std::process::ExitCode;

use cairn_core::audit::Actor;
use cairn_store::Store;
use clap::{Parser, Subcommand};
use secrecy::ExposeSecret as _;
use serde::Serialize;

use crate::audit::AuditSink;
use crate::config::{Config, ConfigArgs, LogFormat};
use crate::error::ApiError;
use crate::extract::RequestMeta;
use crate::service::{api_keys, members, operator_tokens, tenants, users, ListParams};
use crate::state::{AppState, Ctx};
use crate::{telemetry, Server, StartupError};

#[derive(Debug, Parser)]
#[command(name = "cairn", version, about = "Multi-tenant MCP server platform")]
pub struct Cli {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCmd),
    /// Manage users.
    #[command(subcommand)]
    User(UserCmd),
    /// Manage tenant memberships.
    #[command(subcommand)]
    Member(MemberCmd),
    /// Serve a tenant's MCP tools over stdio (for local clients; trusted like the CLI).
    Mcp {
        #[arg(long)]
        tenant: String,
    },
    /// Usage of a tenant, grouped by key, tool, day or hour.
    Usage {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        from: Option<chrono::DateTime<chrono::Utc>>,
        #[arg(long)]
        to: Option<chrono::DateTime<chrono::Utc>>,
        #[arg(long, value_parser = ["key", "tool", "day", "hour"], default_value = "key")]
        group_by: String,
    },
    /// Manage a tenant's API keys.
    #[command(subcommand)]
    Key(KeyCmd),
    /// Operator (platform administrator) access.
    #[command(subcommand)]
    Operator(OperatorCmd),
    /// A tenant's OAuth clients and signing keys.
    #[command(subcommand)]
    Oauth(oauth::OAuthCmd),
    /// Envelope-encryption data keys: rotate, roll back, status.
    #[command(subcommand)]
    Keys(keys::KeysCmd),
    /// Knowledge bases: ingest, search, evaluate, maintain.
    #[command(subcommand)]
    Kb(kb::KbCmd),
    /// The audit trail: verify the tamper-evident chains.
    #[command(subcommand)]
    Audit(audit::AuditCmd),
    /// Internal: the document-extraction worker the server starts (stdin/stdout frames).
    #[command(hide = true)]
    ExtractWorker(crate::kb::extract::worker::WorkerArgs),
}

#[derive(Debug, Subcommand)]
pub enum TenantCmd {
    /// Create a tenant.
    Create {
        #[arg(long)]
        slug: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        plan: Option<String>,
        #[arg(long)]
        region: Option<String>,
    },
    /// List tenants (all, or those a user belongs to).
    List {
        /// Only tenants this user (usr_…) belongs to.
        #[arg(long)]
        user: Option<String>,
        #[arg(long, default_value_t = 200)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Show one tenant.
    Show { slug: String },
    /// Change a tenant's name, plan or status (active | suspended).
    Update {
        slug: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        plan: Option<String>,
        #[arg(long)]
        status: Option<String>,
        /// Serve the MCP conformance fixtures without authentication (testing only).
        #[arg(long)]
        conformance_fixtures: Option<bool>,
        /// Let OAuth clients register themselves (RFC 7591 dynamic registration).
        #[arg(long)]
        oauth_dynamic_registration: Option<bool>,
        /// Days audit events are kept (90 to 36 500).
        #[arg(long)]
        audit_retention_days: Option<i64>,
    },
    /// Delete a tenant and everything it owns.
    Delete { slug: String },
}

#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Create a user.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        display_name: String,
        /// Read the password from the first line of standard input.
        #[arg(long, conflicts_with = "password")]
        password_stdin: bool,
        /// The password (visible to other local users in the process list; prefer
        /// --password-stdin).
        #[arg(long)]
        password: Option<String>,
    },
    /// List users.
    List {
        #[arg(long, default_value_t = 200)]
        limit: u32,
    },
    /// Show one user.
    Show { id: String },
}

#[derive(Debug, Subcommand)]
pub enum MemberCmd {
    /// Add a user to a tenant with a role (owner | admin | member).
    Add {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        user: String,
        #[arg(long)]
        role: String,
    },
    /// List a tenant's members.
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Remove a user from a tenant.
    Remove {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        user: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCmd {
    /// Create a key; its secret is printed once.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
        /// Comma-separated: mcp:tools, mcp:resources, mcp:prompts, kb:write, admin.
        #[arg(long, value_delimiter = ',', default_value = "mcp:tools,mcp:resources,mcp:prompts")]
        scopes: Vec<String>,
        #[arg(long)]
        tier: Option<String>,
        /// live or test.
        #[arg(long)]
        environment: Option<String>,
        /// Bind the key to a member of the tenant (usr_…).
        #[arg(long)]
        user: Option<String>,
        /// RFC 3339 expiry time.
        #[arg(long)]
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// List a tenant's keys (never their secrets).
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Issue a new secret; the old one keeps working for the overlap.
    Rotate {
        #[arg(long)]
        tenant: String,
        id: String,
        #[arg(long)]
        overlap_secs: Option<u64>,
    },
    /// Revoke a key at once.
    Revoke {
        #[arg(long)]
        tenant: String,
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum OperatorCmd {
    /// Operator tokens.
    #[command(subcommand)]
    Token(OperatorTokenCmd),
}

#[derive(Debug, Subcommand)]
pub enum OperatorTokenCmd {
    /// Mint an operator token; it is printed once.
    Create {
        #[arg(long, default_value = "cli")]
        name: String,
    },
}

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error("{0}")]
    Api(#[from] ApiError),
    #[error("{0}")]
    Input(String),
}

/// Parses arguments, runs the command, maps failure to exit status 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The worker reads no configuration and starts no runtime.
    if let Command::ExtractWorker(args) = &cli.command {
        return crate::kb::extract::worker::run(args);
    }
    let config = match Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: Command, config: Config) -> Result<(), CliError> {
    match command {
        Command::Serve => {
            telemetry::init(config.log_format, &config.log_level);
            serve(config).await
        }
        Command::Migrate => {
            telemetry::init(LogFormat::Pretty, "warn");
            let applied = cairn_store::pool::migrate(&config.store_config())
                .await
                .map_err(StartupError::from)?;
            println!(
                "migrations applied: {}",
                if applied.is_empty() {
                    "none pending".into()
                } else {
                    format!("{applied:?}")
                }
            );
            Ok(())
        }
        other => {
            telemetry::init(LogFormat::Pretty, "warn");
            let store = Store::open(&config.store_config()).await.map_err(StartupError::from)?;
            let (audit, task) = AuditSink::start(store.clone());
            let (usage, usage_task) = crate::usage::UsageSink::start(store.clone());
            let state = AppState::new(store, audit, usage, config).map_err(StartupError::Secrets)?;
            state.verify().await.map_err(StartupError::Secrets)?;
            let ctx = Ctx {
                state: state.clone(),
                actor: Actor::Cli,
                meta: RequestMeta::default(),
            };
            let result = admin(other, &ctx).await;
            state.usage.flush().await;
            state.audit.flush().await;
            drop((ctx, state));
            let _ = tokio::join!(task, usage_task);
            result
        }
    }
}

async fn serve(mut config: Config) -> Result<(), CliError> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(StartupError::from)?;
    let addr = listener.local_addr().map_err(StartupError::from)?;
    // URLs this server hands out (OAuth issuer, resource) must name the bound port.
    config.listen = addr;
    let token_path = config.operator_token_path();
    let database = cairn_store::pool::redact_url(&config.database_url());
    let public = if config.public_url.is_some() {
        config.public_base_url()
    } else {
        format!("http://{addr}")
    };
    let mut server = Server::build(config).await?;
    println!(
        "Cairn {} listening on {public}  (database: {database})",
        env!("CARGO_PKG_VERSION")
    );
    if let Some(token) = server.take_bootstrap_token() {
        println!("Operator token (shown once; also saved to {}):", token_path.display());
        println!("  {}", token.token.expose_secret());
    }
    tracing::info!(%addr, "listening");
    server.serve(listener, crate::shutdown_signal()).await?;
    Ok(())
}

async fn admin(command: Command, ctx: &Ctx) -> Result<(), CliError> {
    match command {
        Command::Tenant(cmd) => tenant(cmd, ctx).await,
        Command::User(cmd) => user(cmd, ctx).await,
        Command::Member(cmd) => member(cmd, ctx).await,
        Command::Key(cmd) => key(cmd, ctx).await,
        Command::Oauth(cmd) => oauth::run(cmd, ctx).await,
        Command::Keys(cmd) => keys::run(cmd, ctx).await,
        Command::Kb(cmd) => kb::run(cmd, ctx).await,
        Command::Audit(cmd) => audit::run(cmd, ctx).await,
        Command::Mcp { tenant } => mcp_stdio(ctx, &tenant).await,
        Command::Usage {
            tenant,
            from,
            to,
            group_by,
        } => {
            let group_by = serde_json::from_value(serde_json::Value::String(group_by))
                .map_err(|e| CliError::Input(format!("--group-by: {e}")))?;
            let query = crate::service::usage::UsageQuery {
                from,
                to,
                group_by: Some(group_by),
            };
            print_json(&crate::service::usage::report(ctx, &tenant, query).await?)
        }
        Command::Operator(OperatorCmd::Token(OperatorTokenCmd::Create { name })) => {
            let issued = operator_tokens::create(ctx, &name).await?;
            eprintln!("operator token {} created; it is shown only now:", issued.id);
            println!("{}", issued.token.expose_secret());
            Ok(())
        }
        Command::Serve | Command::Migrate | Command::ExtractWorker(_) => Ok(()),
    }
}

async fn tenant(cmd: TenantCmd, ctx: &Ctx) -> Result<(), CliError> {
    match cmd {
        TenantCmd::Create {
            slug,
            name,
            plan,
            region,
        } => print_json(
            &tenants::create(
                ctx,
                tenants::CreateTenant {
                    slug,
                    name,
                    plan,
                    region,
                },
            )
            .await?,
        ),
        TenantCmd::List { user, limit, json } => {
            let query = tenants::TenantQuery {
                user_id: user,
                limit: Some(limit),
                cursor: None,
            };
            let list = tenants::list(ctx, query).await?;
            if json {
                return print_json(&list);
            }
            println!(
                "{:<24} {:<36} {:<10} {:<10} {:<8} ID",
                "SLUG", "NAME", "PLAN", "STATUS", "ROLE"
            );
            for t in &list.data {
                let s = |k: &str| t[k].as_str().unwrap_or("-").to_owned();
                println!(
                    "{:<24} {:<36} {:<10} {:<10} {:<8} {}",
                    s("slug"),
                    s("name"),
                    s("plan"),
                    s("status"),
                    s("role"),
                    s("id")
                );
            }
            Ok(())
        }
        TenantCmd::Show { slug } => print_json(&tenants::resolve(ctx, &slug).await?),
        TenantCmd::Update {
            slug,
            name,
            plan,
            status,
            conformance_fixtures,
            oauth_dynamic_registration,
            audit_retention_days,
        } => print_json(
            &tenants::update(
                ctx,
                &slug,
                tenants::UpdateTenant {
                    name,
                    plan,
                    status,
                    conformance_fixtures,
                    oauth_dynamic_registration,
                    audit_retention_days,
                },
            )
            .await?,
        ),
        TenantCmd::Delete { slug } => {
            tenants::delete(ctx, &slug).await?;
            eprintln!("tenant {slug} deleted");
            Ok(())
        }
    }
}

async fn user(cmd: UserCmd, ctx: &Ctx) -> Result<(), CliError> {
    match cmd {
        UserCmd::Create {
            email,
            display_name,
            password_stdin,
            password,
        } => {
            let password = if password_stdin {
                Some(read_password()?)
            } else {
                password
            };
            print_json(
                &users::create(
                    ctx,
                    users::CreateUser {
                        email,
                        display_name,
                        password,
                    },
                )
                .await?,
            )
        }
        UserCmd::List { limit } => print_json(
            &users::list(
                ctx,
                &ListParams {
                    limit: Some(limit),
                    cursor: None,
                },
            )
            .await?,
        ),
        UserCmd::Show { id } => print_json(&users::get(ctx, &id).await?),
    }
}

async fn member(cmd: MemberCmd, ctx: &Ctx) -> Result<(), CliError> {
    match cmd {
        MemberCmd::Add { tenant, user, role } => {
            print_json(&members::add(ctx, &tenant, members::AddMember { user_id: user, role }).await?)
        }
        MemberCmd::List { tenant } => print_json(&members::list(ctx, &tenant, &ListParams::all()).await?),
        MemberCmd::Remove { tenant, user } => {
            members::remove(ctx, &tenant, &user).await?;
            eprintln!("{user} removed from {tenant}");
            Ok(())
        }
    }
}

async fn key(cmd: KeyCmd, ctx: &Ctx) -> Result<(), CliError> {
    match cmd {
        KeyCmd::Create {
            tenant,
            name,
            scopes,
            tier,
            environment,
            user,
            expires_at,
        } => {
            let input = api_keys::CreateKey {
                name,
                scopes,
                tier,
                environment,
                user_id: user,
                expires_at,
            };
            let issued = api_keys::create(ctx, &tenant, input).await?;
            eprintln!(
                "key {} created; its secret (field \"secret\") is shown only now",
                issued.key.id
            );
            print_json(&issued)
        }
        KeyCmd::List { tenant } => print_json(&api_keys::list(ctx, &tenant, &ListParams::all()).await?),
        KeyCmd::Rotate {
            tenant,
            id,
            overlap_secs,
        } => print_json(&api_keys::rotate(ctx, &tenant, &id, api_keys::RotateKey { overlap_secs }).await?),
        KeyCmd::Revoke { tenant, id } => print_json(&api_keys::revoke(ctx, &tenant, &id).await?),
    }
}

/// Serves MCP on stdin/stdout until the client closes it. Logs go to stderr.
async fn mcp_stdio(ctx: &Ctx, slug: &str) -> Result<(), CliError> {
    use rmcp::ServiceExt as _;
    let tenant = tenants::resolve(ctx, slug).await?;
    let caller = crate::mcp::McpCaller::trusted(std::sync::Arc::new(tenant));
    let handler = crate::mcp::handler::CairnMcp::stdio(ctx.state.clone(), caller);
    let running = handler
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| CliError::Input(format!("MCP over stdio failed to start: {e}")))?;
    running
        .waiting()
        .await
        .map_err(|e| CliError::Input(format!("MCP over stdio stopped: {e}")))?;
    Ok(())
}

fn read_password() -> Result<String, CliError> {
    if std::io::stdin().is_terminal() {
        eprint!("password: ");
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::Input(format!("cannot read password: {e}")))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn print_json<T: Serialize>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| CliError::Input(e.to_string()))?;
    println!("{text}");
    Ok(())
}
