//! The bare rmcp baseline: the same `whoami` tool on rmcp's Streamable HTTP service with
//! no auth, limits or metering, and an axum floor with no MCP at all.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::serve::ListenerExt as _;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{json, Value};
use tokio::net::TcpListener;

// ---------------------------------------------------------------------------------------
// The bare baseline: rmcp's Streamable HTTP service with one hand-written tool, no auth.

#[derive(Clone)]
struct Bare;

fn bare_tool() -> Tool {
    let schema = rmcp::model::object(json!({ "type": "object", "properties": {}, "additionalProperties": false }));
    Tool::new("whoami", "Says who is calling.", schema)
}

impl ServerHandler for Bare {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("bare", "0.0.0"))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        (name == "whoami").then(bare_tool)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(vec![bare_tool()]))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if request.name != "whoami" {
            return Err(ErrorData::invalid_params(
                format!("Unknown tool: {}", request.name),
                None,
            ));
        }
        // Roughly the size and shape of Cairn's answer, so both send similar bytes.
        let info = json!({
            "tenant": { "id": "ten_0190b2f4c5d67e8f9a0b1c2d3e4f5a6b", "slug": "bench", "name": "bench" },
            "key": null,
            "scopes": ["mcp:tools"],
            "tier": null,
            "limits": null,
            "remaining": null,
        });
        Ok(CallToolResult::success(vec![ContentBlock::text(info.to_string())]).into())
    }
}

/// A JSON-RPC-shaped echo over plain axum: the HTTP + client floor without any MCP.
async fn floor(body: Bytes) -> axum::response::Response {
    let id = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("id").cloned());
    let answer = json!({ "jsonrpc": "2.0", "id": id, "result": { "content": [{ "type": "text", "text": "{}" }] } });
    axum::response::Response::builder()
        .header("content-type", "text/event-stream")
        .body(axum::body::Body::from(format!("data: {answer}\n\n")))
        .unwrap()
}

pub async fn start_bare() -> SocketAddr {
    let service: StreamableHttpService<Bare, LocalSessionManager> = StreamableHttpService::new(
        || Ok(Bare),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let router = axum::Router::new()
        .route_service("/mcp", service)
        .route("/floor", axum::routing::post(floor));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Same socket option as Cairn's listener.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}
