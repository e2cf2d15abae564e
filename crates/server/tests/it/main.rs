//! The one integration-test binary. Every test boots the real server (or the real
//! store) against a freshly created database of the backend named by
//! `CAIRN_TEST_BACKEND` (`sqlite` or `postgres`; see `scripts/test`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

mod alerts;
mod alerts_tls;
mod api_errors;
mod audit;
mod audit_chain;
mod audit_export_failure;
mod audit_query;
mod cli;
mod connections;
mod encryption;
mod health;
mod hostile_documents;
mod idp;
mod invitations;
mod isolation;
mod kb;
mod kb_cli;
mod kb_http_embed;
mod kb_mcp;
mod kb_stats;
mod keys;
mod limits;
mod logs;
mod mcp;
mod mcp_client;
mod members;
mod oauth;
mod oauth_refusals;
mod oauth_tokens;
mod operator;
mod protocol_edges;
mod rotation;
mod rotation_drill;
mod smtp_sink;
mod tenants;
mod users;
mod webhook_handlers;
mod webhooks;
mod webhooks_out;
