//! `whoami`: tells an assistant which tenant and key it is using and what it may do.

use rmcp::model::{CallToolResponse, CallToolResult, ContentBlock, Tool};
use rmcp::ErrorData;
use serde_json::json;

use super::catalog::{BoxFuture, Provider, ToolCall};

pub struct Whoami;

impl Provider for Whoami {
    fn tools(&self) -> Vec<Tool> {
        let schema = rmcp::model::object(json!({ "type": "object", "properties": {}, "additionalProperties": false }));
        vec![Tool::new(
            "whoami",
            "Shows the tenant, API key, scopes and rate limits of this connection.",
            schema,
        )]
    }

    fn call_tool<'a>(
        &'a self,
        name: &str,
        call: ToolCall<'a>,
    ) -> Option<BoxFuture<'a, Result<CallToolResponse, ErrorData>>> {
        (name == "whoami").then(|| {
            Box::pin(async move {
                let caller = call.caller;
                let tier = caller.key.as_ref().map(|k| k.tier.clone());
                let limits = tier
                    .as_ref()
                    .and_then(|t| call.app.config.tiers.get(t))
                    .map(|t| json!({ "burst_per_minute": t.burst_per_minute, "monthly_quota": t.monthly_quota }));
                // The gate checked this very call against the limits; report what is left.
                let remaining = call
                    .ctx
                    .extensions
                    .get::<axum::http::request::Parts>()
                    .and_then(|p| p.extensions.get::<crate::mcp::gate::RequestFacts>())
                    .and_then(|f| match f.rate {
                        Some(crate::limits::Decision::Allowed { remaining, reset, .. }) => {
                            Some(json!({ "burst_remaining": remaining, "full_in_secs": reset.as_secs() }))
                        }
                        _ => None,
                    });
                let info = json!({
                    "tenant": { "id": caller.tenant.id, "slug": caller.tenant.slug, "name": caller.tenant.name },
                    "key": caller.key.as_ref().map(|k| json!({
                        "id": k.id, "public_id": k.public_id, "name": k.name, "environment": k.environment,
                        "expires_at": k.expires_at,
                    })),
                    "user": caller.user,
                    "scopes": caller.scopes,
                    "tier": tier,
                    "limits": limits,
                    "remaining": remaining,
                });
                Ok(CallToolResult::success(vec![ContentBlock::text(info.to_string())]).into())
            }) as BoxFuture<'a, _>
        })
    }
}
