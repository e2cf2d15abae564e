//! MCP tools: `connections` lists the caller's connected providers and their status;
//! `connect_account` gives the link that connects one.

use rmcp::model::{CallToolResponse, CallToolResult, ContentBlock, Tool};
use rmcp::ErrorData;
use serde_json::json;

use crate::mcp::catalog::{BoxFuture, Provider, ToolCall};

pub struct ConnectionTools;

fn text(value: serde_json::Value) -> CallToolResponse {
    CallToolResult::success(vec![ContentBlock::text(value.to_string())]).into()
}

fn failure(message: &str) -> CallToolResponse {
    CallToolResult::error(vec![ContentBlock::text(message.to_owned())]).into()
}

impl Provider for ConnectionTools {
    fn tools(&self) -> Vec<Tool> {
        let empty = rmcp::model::object(json!({ "type": "object", "properties": {}, "additionalProperties": false }));
        let connect = rmcp::model::object(json!({
            "type": "object",
            "properties": { "provider": { "type": "string", "description": "The provider's name, e.g. github" } },
            "required": ["provider"],
            "additionalProperties": false
        }));
        vec![
            Tool::new(
                "connections",
                "Lists the upstream accounts (GitHub, …) you have connected and whether each still works.",
                empty,
            ),
            Tool::new(
                "connect_account",
                "Gives a link that connects one of your upstream accounts; open it in a browser.",
                connect,
            ),
        ]
    }

    fn call_tool<'a>(
        &'a self,
        name: &str,
        call: ToolCall<'a>,
    ) -> Option<BoxFuture<'a, Result<CallToolResponse, ErrorData>>> {
        let name = name.to_owned();
        matches!(name.as_str(), "connections" | "connect_account").then(|| {
            Box::pin(async move {
                let Some(user) = call.caller.user else {
                    return Ok(failure("connections belong to users; this credential has none"));
                };
                let (app, tenant) = (call.app, &call.caller.tenant);
                if name == "connections" {
                    let list = app
                        .store
                        .list_connections(tenant.id, user)
                        .await
                        .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
                    let items: Vec<_> = list
                        .iter()
                        .map(|c| {
                            json!({ "provider": c.provider, "status": c.status, "scopes": c.scopes,
                            "expires_at": c.expires_at, "last_error": c.last_error })
                        })
                        .collect();
                    return Ok(text(json!({ "connections": items })));
                }
                let provider = call
                    .arguments
                    .get("provider")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default();
                if crate::service::credentials::check_provider(provider).is_err() {
                    return Ok(failure("provider: 1–63 of a-z, 0-9, - and _"));
                }
                match super::start(app, tenant.id, tenant.slug.as_str(), user, provider).await {
                    Ok(url) => Ok(text(json!({ "provider": provider, "authorization_url": url,
                        "expires_in": 600 }))),
                    Err(super::ConnectionError::NoCredentials(p)) => {
                        Ok(failure(&format!("this workspace has no credentials for {p}")))
                    }
                    Err(e) => Err(ErrorData::internal_error(e.to_string(), None)),
                }
            }) as BoxFuture<'a, _>
        })
    }
}
