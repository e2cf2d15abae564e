//! `cairn oauth …`: a tenant's OAuth clients and signing keys.

use clap::Subcommand;

use super::{print_json, CliError};
use crate::service::credentials;
use crate::service::oauth_apps::{self, AppQuery, CreateOAuthApp};
use crate::state::Ctx;

#[derive(Debug, Subcommand)]
pub enum OAuthCmd {
    /// Register an OAuth client (prints its secret once, for confidential clients).
    AppCreate {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
        /// Redirect URI (repeat for several).
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
        /// Make a public client (no secret; PKCE only), e.g. a desktop or CLI app.
        #[arg(long)]
        public: bool,
        /// Also allow the client_credentials grant (confidential clients only).
        #[arg(long)]
        client_credentials: bool,
        /// Space-separated scopes the client may ask for.
        #[arg(long)]
        scope: Option<String>,
        /// The member the client belongs to (user id).
        #[arg(long)]
        owner: Option<String>,
    },
    /// List a tenant's OAuth clients (optionally only those of one member).
    AppList {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        owner: Option<String>,
    },
    /// Show one OAuth client.
    AppShow {
        #[arg(long)]
        tenant: String,
        client_id: String,
    },
    /// Delete an OAuth client and revoke every token it holds.
    AppDelete {
        #[arg(long)]
        tenant: String,
        client_id: String,
    },
    /// Rotate the tenant's access-token signing key.
    RotateKey {
        #[arg(long)]
        tenant: String,
    },
    /// Store the tenant's app credentials at an upstream provider (secret read from stdin).
    CredentialsSet {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        provider: String,
        #[arg(long)]
        client_id: String,
        #[arg(long)]
        auth_url: String,
        #[arg(long)]
        token_url: String,
        /// Scope to request upstream (repeat for several).
        #[arg(long = "scope")]
        scopes: Vec<String>,
    },
    /// List the tenant's upstream credentials (fingerprints, never secrets).
    CredentialsList {
        #[arg(long)]
        tenant: String,
    },
    /// Show one provider's credentials (fingerprint, never the secret).
    CredentialsShow {
        #[arg(long)]
        tenant: String,
        provider: String,
    },
    /// Delete one provider's credentials.
    CredentialsDelete {
        #[arg(long)]
        tenant: String,
        provider: String,
    },
}

pub async fn run(cmd: OAuthCmd, ctx: &Ctx) -> Result<(), CliError> {
    match cmd {
        OAuthCmd::AppCreate {
            tenant,
            name,
            redirect_uris,
            public,
            client_credentials,
            scope,
            owner,
        } => {
            let mut grants = vec!["authorization_code".to_owned(), "refresh_token".to_owned()];
            if client_credentials {
                grants.push("client_credentials".into());
            }
            let input = CreateOAuthApp {
                client_name: name,
                redirect_uris,
                token_endpoint_auth_method: Some(if public { "none" } else { "client_secret_basic" }.into()),
                grant_types: Some(grants),
                application_type: None,
                client_uri: None,
                scope,
                created_by: owner,
            };
            print_json(&oauth_apps::create(ctx, &tenant, input).await?)
        }
        OAuthCmd::AppList { tenant, owner } => {
            print_json(&oauth_apps::list(ctx, &tenant, AppQuery { created_by: owner }).await?)
        }
        OAuthCmd::AppShow { tenant, client_id } => print_json(&oauth_apps::show(ctx, &tenant, &client_id).await?),
        OAuthCmd::AppDelete { tenant, client_id } => {
            oauth_apps::delete(ctx, &tenant, &client_id).await?;
            eprintln!("OAuth client {client_id} deleted; its tokens are revoked");
            Ok(())
        }
        OAuthCmd::RotateKey { tenant } => print_json(&oauth_apps::rotate_signing_key(ctx, &tenant).await?),
        OAuthCmd::CredentialsSet {
            tenant,
            provider,
            client_id,
            auth_url,
            token_url,
            scopes,
        } => {
            let client_secret = super::read_password()?;
            let input = credentials::PutOAuthCredential {
                client_id,
                client_secret,
                auth_url,
                token_url,
                scopes,
                resource: None,
            };
            print_json(&credentials::put(ctx, &tenant, &provider, input).await?)
        }
        OAuthCmd::CredentialsList { tenant } => print_json(&credentials::list(ctx, &tenant).await?),
        OAuthCmd::CredentialsShow { tenant, provider } => print_json(&credentials::get(ctx, &tenant, &provider).await?),
        OAuthCmd::CredentialsDelete { tenant, provider } => {
            credentials::delete(ctx, &tenant, &provider).await?;
            eprintln!("credentials for {provider} deleted");
            Ok(())
        }
    }
}
